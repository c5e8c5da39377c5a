"""``MgmtClient`` against the real server: models and ETags back, ApiError / ApiUnavailable on failure."""

from __future__ import annotations

import asyncio
import socket

import pytest
from balancedesk.core.client import ApiError, ApiUnavailable, MgmtClient
from balancedesk.core.model import ROUND_ROBIN, Connector, ConnectorGroup, Member
from mgmt_helpers import ADMIN_PASSWORD, PASSWORD, Server


def test_client_covers_the_api(server: Server) -> None:
    async def scenario() -> None:
        async with MgmtClient(server.url, "admin", ADMIN_PASSWORD) as admin:
            me = await admin.whoami()
            assert me.user == "admin" and me.is_admin
            await admin.add_user("alice", PASSWORD)
            await admin.add_user("bob", PASSWORD)
            assert {u.name for u in await admin.list_users()} >= {"admin", "alice", "bob"}
            regs = [await admin.register_connector(label=f"a{i}", owner="alice", endpoint=f"127.0.0.1:{9101 + i}")
                    for i in range(3)]  # fmt: skip
            assert [r.endpoint for r in await admin.list_registered(owner="alice")] == [r.endpoint for r in regs]
        ids = [r.connector_id for r in regs]

        async with MgmtClient(server.url, "alice", PASSWORD) as alice:
            first = Member(memberID=ids[0], sequence=1, weight=3)
            group = Connector(
                owner="alice",
                label="g",
                authUser=("bob",),
                connectorGroup=ConnectorGroup(loadBalancing=ROUND_ROBIN, members=(first,)),
            )
            created, etag = await alice.create_group(group)
            assert created.connector_id and created.connector_group == group.connector_group and etag
            got, etag2 = await alice.get_connector(created.connector_id)
            assert got == created and etag2 == etag
            assert created in await alice.list_connectors()
            assert created.connector_id in await alice.list_connectors(details=False)

            renamed, etag3 = await alice.put_connector(got.model_copy(update={"label": "g2"}), if_match=etag)
            assert renamed.label == "g2" and etag3 != etag
            with pytest.raises(ApiError) as stale:
                await alice.put_connector(got.model_copy(update={"label": "g3"}), if_match=etag)
            assert stale.value.status == 412 and "changed by someone else" in str(stale.value)

            members, etag4 = await alice.add_members(created.connector_id, [Member(memberID=ids[1], sequence=2)])
            assert [m.member_id for m in members] == ids[:2]
            members, _ = await alice.put_members(
                created.connector_id, [Member(memberID=ids[2], sequence=1)], if_match=etag4
            )
            assert [m.member_id for m in members] == [ids[2]]
            with pytest.raises(ApiError) as rule:
                await alice.put_members(
                    created.connector_id, [Member(memberID=ids[0], sequence=1), Member(memberID=ids[1], sequence=1)]
                )
            assert rule.value.status == 400 and len(rule.value.code) == 9
            found = {(p.field, p.member_id) for p in rule.value.problems}
            assert found == {("members[0].sequence", ids[0]), ("members[1].sequence", ids[1])}

            await alice.add_auth_users(created.connector_id, ["admin"])
            users, _ = await alice.get_auth_users(created.connector_id)
            assert users == ("bob", "admin")
            await alice.remove_auth_users(created.connector_id, ["admin"])

        async with MgmtClient(server.url, "bob", PASSWORD) as bob:
            with pytest.raises(ApiError) as forbidden:
                await bob.get_connector(created.connector_id)
            assert forbidden.value.status == 403
            assert [c.connector_id for c in await bob.list_connectors(accessible=True)] == [created.connector_id]

        async with MgmtClient(server.url, "alice", "wrong-password") as wrong:
            with pytest.raises(ApiError) as unauthorized:
                await wrong.whoami()
            assert unauthorized.value.status == 401

        async with MgmtClient(server.url, "alice", PASSWORD) as alice:
            await alice.delete_connector(created.connector_id)
            with pytest.raises(ApiError) as gone:
                await alice.get_connector(created.connector_id)
            assert gone.value.status == 404

    asyncio.run(scenario())


def test_unreachable_server_raises_api_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused

        async def scenario() -> None:
            async with MgmtClient(f"http://127.0.0.1:{port}", "a", "b", timeout=5) as client:
                with pytest.raises(ApiUnavailable) as exc:
                    await client.whoami()
                assert f"127.0.0.1:{port}" in str(exc.value)

        asyncio.run(scenario())

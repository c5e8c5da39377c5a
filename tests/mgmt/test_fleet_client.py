"""The client's control-plane calls against a real server: a balancer with its token alone follows its pool,
heartbeats; an Administrator lists balancers, reads an admin token back, makes and revokes tokens."""

from __future__ import annotations

import asyncio
import time

import pytest
from balancedesk.core.client import ApiError, MgmtClient
from balancedesk.core.fleet import ALIVE, CHANGED, GONE, AppliedGroup, Heartbeat
from balancedesk.core.model import ListenerSettings, parse_connector
from mgmt_helpers import ADMIN_PASSWORD, PASSWORD, Server


def test_a_balancer_follows_its_pool_with_the_client(server: Server) -> None:
    async def scenario() -> None:
        async with MgmtClient(server.url, "admin", ADMIN_PASSWORD) as admin:
            await admin.add_user("alice", PASSWORD)
            regs = [await admin.register_connector(label=f"a{i}", owner="alice", endpoint=f"127.0.0.1:{9101 + i}")
                    for i in range(3)]  # fmt: skip
            token, info = await admin.create_token("edge", label="bal-1")
            assert info.pool == "edge" and info.revoked is None and token.startswith("bdt_")
            assert [t.token_id for t in await admin.list_tokens()] == [info.token_id]
        ids = [r.connector_id for r in regs]

        async with MgmtClient(server.url, "alice", PASSWORD) as alice:
            body = {"owner": "alice", "label": "g", "listener": {"port": 18600, "pool": "edge", "mode": "http"},
                    "connectorGroup": {"members": [{"memberID": ids[0], "sequence": 1}]}}
            created, etag = await alice.create_group(parse_connector(body))
            assert created.listener == ListenerSettings(port=18600, pool="edge", mode="http")
            gid = created.connector_id
            assert gid is not None
            assert await alice.get_connector_if_changed(gid, etag) is None

            async with MgmtClient(server.url, token=token) as balancer:
                groups = await balancer.pool_groups("edge")
                assert groups is not None and [g.connector_id for g in groups.groups] == [gid]
                [group] = groups.groups
                assert group.config.endpoints == {ids[0]: "127.0.0.1:9101"}
                assert group.config.listener.port == 18600 and group.config.listener.mode == "http"
                assert await balancer.pool_groups("edge", if_none_match=groups.etag) is None
                one = await balancer.pool_group("edge", gid)
                assert one is not None and one[0] == group
                assert await balancer.pool_group("edge", gid, if_none_match=one[1]) is None
                with pytest.raises(ApiError) as err:
                    await balancer.pool_groups("other")
                assert err.value.status == 403
                with pytest.raises(ApiError) as err:
                    await balancer.list_connectors()
                assert err.value.status == 403

                # the feed: woken by a save made with the API
                follow = asyncio.ensure_future(
                    balancer.changes("edge", groups.cursor, wait=50, store_id=groups.store_id)
                )
                await asyncio.sleep(0)
                moved = created.model_copy(update={"label": "g2"})
                _, etag2 = await alice.put_connector(moved, if_match=etag)
                answer = await asyncio.wait_for(follow, 30)
                assert [(c.connector_id, c.state) for c in answer.changes] == [(gid, CHANGED)]
                assert not answer.resync and answer.cursor > groups.cursor
                again = await balancer.pool_groups("edge", if_none_match=groups.etag)
                assert again is not None and again.groups[0].version == answer.changes[0].version
                assert again.groups[0].config.label == "g2"
                got = await alice.get_connector_if_changed(gid, etag)
                assert got is not None and got[1] == etag2

                hb = Heartbeat.model_validate({
                    "instanceID": "bal-1", "host": "h1", "adminURL": "http://127.0.0.1:1", "adminToken": "tok",
                    "dataPlane": "asyncio", "startedAt": time.time(),
                    "groups": [AppliedGroup(connectorID=gid, version=answer.changes[0].version).model_dump(
                        by_alias=True)],
                })
                told = await balancer.heartbeat(hb)
                assert told.state == ALIVE and told.pool == "edge" and told.heartbeat_interval > 0

                await alice.delete_connector(gid)
                gone = await balancer.changes("edge", answer.cursor, wait=10)
                assert [(c.connector_id, c.state) for c in gone.changes] == [(gid, GONE)]

        async with MgmtClient(server.url, "admin", ADMIN_PASSWORD) as admin:
            [listed] = await admin.list_balancers(pool="edge")
            assert listed.instance_id == "bal-1" and listed.state == ALIVE and listed.has_admin_token
            assert listed.groups[0].connector_id == gid
            access = await admin.balancer_admin("bal-1")
            assert (access.admin_url, access.admin_token) == ("http://127.0.0.1:1", "tok")
            revoked = await admin.revoke_token(info.token_id)
            assert revoked.revoked is not None
            await admin.forget_balancer("bal-1")
            assert await admin.list_balancers() == []
        async with MgmtClient(server.url, token=token) as balancer:
            with pytest.raises(ApiError) as err:
                await balancer.pool_groups("edge")
            assert err.value.status == 401
        with pytest.raises(ValueError):
            MgmtClient(server.url, "admin", ADMIN_PASSWORD, token=token)

    asyncio.run(scenario())

"""Logins: failed guesses are slowed, never the real user; the same argon2 work whether a user exists or not.

Sources are told apart by binding clients to different loopback addresses (127.0.0.2, 127.0.0.3 …: all of
127.0.0.0/8 is the loopback on Linux).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from balancedesk.core.mgmt.app import create_app
from balancedesk.core.mgmt.auth import hash_password, verify_password
from balancedesk.core.mgmt.store import Store
from balancedesk.core.mgmt.throttle import PAIR
from mgmt_helpers import ADMIN_PASSWORD, PASSWORD, Server, error_of

WHOAMI = "/api/mgmt/whoami"


def client_from(server: Server, source: str, user: str, password: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    client = httpx.Client(base_url=server.url, auth=(user, password), timeout=15.0, transport=transport)
    server.clients.append(client)
    return client


def test_a_flood_of_wrong_guesses_does_not_stop_the_right_password(server: Server) -> None:
    attackers = [client_from(server, f"127.0.0.{i}", "admin", f"guess-{i}") for i in range(10, 16)]
    stop = threading.Event()
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def attack(client: httpx.Client) -> None:
        n = 0
        while not stop.is_set() and n < 2000:  # bounded: a few seconds of guesses at most
            n += 1
            # a fresh guess each time, sent again the moment the last answer came (429s included)
            client.auth = httpx.BasicAuth("admin", f"guess-{n}")
            status = client.get(WHOAMI).status_code
            with lock:
                seen[status] = seen.get(status, 0) + 1

    threads = [threading.Thread(target=attack, args=(c,), daemon=True) for c in attackers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while sum(seen.get(s, 0) for s in (401, 429)) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)  # wait (with a deadline) until the flood is well under way
    real = client_from(server, "127.0.0.3", "admin", ADMIN_PASSWORD)
    statuses = []
    for _ in range(40):
        statuses.append(real.get(WHOAMI).status_code)
    # a second real client on a source never used before: its first login (an argon2 check) gets in too
    fresh = client_from(server, "127.0.0.4", "admin", ADMIN_PASSWORD).get(WHOAMI).status_code
    stop.set()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 40 and fresh == 200
    assert seen.get(429, 0) > 0, seen
    # six sources: each had PAIR.free guesses, then the doubling waits (1 s, 2 s …) of a few seconds' run
    assert seen.get(401, 0) <= 6 * (PAIR.free + 4), seen
    assert set(seen) <= {401, 429}, seen


def test_guesses_from_one_source_get_429_with_retry_after(server: Server) -> None:
    server.add_user("alice")
    wrong = client_from(server, "127.0.0.20", "alice", "not-the-password")
    assert [wrong.get(WHOAMI).status_code for _ in range(PAIR.free)] == [401] * PAIR.free
    held = wrong.get(WHOAMI)
    assert held.status_code == 429, held.text
    assert int(held.headers["Retry-After"]) >= 1
    err = error_of(held)
    assert "Too many failed logins for this user from your address" in err["message"]["value"]
    assert err["problems"][0]["field"] == "Authorization"
    # the pair (alice, that address) waits; alice from her own address does not
    assert client_from(server, "127.0.0.21", "alice", PASSWORD).get(WHOAMI).status_code == 200
    # and once the wait is over, the right password from the guessing address gets in as well
    right = client_from(server, "127.0.0.20", "alice", PASSWORD)
    deadline = time.monotonic() + 15
    while (r := right.get(WHOAMI)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(min(float(r.headers["Retry-After"]), 0.25))
    assert r.status_code == 200


# -- the same work for every wrong login -------------------------------------------------------------

ARGON_PARAMS = re.compile(r"^(\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+)\$")


@pytest.mark.asyncio
async def test_each_failed_login_runs_argon2_once_whether_the_user_exists_or_not(tmp_path: Path) -> None:
    """Structural, not timed (bench/bench_login_timing.py measures the times): a wrong password for an existing
    user, a disabled user and an unknown name each cost exactly one verification with the same argon2
    parameters; the right password costs one, then none (remembered)."""
    store = Store(tmp_path / "db.sqlite3")
    with store.write():
        store.insert_user("alice", hash_password(PASSWORD), "User")
        store.insert_user("dora", hash_password(PASSWORD), "User")
        store.update_user("dora", pw_hash=None, role=None, active=False)
    app = create_app(store)
    calls: list[str] = []

    def counted(pw_hash: str, password: str) -> bool:
        calls.append(pw_hash)
        return verify_password(pw_hash, password)

    app.state.auth.verify = counted
    params = {ARGON_PARAMS.match(app.state.auth.dummy_hash).group(1)}  # type: ignore[union-attr]
    for name in ("alice", "dora"):
        params.add(ARGON_PARAMS.match(store.user(name).pw_hash).group(1))  # type: ignore[union-attr]
    assert len(params) == 1  # the dummy hash costs what a stored one does

    async def login(name: str, password: str, source: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(source, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mgmt", auth=(name, password)) as c:
            return (await c.get(WHOAMI)).status_code

    cases = [("alice", "wrong-password"), ("dora", PASSWORD), ("nobody", "wrong-password"), ("x" * 500, "p")]
    for i, (name, password) in enumerate(cases):
        calls.clear()
        assert await login(name, password, f"10.0.0.{i}") == 401
        assert len(calls) == 1, (name, calls)
    assert calls == [app.state.auth.dummy_hash]  # the unknown names were checked against the dummy

    calls.clear()
    assert await login("alice", PASSWORD, "10.0.1.1") == 200
    assert await login("alice", PASSWORD, "10.0.1.1") == 200
    assert len(calls) == 1

    # the same credentials sent in parallel from one source: one verification, one attempt, all answered
    calls.clear()
    statuses = await asyncio.gather(*(login("alice", "another-wrong", "10.0.2.1") for _ in range(8)))
    assert statuses == [401] * 8 and len(calls) == 1
    store.close()

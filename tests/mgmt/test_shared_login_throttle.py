"""Two real ``serve`` processes on one PostgreSQL database slow failed logins as one server does.

The number of wrong guesses let through is derived from the policy itself (a :class:`LoginThrottle` run
alone, back to back), never written down here. Sources are told apart by binding clients to different
loopback addresses (all of 127.0.0.0/8 is the loopback on Linux). On SQLite (one server) nothing is written
to ``login_events``: the in-memory policy is the installation's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from balancedesk.core.mgmt.throttle import Attempt, LoginThrottle, user_key
from mgmt_helpers import ADMIN_PASSWORD, PASSWORD, Server, error_of

StartServer = Callable[..., Server]
WHOAMI = "/api/mgmt/whoami"
on_postgresql = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def one_servers_budget(users: list[str], source: str) -> int:
    """Wrong guesses one server lets through, sent back to back, cycling ``users``, before its first 429."""
    policy, n = LoginThrottle(), 0
    while n < 1000 and isinstance(v := policy.admit(users[n % len(users)], source, 0.0), Attempt):
        policy.failed(v, 0.0)
        n += 1
    return n


def two_servers(start_server: StartServer, tmp_path: Path) -> tuple[Server, Server]:
    a = start_server(data=tmp_path / "a")
    assert a.database is not None
    return a, start_server(data=tmp_path / "b", database=a.database)


def client(server: Server, source: str, user: str, password: str) -> httpx.Client:
    c = httpx.Client(base_url=server.url, auth=(user, password), timeout=15.0,
                     transport=httpx.HTTPTransport(local_address=source))
    server.clients.append(c)
    return c


@on_postgresql
def test_wrong_passwords_sent_alternately_to_two_servers_get_one_servers_budget(
    start_server: StartServer, tmp_path: Path
) -> None:
    a, b = two_servers(start_server, tmp_path)
    a.add_user("alice")
    source = "127.0.0.30"
    n = one_servers_budget(["alice"], source)
    guessers = [client(s, source, "alice", "not-the-password") for s in (a, b)]
    statuses = [guessers[i % 2].get(WHOAMI).status_code for i in range(n)]
    held = [guessers[(n + i) % 2].get(WHOAMI) for i in range(2)]  # the next guess, on either server
    assert statuses == [401] * n, statuses
    assert [r.status_code for r in held] == [429, 429], [r.text for r in held]
    assert "for this user from your address" in error_of(held[0])["message"]["value"]
    # alice from her own address is not held up, on either server
    assert [client(s, "127.0.0.31", "alice", PASSWORD).get(WHOAMI).status_code for s in (a, b)] == [200, 200]

    # the rows: keys only — the user's hash and the source, never the password or the name
    assert a.database is not None
    with psycopg.connect(a.database) as conn:
        rows = conn.execute("SELECT origin, ok, user_key, source FROM login_events ORDER BY id").fetchall()
    failures = [r for r in rows if r[2] == user_key("alice").hex() and r[3] == source]
    assert len(failures) == n and not any(ok for _, ok, _, _ in failures)
    assert len({origin for origin, _, _, _ in failures}) == 2  # written by both servers
    text = repr(rows)
    assert "not-the-password" not in text and PASSWORD not in text and "alice" not in text


@on_postgresql
def test_a_source_guessing_many_users_over_two_servers_is_held_but_its_trusted_user_gets_in(
    start_server: StartServer, tmp_path: Path
) -> None:
    a, b = two_servers(start_server, tmp_path)
    source = "127.0.0.40"
    # the admin logs in from this source once, on a only: that pair is trusted — by both servers
    assert client(a, source, "admin", ADMIN_PASSWORD).get(WHOAMI).status_code == 200
    names = [f"nobody-{i}" for i in range(1000)]
    n = one_servers_budget(names, source)
    statuses = [client((a, b)[i % 2], source, names[i], "guess").get(WHOAMI).status_code for i in range(n)]
    held = [client(s, source, f"fresh-{s.url}", "guess").get(WHOAMI) for s in (b, a)]
    assert statuses == [401] * n, statuses
    assert [r.status_code for r in held] == [429, 429], [r.text for r in held]
    assert "from your address" in error_of(held[0])["message"]["value"]
    # the right password from the trusted source still gets in, on the server it never logged in to as well
    assert [client(s, source, "admin", ADMIN_PASSWORD).get(WHOAMI).status_code for s in (b, a)] == [200, 200]


@pytest.mark.sqlite_only
def test_a_single_sqlite_server_writes_no_login_rows(server: Server) -> None:
    n = one_servers_budget(["admin"], "127.0.0.50")
    guesser = client(server, "127.0.0.50", "admin", "wrong")
    assert [guesser.get(WHOAMI).status_code for _ in range(n + 1)] == [401] * n + [429]
    assert server.admin.get(WHOAMI).status_code == 200
    db = sqlite3.connect(f"file:{server.data / 'balancedesk.sqlite3'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT COUNT(*) FROM login_events").fetchone()[0] == 0
    finally:
        db.close()


@on_postgresql
def test_while_the_database_is_away_a_login_gets_503_and_is_not_a_guess(
    start_server: StartServer, tmp_path: Path
) -> None:
    a, b = two_servers(start_server, tmp_path)
    assert a.database is not None
    source = "127.0.0.60"
    n = one_servers_budget(["admin"], source)
    guesser = client(a, source, "admin", "wrong")
    assert [guesser.get(WHOAMI).status_code for _ in range(n - 1)] == [401] * (n - 1)
    name = a.database.rsplit("/", 1)[1]
    with psycopg.connect(a.database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            away = guesser.get(WHOAMI)
        finally:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert away.status_code == 503, away.text
    error_of(away)
    # back: the 503 verified and counted nothing; the last free guess is used up on a (and told to b), then
    # both servers hold the pair
    # (a new connection: the server closes the one that carried the 503)
    assert client(a, source, "admin", "wrong").get(WHOAMI).status_code == 401
    assert [client(s, source, "admin", "wrong").get(WHOAMI).status_code for s in (b, a)] == [429, 429]

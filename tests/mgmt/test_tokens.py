"""Balancer tokens: made by an Administrator (API or CLI), shown once, stored hashed, revocable; with one a
balancer reads its own pool and heartbeats — and gets 403 for everything else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from fleet_helpers import StartServer, as_token, group_body, heartbeat_body, make_group, make_token, new_pool, owner
from mgmt_helpers import Server, dump_store, error_of

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]


def test_a_token_is_shown_once_and_stored_hashed(shared_server: Server) -> None:
    server = shared_server
    pool = new_pool()
    r = server.admin.post("/api/admin/tokens", json={"pool": pool, "label": "bal-1"})
    assert r.status_code == 201, r.text
    made = r.json()
    token = made["token"]
    assert token.startswith("bdt_") and r.headers["Cache-Control"] == "no-store"
    listed = [t for t in server.admin.get("/api/admin/tokens").json()["tokens"] if t["tokenID"] == made["tokenID"]]
    assert listed == [{k: v for k, v in made.items() if k != "token"}]
    assert token not in server.admin.get("/api/admin/tokens").text
    secret = token.split("_", 2)[2]  # bdt_<id>_<secret>: the secret itself may hold "_"
    dump = dump_store(server)
    assert secret not in dump and made["tokenID"] in dump
    for body, field in (({}, "pool"), ({"pool": "a b"}, "pool"), ({"pool": "p", "label": 3}, "label"),
                        ({"pool": "p", "x": 1}, "x")):
        r = server.admin.post("/api/admin/tokens", json=body)
        assert r.status_code == 400 and field in [p["field"] for p in error_of(r)["problems"]], r.text


def test_a_token_reads_its_pool_alone_and_gets_403_for_everything_else(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    mine, other = new_pool(), new_pool()
    gid, members = make_group(server, alice, name, listener={"port": 18500, "pool": mine})
    foreign, _ = make_group(server, alice, name, listener={"port": 18501, "pool": other}, base_port=9250)
    balancer = as_token(server, make_token(server, mine))
    # allowed, with the token alone
    groups = balancer.get(f"/api/admin/pools/{mine}/groups")
    assert groups.status_code == 200, groups.text
    assert [g["connectorID"] for g in groups.json()["groups"]] == [gid]
    assert balancer.get(f"/api/admin/pools/{mine}/groups/{gid}").status_code == 200
    cursor = groups.json()["cursor"]
    assert balancer.get(f"/api/admin/pools/{mine}/changes", params={"cursor": cursor}).status_code == 200
    hb = balancer.post("/api/admin/balancers/heartbeat", json=heartbeat_body(f"i-{uuid.uuid4().hex[:6]}"))
    assert hb.status_code == 200, hb.text
    # refused
    url = f"/api/mgmt/connectors/{gid}"
    doc = alice.get(url).json()
    refused = [
        balancer.put(url, json={**doc, "label": "hijacked"}),
        balancer.delete(url),
        balancer.post("/api/mgmt/connectors", json={**group_body(members), "owner": name}),
        balancer.get(url),
        balancer.get("/api/mgmt/connectors"),
        balancer.get("/api/mgmt/whoami"),
        balancer.get("/api/admin/users"),
        balancer.get("/api/admin/connectors"),
        balancer.post("/api/admin/tokens", json={"pool": mine}),
        balancer.get("/api/admin/tokens"),
        balancer.get("/api/admin/balancers"),
        balancer.get(f"/api/admin/pools/{other}/groups"),
        balancer.get(f"/api/admin/pools/{other}/groups/{foreign}"),
        balancer.get(f"/api/admin/pools/{other}/changes", params={"cursor": 0}),
    ]
    for r in refused:
        assert r.status_code == 403, (r.request.method, r.request.url, r.text)
        error_of(r)
    assert alice.get(url).json() == doc
    # another pool's group through its own pool: not there
    assert balancer.get(f"/api/admin/pools/{mine}/groups/{foreign}").status_code == 404
    # a plain user may not read pools either
    assert alice.get(f"/api/admin/pools/{mine}/groups").status_code == 403
    assert alice.post("/api/admin/balancers/heartbeat", json=heartbeat_body("x")).status_code == 403


def test_a_wrong_or_revoked_token_is_401_and_guesses_are_throttled(start_server: StartServer) -> None:
    server = start_server()  # its own server: the failures below lock 127.0.0.1 out for a moment
    pool = new_pool()
    token = make_token(server, pool)
    balancer = as_token(server, token)
    assert balancer.get(f"/api/admin/pools/{pool}/groups").status_code == 200
    token_id = token.split("_")[1]
    r = server.admin.delete(f"/api/admin/tokens/{token_id}")
    assert r.status_code == 200 and r.json()["revoked"] is not None, r.text
    first = server.admin.get("/api/admin/tokens").json()["tokens"]
    again = server.admin.delete(f"/api/admin/tokens/{token_id}")
    assert again.status_code == 200 and again.json() in first  # revoking twice keeps the first time
    assert server.admin.delete("/api/admin/tokens/000000000000").status_code == 404
    wrong = as_token(server, token[:-1] + ("A" if token[-1] != "A" else "B"))
    nonsense = as_token(server, "bdt_nonsense")
    # three failed checks of one token ID from one address (revoked, wrong secret, on a Basic route) ...
    for r in (balancer.get(f"/api/admin/pools/{pool}/groups"), wrong.get(f"/api/admin/pools/{pool}/groups")):
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), r.text
    r = balancer.get("/api/mgmt/connectors")  # elsewhere the challenge is Basic's
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic"), r.text
    for r in (nonsense.get(f"/api/admin/pools/{pool}/groups"),
              nonsense.post("/api/admin/balancers/heartbeat", json=heartbeat_body("x"))):
        assert r.status_code == 401, r.text
    # ... and the next guess at that ID is refused before it is checked (the login throttle's pair rule)
    r = wrong.get(f"/api/admin/pools/{pool}/groups")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BALANCEDESK, *args], capture_output=True, text=True, timeout=60, env=dict(os.environ))


def test_tokens_from_the_command_line_work_against_a_running_server(shared_server: Server) -> None:
    server = shared_server
    data = server.store_args
    pool = new_pool()
    made = _cli("tokens", "add", "--pool", pool, "--label", "from cli", *data)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("bdt_") and "shown this once" in made.stderr
    balancer = as_token(server, token)
    assert balancer.get(f"/api/admin/pools/{pool}/groups").status_code == 200
    listed = _cli("tokens", "list", *data)
    assert listed.returncode == 0 and pool in listed.stdout and token.split("_", 2)[2] not in listed.stdout
    token_id = token.split("_")[1]
    assert f"{token_id}\t{pool}\tactive\tfrom cli" in listed.stdout
    revoked = _cli("tokens", "revoke", token_id, *data)
    assert revoked.returncode == 0, revoked.stderr
    assert balancer.get(f"/api/admin/pools/{pool}/groups").status_code == 401
    assert f"{token_id}\t{pool}\trevoked" in _cli("tokens", "list", *data).stdout
    bad = _cli("tokens", "revoke", "ffffffffffff", *data)
    assert bad.returncode == 1 and "no balancer token" in bad.stderr
    bad = _cli("tokens", "add", "--pool", "no spaces", *data)
    assert bad.returncode == 1 and "pool" in bad.stderr

"""Admin endpoint and config: bearer auth, snapshot shape, event cursor, member state/weight, PUT config,
file reload (good and bad, SIGHUP), metrics, the readiness line, the token file, workers."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import httpx
import pytest
from balancedesk.core.proxy import limits
from lbkit import Members, Spawn, StartBalancer, balance_cmd, connect, group_config, request, wait_until

pytestmark = pytest.mark.usefixtures("http_plane")  # each test on both L7 data planes


def test_auth_and_token_file(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")
    assert stat.S_IMODE(bal.token_file.stat().st_mode) == 0o600 and len(bal.token) >= 32
    assert bal.admin_url is not None
    for path in ("/admin/snapshot", "/admin/events", "/metrics"):
        assert httpx.get(bal.admin_url + path).status_code == 401
        bad = httpx.get(bal.admin_url + path, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
    assert bal.admin("GET", "/admin/nothing").status_code == 404
    assert bal.admin("DELETE", "/admin/snapshot").status_code == 405


def test_snapshot_shape(balancer: StartBalancer, members: Members) -> None:
    a, b = members.http("a"), members.http("b")
    cfg = group_config([("a", a.endpoint, 2), ("b", b.endpoint, 1)], connection_timeout=7, retry_delay=9)
    bal = balancer(cfg, mode="http")
    s = connect(bal.addr)
    for _ in range(3):
        request(s, "GET", "/", body=b"12345")
    snap = bal.snapshot()
    assert snap["version"] == 1 and snap["mode"] == "http"
    assert snap["listen"] == f"{bal.host}:{bal.port}"
    assert snap["affinityHeader"] == "sender-transfer-id"
    assert snap["group"] == {"connectorID": "grp-1", "label": "shell group", "loadBalancing": "Round Robin",
                             "connectionTimeout": 7, "retryDelay": 9}
    assert snap["uptime_s"] >= 0 and isinstance(snap["now"], float)
    keys = {"memberID", "endpoint", "sequence", "weight", "admin", "health", "disabledUntil", "retryIn_s",
            "active", "total", "failures", "bytesIn", "bytesOut", "latencyP50_ms", "latencyP99_ms",
            "configuredShare", "actualShare", "check", "failuresAllWorkers", "label", "statusClasses",
            "downTotal_s", "queued"}
    for m in snap["members"]:
        assert set(m) == keys
        assert m["check"] is None  # no health checks configured
        assert m["failuresAllWorkers"] is None  # one worker: nothing shared
    assert snap["sticky"] == {"entries": 0, "capacity": limits.STICKY_ENTRIES, "idleTimeout_s": limits.STICKY_IDLE_S,
                              "evictions": 0, "expiries": 0, "shared": False, "workers": 1, "unsharedMembers": 0}
    assert snap["accessLog"] is None and not {"healthCheck", "accessLog"} & set(snap["listener"])
    ma = snap["members"][0]
    assert ma["memberID"] == "a" and ma["endpoint"] == a.endpoint and ma["admin"] == "enabled"
    assert ma["health"] == "up" and ma["disabledUntil"] is None and ma["retryIn_s"] is None
    assert ma["total"] == 2 and ma["bytesIn"] == 10 and ma["bytesOut"] == 2
    assert abs(ma["configuredShare"] - 2 / 3) < 1e-9 and abs(ma["actualShare"] - 2 / 3) < 1e-9
    assert snap["totals"] == {"accepted": 1, "active": 1, "refused": 0, "failed": 0, "sampledAway": 0}


def test_event_cursor(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")
    first = bal.admin("GET", "/admin/events", params={"after": 0}).json()
    assert [e["kind"] for e in first["events"]] == ["config"] and first["dropped"] == 0
    cursor = first["cursor"]
    s = connect(bal.addr)
    for i in range(5):
        request(s, "GET", f"/{i}")
    got = bal.admin("GET", "/admin/events", params={"after": cursor, "limit": 3}).json()
    assert [e["kind"] for e in got["events"]] == ["route"] * 3
    seqs = [e["seq"] for e in got["events"]]
    assert seqs == sorted(seqs) and seqs[0] > cursor and got["cursor"] == seqs[-1]
    rest = bal.admin("GET", "/admin/events", params={"after": got["cursor"]}).json()
    assert len(rest["events"]) == 2 and rest["events"][0]["seq"] == got["cursor"] + 1
    e = rest["events"][-1]
    assert e["client"].startswith("127.0.0.1:") and e["memberID"] == "a" and e["outcome"] == "ok"
    assert e["attempts"][0]["memberID"] == "a" and e["attempts"][0]["outcome"] == "ok"
    idle = bal.admin("GET", "/admin/events", params={"after": rest["cursor"]}).json()
    assert idle == {"cursor": rest["cursor"], "events": [], "dropped": 0}
    assert bal.admin("GET", "/admin/events", params={"after": "x"}).status_code == 400


def test_member_state_and_weight(balancer: StartBalancer, members: Members) -> None:
    a, b = members.http("a"), members.http("b")
    bal = balancer(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    r = bal.admin("POST", "/admin/members/a/state", json={"state": "drain"})
    assert r.status_code == 200 and r.json()["admin"] == "drain" and r.json()["memberID"] == "a"
    assert {request(s, "GET", "/")[2] for _ in range(4)} == {b"b"}
    bal.admin("POST", "/admin/members/b/state", json={"state": "disabled"})
    status, _, body = request(s, "GET", "/")
    assert status == 503 and b"no member is enabled" in body
    bal.admin("POST", "/admin/members/a/state", json={"state": "enabled"})
    bal.admin("POST", "/admin/members/b/state", json={"state": "enabled"})
    r = bal.admin("POST", "/admin/members/b/weight", json={"weight": 3})
    assert r.status_code == 200 and r.json()["weight"] == 3 and r.json()["configuredShare"] == 0.75
    got = [request(s, "GET", "/")[2] for _ in range(8)]
    assert got.count(b"b") == 6
    assert bal.admin("POST", "/admin/members/a/state", json={"state": "sleepy"}).status_code == 400
    assert bal.admin("POST", "/admin/members/a/weight", json={"weight": 0}).status_code == 400
    assert bal.admin("POST", "/admin/members/zz/state", json={"state": "drain"}).status_code == 404
    ev = bal.admin("GET", "/admin/events").json()["events"]
    admin = [(e["memberID"], e["state"]) for e in ev if e["kind"] == "admin"]
    assert admin[:2] == [("a", "drain"), ("b", "disabled")]


def test_put_config_good_and_bad(balancer: StartBalancer, members: Members) -> None:
    a, b = members.http("a"), members.http("b")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    assert request(s, "GET", "/")[2] == b"a"
    bad = group_config([("a", a.endpoint, 1)])
    bad["connectorGroup"]["members"][0]["weight"] = -1
    r = bal.admin("PUT", "/admin/config", json=bad)
    assert r.status_code == 400 and r.json()["error"]["problems"]
    r = bal.admin("PUT", "/admin/config", content=b"{not json")
    assert r.status_code == 400
    assert request(s, "GET", "/")[2] == b"a"  # the old config keeps serving
    r = bal.admin("PUT", "/admin/config", json=group_config([("b", b.endpoint, 1)]))
    assert r.status_code == 200 and r.json() == {"version": 2}
    assert request(s, "GET", "/")[2] == b"b"  # same client connection, new member
    snap = bal.snapshot()
    assert snap["version"] == 2 and [m["memberID"] for m in snap["members"]] == ["b"]
    ev = bal.admin("GET", "/admin/events").json()["events"]
    configs = [e for e in ev if e["kind"] == "config"]
    assert [c["version"] for c in configs] == [1, 1, 1, 2] and "error" in configs[1]


def test_config_file_reload_good_bad_and_sighup(balancer: StartBalancer, members: Members) -> None:
    a, b = members.http("a"), members.http("b")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    assert request(s, "GET", "/")[2] == b"a"
    bal.config_path.write_text("{ broken")
    bal.child.wait_for(r"refused, the old one keeps serving")
    assert request(s, "GET", "/")[2] == b"a" and bal.snapshot()["version"] == 1
    bal.config_path.write_text(json.dumps(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1)],
                                                       round_robin=False)))
    wait_until(lambda: bal.snapshot()["version"] == 2, what="file change applied")
    # SIGHUP: reload at once (same content → new version, same state)
    bal.admin("POST", "/admin/members/a/state", json={"state": "drain"})
    os.kill(bal.child.pid, signal.SIGHUP)
    wait_until(lambda: bal.snapshot()["version"] == 3, what="SIGHUP reload")
    assert bal.member("a")["admin"] == "drain"  # runtime state survives a reload
    assert request(s, "GET", "/")[2] == b"b"


def test_metrics(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    request(s, "GET", "/")
    r = bal.admin("GET", "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "balancedesk_accepted_total 1" in r.text
    assert 'balancedesk_member_requests_total{member="a",label=""} 1' in r.text
    assert 'balancedesk_member_up{member="a",label="",admin="enabled"} 1' in r.text
    assert 'balancedesk_member_responses_total{member="a",label="",code="2xx"} 1' in r.text


def test_cli_errors_and_no_admin_line(spawn: Spawn, tmp_path: Path, balancer: StartBalancer,
                                      members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="tcp", admin=False)
    assert bal.admin_url is None and bal.child.lines[-1] == f"balancedesk: balancing {bal.host}:{bal.port}"
    bal.child.kill(signal.SIGTERM)
    assert bal.child.proc.returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"connectorGroup": {"members": [{"memberID": "x", "sequence": 1}]},
                               "endpoints": {}}))
    child = spawn(balance_cmd(["--config", str(bad)], mode="http"))
    assert child.proc.wait(20) == 2
    assert any("no endpoint" in line for line in child.lines) or "no endpoint" in (child.proc.stdout.read() or "")
    child = spawn(balance_cmd(["--config", str(bal.config_path)], mode="http", args=["--admin", "127.0.0.1:0"]))
    assert child.proc.wait(20) == 2


def test_workers_share_the_port(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http", args=["--workers", "2"])
    for _ in range(20):
        s = connect(bal.addr)
        assert request(s, "GET", "/", headers={"Connection": "close"})[2] == b"a"
        s.close()
    assert bal.snapshot()["totals"]["accepted"] <= 20  # worker 0's own view
    bal.child.kill(signal.SIGTERM)
    assert bal.child.proc.returncode == 0

"""HAProxy as an engine, on the real HAProxy: started by the test in master-worker mode (``-W -S``) with a
stats socket at admin level, real upstream processes (tests/proxy/upstreams) on 127.0.0.1 killed by PID.

What must hold: a deployed 3,2,1 group shares 60 connections 30/20/10; a weight set through the engine
interface moves the share without a reload; a drained member takes no new session while an open one
finishes; a killed member shows down within the check interval; a reload during a long upload does not cut
it; a config that fails ``haproxy -c`` leaves the running one untouched."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest
from balancedesk.core.engines import Engine, EngineRefused
from balancedesk.core.haproxy.deploy import DeployError, deploy, show_proc
from balancedesk.core.haproxy.engine import HaproxyEngine
from balancedesk.core.model import BalancerConfig, parse_balancer_config
from balancedesk.core.proxy.contract import Snapshot, parse_event
from haproxykit import RunningHaproxy, check_config_file
from lbkit import DEADLINE, Upstream, wait_until

GROUP_ID = "g-hap"
BACKEND = f"bd_{GROUP_ID}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group(ups: list[Upstream], weights: list[int], *, retry_delay: int = 1, mode: str = "tcp") -> BalancerConfig:
    return parse_balancer_config({
        "connectorID": GROUP_ID, "label": "HAProxy group",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": retry_delay, "loadBalancing": "Round Robin",
                           "members": [{"memberID": u.name, "sequence": i + 1, "weight": w}
                                       for i, (u, w) in enumerate(zip(ups, weights, strict=True))]},
        "endpoints": {u.name: u.endpoint for u in ups},
        "listener": {"mode": mode, "port": 1},
    })


def ask(port: int) -> str:
    """One connection through HAProxy to a tcp_name upstream: the name that answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as c:
        c.sendall(b"hi\n")
        f = c.makefile("rb")
        line = f.readline().decode()
    assert line.endswith(" hi\n"), line
    return line.split()[0]


def shares(port: int, n: int = 60) -> Counter[str]:
    return Counter(ask(port) for _ in range(n))


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, DEADLINE * 3))


def snap(engine: Engine) -> Snapshot:
    return run(engine.snapshot())  # type: ignore[no-any-return]


def wait_listening(port: int) -> None:
    def probe() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(probe, what=f"HAProxy's frontend on {port}")


@pytest.fixture
def three(upstream: Any) -> list[Upstream]:
    return [upstream("tcp_name", n) for n in ("A", "B", "C")]


def deployed(haproxy: Any, ups: list[Upstream], weights: list[int], **kw: Any) -> tuple[RunningHaproxy, int]:
    h: RunningHaproxy = haproxy()
    port = free_port()
    results = run(deploy(group(ups, weights, **kw), [h.instance(f"127.0.0.1:{port}")]))
    assert results[0].changed and results[0].workers, results
    wait_listening(port)
    return h, port


def masters_reloads(h: RunningHaproxy) -> int:
    return next(p.reloads for p in run(show_proc(h.master)) if p.kind == "master")


def wait_all_up(engine: HaproxyEngine, n: int) -> Snapshot:
    """Checks are on (retryDelay): a server is UP after its first check. Wait for all ``n``."""
    def probe() -> Snapshot | None:
        s = snap(engine)
        ok = len(s.members) == n and all(m.check_state == "up" and m.check_ok for m in s.members)
        return s if ok else None
    return wait_until(probe, what="every server checked UP")


def test_deploy_321_shares_30_20_10(haproxy: Any, three: list[Upstream]) -> None:
    h, port = deployed(haproxy, three, [3, 2, 1])
    text = h.config.read_text()
    assert text.startswith(h.config.read_text().split("# BEGIN balancedesk")[0])  # the admin's part untouched
    assert f"# BEGIN balancedesk group {GROUP_ID} version 1" in text
    wait_all_up(HaproxyEngine(h.stats, BACKEND), 3)
    counts = shares(port)
    assert (counts["A"], counts["B"], counts["C"]) == (30, 20, 10), counts


def test_weight_through_engine_moves_share_without_reload(haproxy: Any, three: list[Upstream]) -> None:
    h, port = deployed(haproxy, three, [3, 2, 1])
    engine = HaproxyEngine(h.stats, BACKEND)
    wait_all_up(engine, 3)
    reloads = masters_reloads(h)
    run(engine.set_weight("A", 1))
    s = snap(engine)
    assert s.member("A") is not None and s.member("A").weight == 1  # type: ignore[union-attr]
    assert {"connectorID": GROUP_ID, "memberID": "A", "weight": 1} in s.overrides
    shares(port, 8)  # HAProxy's round robin resumes mid-cycle after a weight change: let one cycle pass
    counts = shares(port)
    # 1,2,1 of 60 is 15/30/15; HAProxy rebuilds its round-robin tree on a live weight change and does not
    # promise the new cycle starts aligned, so a pick may land one cycle early: within one of the share
    assert sum(counts.values()) == 60 and abs(counts["A"] - 15) <= 1 and abs(counts["C"] - 15) <= 1, counts
    assert abs(counts["B"] - 30) <= 1 and counts["B"] > counts["A"] and counts["B"] > counts["C"], counts
    assert masters_reloads(h) == reloads  # the Runtime API changed it: no reload happened
    run(engine.revert("A"))
    s = snap(engine)
    assert s.member("A").weight == 3 and s.overrides == ()  # type: ignore[union-attr]
    with pytest.raises(EngineRefused):
        run(engine.set_weight("A", 257))


def test_drained_member_gets_no_new_sessions_while_open_one_finishes(haproxy: Any, three: list[Upstream]) -> None:
    h, port = deployed(haproxy, three, [1, 1, 1])
    engine = HaproxyEngine(h.stats, BACKEND)
    wait_all_up(engine, 3)
    held = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    f = held.makefile("rb")
    held.sendall(b"first\n")
    who = f.readline().decode().split()[0]
    run(engine.set_state(who, "drain"))
    s = snap(engine)
    m = s.member(who)
    assert m is not None and m.admin == "drain" and m.state == "draining" and m.active == 1, m
    assert {"connectorID": GROUP_ID, "memberID": who, "state": "drain"} in s.overrides
    counts = shares(port, 30)
    assert counts[who] == 0 and sum(counts.values()) == 30, counts
    held.sendall(b"still here\n")  # the open session goes on on the drained member
    assert f.readline().decode() == f"{who} still here\n"
    f.close()  # the file object holds the socket open too
    held.close()
    wait_until(lambda: snap(engine).member(who).active == 0, what="the drained member's session ended")  # type: ignore[union-attr]
    events = run(engine.events(None))
    assert any(e["kind"] == "admin" and e["memberID"] == who and e["state"] == "drain" for e in events.events)


def test_killed_member_shows_down_within_check_interval(haproxy: Any, three: list[Upstream]) -> None:
    h, port = deployed(haproxy, three, [1, 1, 1], retry_delay=1)  # check inter 1s fall 1
    engine = HaproxyEngine(h.stats, BACKEND)
    wait_all_up(engine, 3)
    cursor = run(engine.events(None)).cursor
    three[2].child.kill()
    killed = time.monotonic()
    def c_down() -> Snapshot | None:
        s = snap(engine)
        c = s.member("C")
        return s if c is not None and c.state == "down" else None
    s = wait_until(c_down, what="C shown down", every=0.05)
    took = time.monotonic() - killed
    assert took <= 1.0 * 2 + 1.0, f"down after {took:.2f} s with a 1 s check interval"  # an interval, plus a margin
    c = s.member("C")
    assert c is not None and c.health == "disabled" and c.check_ok is False and c.check_state == "down"
    batch = run(engine.events(cursor))
    health = [parse_event(e) for e in batch.events if e["kind"] == "health"]
    assert [(e.member_id, e.state) for e in health] == [("C", "disabled")]  # type: ignore[union-attr]
    assert set(shares(port, 20)) == {"A", "B"}


def test_reload_during_a_long_upload_does_not_cut_it(haproxy: Any, three: list[Upstream]) -> None:
    h, port = deployed(haproxy, three, [1, 1, 1])
    engine = HaproxyEngine(h.stats, BACKEND)
    wait_all_up(engine, 3)
    workers_before = {p.pid for p in run(show_proc(h.master)) if p.kind == "worker"}
    chunk = b"x" * 8192
    up = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    f = up.makefile("rb")
    echoed = 0
    reloaded: list[Any] = []

    def redeploy() -> None:  # another version of the group (weights changed): a real reload
        reloaded.append(run(deploy(group(three, [2, 1, 1]), [h.instance(f"127.0.0.1:{port}")])))

    t: threading.Thread | None = None
    for i in range(400):  # ~3.2 MB, each line echoed before the next: the upload spans the reload
        up.sendall(chunk + b"\n")
        line = f.readline()
        assert line.endswith(chunk + b"\n"), f"upload cut after {echoed} lines: {line[:40]!r}"
        echoed += 1
        if i == 50:
            t = threading.Thread(target=redeploy)
            t.start()
        if i > 50 and t is not None and not t.is_alive() and i > 300:
            break
    assert t is not None
    t.join(DEADLINE * 3)
    assert reloaded and reloaded[0][0].version == 2, reloaded
    procs = run(show_proc(h.master))
    assert any(p.kind == "worker" and not p.old and p.pid not in workers_before for p in procs), procs
    up.sendall(b"after the reload\n")
    assert f.readline().endswith(b" after the reload\n")  # the old worker still carries the upload
    f.close()
    up.close()
    assert echoed >= 300


def test_config_failing_check_leaves_running_one_untouched(haproxy: Any, three: list[Upstream]) -> None:
    h, port = deployed(haproxy, three, [3, 2, 1])
    engine = HaproxyEngine(h.stats, BACKEND)
    wait_all_up(engine, 3)
    # the admin's own part of the file already has a backend of the name a second group would get: valid alone,
    # refused by haproxy -c once the group's section is added (two proxies of one name)
    h.config.write_text(h.config.read_text() + "\nbackend bd_g-two\n    mode tcp\n    server x 127.0.0.1:1\n")
    assert check_config_file(h.config).returncode == 0
    before_text = h.config.read_bytes()
    before = run(show_proc(h.master))
    second = parse_balancer_config({**group(three, [1, 1, 1]).model_dump(by_alias=True, mode="json"),
                                    "connectorID": "g-two"})
    with pytest.raises(DeployError) as err:
        run(deploy(second, [h.instance(f"127.0.0.1:{free_port()}")]))
    said = str(err.value)
    assert "haproxy -c refused" in said and "bd_g-two" in said and str(h.config) in said, said
    assert ".check." not in said  # HAProxy's words name the real file, not the temporary copy
    assert h.config.read_bytes() == before_text  # nothing written
    after = run(show_proc(h.master))
    assert [(p.pid, p.kind, p.reloads) for p in after] == [(p.pid, p.kind, p.reloads) for p in before]  # no reload
    counts = shares(port)
    assert (counts["A"], counts["B"], counts["C"]) == (30, 20, 10), counts  # the running config serves on


def http_group(ups: list[Upstream]) -> BalancerConfig:
    """An L7 group: the listener's default affinity header (sender-transfer-id) keeps a transfer on one member."""
    return parse_balancer_config({
        "connectorID": GROUP_ID, "label": "HAProxy http group",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 1, "loadBalancing": "Round Robin",
                           "members": [{"memberID": u.name, "sequence": i + 1, "weight": 1}
                                       for i, u in enumerate(ups)]},
        "endpoints": {u.name: u.endpoint for u in ups},
        "listener": {"mode": "http", "port": 1},
    })


def call(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    out = (r.status, json.loads(r.read() or b"null"), r.getheader("X-Upstream"))
    c.close()
    return out


def test_http_affinity_keeps_transfers_and_a_reload_does_not_cut_an_upload(haproxy: Any, upstream: Any) -> None:
    ups = [upstream("http_backend", n) for n in ("A", "B", "C")]
    h: RunningHaproxy = haproxy()
    port = free_port()
    run(deploy(http_group(ups), [h.instance(f"127.0.0.1:{port}")]))
    assert "balance hdr(sender-transfer-id)" in h.config.read_text()
    wait_all_up(HaproxyEngine(h.stats, BACKEND), 3)
    # affinity on: every call of a transfer reaches the member that holds it (another one answers 404)
    seen = set()
    for i in range(9):
        hdr = {"sender-transfer-id": f"t-{i}"}
        status, made, who = call(port, "POST", "/transfers/push", b'{"Buckets": 2}', hdr)
        assert status == 200, made
        for k in range(2):
            assert call(port, "PUT", f"/transfers/push/t-{i}/{k}", b"x" * 1000, hdr)[0] == 200
        status, done, who2 = call(port, "POST", f"/transfers/push/t-{i}/commit", b"", hdr)
        assert status == 200 and who2 == who, done
        seen.add(who)
    assert len(seen) > 1  # the keys spread over the members

    # a long upload: half its body before the reload, the rest after it is confirmed, one answer at the end
    hdr = {"sender-transfer-id": "big"}
    assert call(port, "POST", "/transfers/push", b'{"Buckets": 1}', hdr)[0] == 200
    size = 4 * 1024 * 1024
    up = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    up.sendall((f"PUT /transfers/push/big/0 HTTP/1.1\r\nHost: x\r\nsender-transfer-id: big\r\n"
                f"Content-Length: {size}\r\n\r\n").encode())
    up.sendall(b"y" * (size // 2))
    results = run(deploy(group(ups, [2, 1, 1], mode="http"), [h.instance(f"127.0.0.1:{port}")]))
    assert results[0].version == 2 and results[0].workers  # reloaded: new workers run the new version
    up.sendall(b"y" * (size - size // 2))
    f = up.makefile("rb")
    status_line = f.readline()
    assert status_line.startswith(b"HTTP/1.1 200"), status_line
    head = {}
    while (line := f.readline().strip()):
        name, _, value = line.decode().partition(":")
        head[name.strip().lower()] = value.strip()
    answer = json.loads(f.read(int(head["content-length"])))
    assert answer["Bytes"] == size, answer  # every byte arrived, across the reload
    f.close()
    up.close()

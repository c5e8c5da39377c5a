"""``balancedesk balance --config FILE`` with ``{"groups": […]}``: several groups in one process, each on its own
listener; an edit of the file changes only the groups it changes; a port that is taken is reported for its
group while the others serve; with ``--workers 2`` a group's drain reaches both workers, a group added after
the fork shares its state too, and a group removed gives its shared slots back. And the command line's
refusals of the old single-group API mode."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from fleetkit import FLEET_RX, FleetBalancer, free_port
from lbkit import BALANCEDESK, Spawn, StartUpstream, ask, group_config, wait_until


def _group(gid: str, members: list[tuple[str, str, int]], port: int, **listener: Any) -> dict[str, Any]:
    cfg = group_config(members)
    cfg["connectorID"] = gid
    cfg["listener"] = {"port": port, "bind": "127.0.0.1", **listener}
    return cfg


def _write(path: Path, groups: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"groups": groups}))
    os.replace(tmp, path)


def _start(spawn: Spawn, folder: Path, path: Path, *args: str) -> FleetBalancer:
    token = folder / "admin.token"
    child = spawn([*BALANCEDESK, "balance", "--config", str(path), "--admin", "127.0.0.1:0",
                   "--admin-token-file", str(token), *args])
    m = child.wait_for(FLEET_RX, timeout=30)
    return FleetBalancer(child, m[3], token.read_text().strip())


def test_a_file_of_groups_each_on_its_listener(spawn: Spawn, upstream: StartUpstream, tmp_path: Path) -> None:
    a, b = upstream("tcp_name", "a"), upstream("tcp_name", "b")
    p1, p2, p3 = free_port(), free_port(), free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", p3))
    taken.listen(1)
    path = tmp_path / "groups.json"
    g1 = _group("g1", [("a", a.endpoint, 1)], p1)
    g2 = _group("g2", [("b", b.endpoint, 1)], p2)
    g3 = _group("g3", [("a", a.endpoint, 1)], p3)
    _write(path, [g1, g2, g3])
    lb = _start(spawn, tmp_path, path)
    try:
        groups = lb.groups()
        assert groups["g1"]["listen"] == f"127.0.0.1:{p1}" and groups["g2"]["listen"] == f"127.0.0.1:{p2}"
        assert groups["g3"]["listen"] is None and "in use" in groups["g3"]["error"], groups["g3"]
        assert lb.admin("GET", "/groups/g3/snapshot").status_code == 503
        assert asyncio.run(ask(("127.0.0.1", p1))) == "a" and asyncio.run(ask(("127.0.0.1", p2))) == "b"
        assert lb.admin("GET", "/admin/snapshot").status_code == 404, "several groups: no single-group routes"
        v1 = lb.snapshot("g1")["version"]

        taken.close()
        p2b = free_port()
        g2 = _group("g2", [("b", b.endpoint, 1)], p2b)  # moves to another port: its listener reopens
        g3 = {**g3, "label": "retry"}  # changed: the taken port is tried again
        _write(path, [g1, g2, g3])
        wait_until(lambda: (got := lb.groups())["g2"]["listen"] == f"127.0.0.1:{p2b}" and got["g3"]["listen"],
                   what="g2 on its new port and g3 listening", timeout=15)
        assert asyncio.run(ask(("127.0.0.1", p2b))) == "b" and asyncio.run(ask(("127.0.0.1", p3))) == "a"
        assert asyncio.run(ask(("127.0.0.1", p2), deadline_s=5)) is None, "g2's old port is closed"
        assert lb.snapshot("g1")["version"] == v1, "g1 was not touched"
        assert len(lb.config_events("g1")) == 1

        _write(path, [g1])  # g2 and g3 removed
        wait_until(lambda: sorted(lb.groups()) == ["g1"], what="only g1 left", timeout=15)
        assert lb.json("GET", "/admin/snapshot")["group"]["connectorID"] == "g1", "one group: the old routes"
    finally:
        taken.close()
        lb.child.kill(signal.SIGTERM)


def test_the_old_api_mode_is_refused_with_a_pointer(spawn: Spawn, tmp_path: Path) -> None:
    child = spawn([*BALANCEDESK, "balance", "--api", "http://127.0.0.1:1", "--group", "g", "--user", "admin",
                   "--listen", "127.0.0.1:0", "--mode", "tcp"])
    child.wait_for(r"--group, --user and --password-\* are gone: .*--api URL --token-file F", timeout=30)
    assert child.proc.wait(30) == 2
    token = tmp_path / "t"
    token.write_text("not-a-token\n")
    child = spawn([*BALANCEDESK, "balance", "--api", "http://127.0.0.1:1", "--token-file", str(token)])
    child.wait_for(r"holds no balancer token", timeout=30)
    assert child.proc.wait(30) == 2


def test_a_file_of_groups_on_two_workers_shares_one_state(spawn: Spawn, upstream: StartUpstream,
                                                         tmp_path: Path) -> None:
    a, b = upstream("tcp_name", "a"), upstream("tcp_name", "b")
    p1, p2 = free_port(), free_port()
    path = tmp_path / "groups.json"
    g1 = _group("g1", [("a", a.endpoint, 1), ("b", b.endpoint, 1)], p1)
    _write(path, [g1])
    lb = _start(spawn, tmp_path, path, "--workers", "2")
    try:
        shared = lb.snapshot("g1")["shared"]
        assert shared["workers"] == 2 and shared["slots"]["used"] == 3  # g1's own slot, a and b
        g2 = _group("g2", [("a", a.endpoint, 1), ("b", b.endpoint, 1)], p2)  # added after the fork
        _write(path, [g1, g2])
        wait_until(lambda: "g2" in lb.groups(), what="g2 opened", timeout=15)
        assert lb.snapshot("g1")["shared"]["slots"]["used"] == 6
        lb.json("POST", "/groups/g2/members/b/state", json={"state": "drain"})  # sent once, to worker 0

        async def asks() -> list[str | None]:
            return [await ask(("127.0.0.1", p2)) for _ in range(40)]
        per: list[int] = [0, 0]
        for n in range(1, 11):  # until the second worker has opened g2 too (each worker reads the file itself)
            assert asyncio.run(asks()) == ["a"] * 40, "no connection to the drained member, on either worker"
            per = wait_until(lambda n=n: (x := lb.snapshot("g2")["shared"]["acceptedPerWorker"]) and
                             sum(x) >= 40 * n and x, what="both workers' counters summed")
            if all(k > 0 for k in per):
                break
        assert all(k > 0 for k in per), f"both workers took some: {per}"
        assert lb.snapshot("g2")["totals"]["accepted"] == sum(per)
        _write(path, [g1])  # g2 removed: its slots go back once both workers closed it
        wait_until(lambda: lb.snapshot("g1")["shared"]["slots"]["used"] == 3, what="g2's slots given back",
                   timeout=20)
    finally:
        lb.child.kill(signal.SIGTERM)

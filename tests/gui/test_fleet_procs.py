"""The fleet in the GUI against real processes, started once for this module: one ``balancedesk serve``
(heartbeat interval 6 s: lost after 18 s, so a balancer stopped for a test's few seconds
is never called lost), two demo members (TCP echo), two groups in one pool, and three
``balancedesk balance --api URL --token-file F --pool P`` processes (listening on 127.0.0.2, .3 and .4 — every
127.x address is loopback, so three balancers on one machine can serve one port).

* The Balancers view lists the three instances; a balancer stopped with SIGSTOP misses a save and shows its
  drift; after SIGCONT it catches up and the drift clears.
* The aggregated live view of a group sums the instances (real connections through two of them: the summed
  counts equal the sum of each instance's own), tags timeline events by instance, acts on all instances or
  on one, saves live weights to the server and reverts on every instance, and shows a stopped instance as
  not answering while the others go on (and the action that could not reach it says so).
* Apply refuses a balancer that runs another group.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from balancedesk.core.client import MgmtClient
from balancedesk.gui.fleet.rows import IN_SYNC, InstanceRow
from balancedesk.gui.fleet.window import BalancersWindow
from balancedesk.gui.live import AdminClient, LiveWindow, open_live_view
from balancedesk.gui.live.aggregate import ANSWERS, LOST, UNREACHABLE
from balancedesk.gui.live.fleetlive import FLEET_BUTTON, FleetLiveWindow, offer_fleet_view
from balancedesk.gui.live.models import COL_TOTAL, COL_WEIGHT
from pytestqt.qtbot import QtBot

from tests.conftest import Child, start_child
from tests.gui.conftest import ADMIN_PASSWORD

LONG = 30_000
CMD = [sys.executable, "-m", "balancedesk.gui.launcher"]
HEARTBEAT_S = 6.0
POOL = "radiology"
FLEET_RX = r"balancedesk: balancing (\d+) groups(?: pool (\S+))?(?: admin (http://127\.0\.0\.1:\d+))?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Balancer:
    child: Child
    bind: str
    admin_url: str

    @property
    def pid(self) -> int:
        return self.child.pid


@dataclass
class Procs:
    url: str
    http: httpx.Client
    group: str  # "orthanc": members a, b
    other: str  # "dicom": the same members, another port
    members: tuple[str, str]
    port: int
    balancers: list[Balancer]

    def instance(self, b: Balancer) -> str:
        for row in self.http.get("/api/admin/balancers").json()["balancers"]:
            if row["instanceID"].split(":")[1] == str(b.pid):
                return str(row["instanceID"])
        raise AssertionError(f"balancer pid {b.pid} not listed")

    def snapshot(self, b: Balancer, gid: str) -> dict[str, Any]:
        admin = self.http.get(f"/api/admin/balancers/{self.instance(b)}/admin").json()
        r = httpx.get(f"{b.admin_url}/groups/{gid}/snapshot",
                      headers={"Authorization": f"Bearer {admin['adminToken']}"}, timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def set_weight(self, gid: str, member_index: int, weight: int) -> int:
        r = self.http.get(f"/api/mgmt/connectors/{gid}")
        body = r.json()
        body["connectorGroup"]["members"][member_index]["weight"] = weight
        r = self.http.put(f"/api/mgmt/connectors/{gid}", json=body, headers={"If-Match": r.headers["ETag"]})
        assert r.status_code == 200, r.text
        return self.version(gid)

    def version(self, gid: str) -> int:
        return int(self.http.get(f"/api/admin/pools/{POOL}/groups/{gid}").json()["version"])

    def saved_weights(self, gid: str) -> list[int]:
        return [m["weight"] for m in self.http.get(f"/api/mgmt/connectors/{gid}").json()["connectorGroup"]["members"]]


def _connect(host: str, port: int, count: int) -> None:
    """``count`` real TCP connections through a balancer: a line out, its echo back, closed."""
    for i in range(count):
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(f"hello {i}\n".encode())
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(100)
                assert chunk, "the balancer closed the connection before the echo"
                got += chunk
            assert got == f"hello {i}\n".encode()


@pytest.fixture(scope="module")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Procs]:
    tmp = tmp_path_factory.mktemp("fleet-procs")
    children: list[Child] = []

    def spawn(cmd: list[str], env: dict[str, str] | None = None) -> Child:
        child = start_child(cmd, env=env)
        children.append(child)
        return child

    try:
        server = spawn([*CMD, "serve", "--port", "0", "--data", str(tmp / "mgmt"),
                        "--heartbeat-interval", str(HEARTBEAT_S)], env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
        url = server.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30).group(1)
        http = httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD), timeout=30)
        endpoints = []
        for name in ("a", "b"):
            m = spawn([*CMD, "demo-member", "--listen", "127.0.0.1:0", "--mode", "tcp", "--name", name])
            endpoints.append(m.wait_for(r"balancedesk: demo member \S+ on (\S+)", timeout=30).group(1))
        port = _free_port()

        def group(label: str, gport: int) -> str:
            ids.clear()
            for name, endpoint in zip(("a", "b"), endpoints, strict=True):  # a connector belongs to one group
                r = http.post("/api/admin/connectors", json={"label": f"{label}-{name}", "owner": "admin",
                                                             "endpoint": endpoint})
                assert r.status_code == 201, r.text
                ids.append(str(r.json()["connectorID"]))
            r = http.post("/api/mgmt/connectors", json={
                "label": label, "owner": "admin", "listener": {"port": gport, "pool": POOL, "mode": "tcp"},
                "connectorGroup": {"loadBalancing": "Round Robin", "connectionTimeout": 2, "retryDelay": 2,
                                   "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                               for i, m in enumerate(ids)]}})
            assert r.status_code == 201, r.text
            return str(r.json()["connectorID"])

        ids: list[str] = []
        other = group("dicom", _free_port())
        gid = group("orthanc", port)
        r = http.post("/api/admin/tokens", json={"pool": POOL, "label": "test"})
        token = tmp / "balancer.token"
        token.write_text(r.json()["token"] + "\n")
        balancers = []
        for i, bind in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.4")):
            b = spawn([*CMD, "balance", "--api", url, "--token-file", str(token), "--pool", POOL, "--bind", bind,
                       "--admin", "127.0.0.1:0", "--admin-token-file", str(tmp / f"admin-{i}.token")])
            balancers.append(Balancer(b, bind, b.wait_for(FLEET_RX, timeout=30).group(3)))
        yield Procs(url, http, gid, other, (ids[0], ids[1]), port, balancers)
        http.close()
    finally:
        for child in children:
            if child.proc.poll() is None:
                os.kill(child.pid, signal.SIGCONT)  # a test that failed mid-stop leaves none stopped
            child.kill()


@pytest.fixture
def mgmt(procs: Procs, arun: Callable[..., Any]) -> Iterator[MgmtClient]:
    client = MgmtClient(procs.url, "admin", ADMIN_PASSWORD)
    yield client
    arun(client.aclose())


@pytest.fixture
def stopped() -> Iterator[list[int]]:
    """PIDs a test stopped with SIGSTOP: continued at teardown whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def _row(win: BalancersWindow, instance: str) -> InstanceRow | None:
    return next((r for r in win.rows if r.instance_id == instance), None)


def test_balancers_view_three_instances_drift_while_stopped(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, procs: Procs, mgmt: MgmtClient, arun: Callable[..., Any],
    stopped: list[int],
) -> None:
    win = BalancersWindow(client=mgmt, is_admin=True, user="admin")
    qtbot.addWidget(win)
    win.show()
    try:
        ids = [procs.instance(b) for b in procs.balancers]
        qtbot.waitUntil(lambda: sorted(r.instance_id for r in win.rows) == sorted(ids)
                        and all(not r.lost and r.drift_text() == IN_SYNC for r in win.rows), timeout=LONG)
        assert "3 balancers in 1 pool · 3 alive · 0 lost · 0 behind" in win.summary.text()
        third = procs.balancers[2]
        os.kill(third.pid, signal.SIGSTOP)
        stopped.append(third.pid)
        before = procs.version(procs.group)
        after = procs.set_weight(procs.group, 1, 2)
        assert after > before
        qtbot.waitUntil(lambda: (r := _row(win, ids[2])) is not None and not r.lost
                        and r.drift_text() == f"orthanc: applied v{before}, saved v{after}", timeout=LONG)
        qtbot.waitUntil(lambda: all(not r.drifting for r in win.rows if r.instance_id != ids[2]), timeout=LONG)
        assert "1 behind the saved config" in win.summary.text()
        os.kill(third.pid, signal.SIGCONT)
        stopped.remove(third.pid)
        qtbot.waitUntil(lambda: (r := _row(win, ids[2])) is not None and r.drift_text() == IN_SYNC, timeout=LONG)
        assert "0 behind" in win.summary.text()
    finally:
        arun(win.aclose())


def _live(win: FleetLiveWindow, instance: str) -> Any:
    return win.fleet.watched[instance]


def test_aggregated_view_sums_tags_and_acts_on_all_or_one(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, procs: Procs, mgmt: MgmtClient, arun: Callable[..., Any],
    stopped: list[int], qtmodeltester: Any,
) -> None:
    fleet_win = BalancersWindow(client=mgmt, is_admin=True, user="admin")
    qtbot.addWidget(fleet_win)
    fleet_win.show()
    live: FleetLiveWindow | None = None
    ids = [procs.instance(b) for b in procs.balancers]
    a, b = procs.members
    try:
        qtbot.waitUntil(lambda: len(fleet_win.rows) == 3, timeout=LONG)
        fleet_win.select_instance(ids[0])
        qtbot.waitUntil(fleet_win.open_live.isEnabled, timeout=LONG)
        with qtbot.waitSignal(fleet_win.live_opened, timeout=LONG) as opened:
            arun(fleet_win.open_live_view(procs.group))
        live = opened.args[0]
        assert isinstance(live, FleetLiveWindow)
        qtbot.addWidget(live)
        qtbot.waitUntil(lambda: live.agg.answering == 3, timeout=LONG)
        assert live.windowTitle() == f"Live — orthanc on 3 balancers (pool {POOL})"
        assert fleet_win.message.text() == (f"Live view of orthanc on the 3 balancers of pool {POOL} that serve "
                                            "it opened.")
        assert live.client is None and all(w.client.group == procs.group for w in live.fleet.watched.values())
        for r in live.agg.instances:  # the admin tokens came from the server and are shown nowhere
            token = arun(mgmt.balancer_admin(r.instance_id)).admin_token
            assert token and all(token not in lbl.text() for lbl in live.findChildren(type(live.status)))

        # real connections through two instances: the view's counts are the sum of theirs
        def totals() -> list[int]:
            return [sum(m["total"] for m in procs.snapshot(x, procs.group)["members"]) for x in procs.balancers]

        base = totals()
        _connect(procs.balancers[0].bind, procs.port, 30)
        _connect(procs.balancers[1].bind, procs.port, 20)
        now = totals()
        assert [n - o for n, o in zip(now, base, strict=True)] == [30, 20, 0]

        def summed() -> int:
            snap = live.agg.snapshot
            return -1 if snap is None else sum(m.total for m in snap.members)

        qtbot.waitUntil(lambda: summed() == sum(now), timeout=LONG)
        by_id = {r.instance_id: r for r in live.agg.instances}
        assert [by_id[i].total for i in ids] == now
        qtbot.waitUntil(lambda: sum(int(live.members.index(r, COL_TOTAL).data())
                                    for r in range(live.members.rowCount()))
                        == sum(now), timeout=LONG)  # the table shows the sum (it refreshes twice a second)
        assert live.breakdown.rowCount() == 3
        qtmodeltester.check(live.breakdown)
        assert {live.breakdown.index(r, 1).data() for r in range(3)} == {"alive"}

        # drain on every instance: all three obey, the timeline tags each instance's event
        with qtbot.waitSignal(live.acted, timeout=LONG) as acted:
            arun(live.set_state([a], "drain"))
        names = [by_id[i].name for i in ids]
        assert acted.args[0].startswith(f"{live.names.name(a)} → drain on ") and all(n in acted.args[0] for n in names)
        qtbot.waitUntil(lambda: all(_live(live, i).last.member(a).admin == "drain" for i in ids), timeout=LONG)
        texts = lambda: [e.text for e in live.timeline.entries()]  # noqa: E731
        qtbot.waitUntil(lambda: all(f"{n} · {a} set to drain by an admin" in texts() for n in names), timeout=LONG)

        # on one instance only: enable there, the others stay drained
        live.choose_instance(ids[1])
        with qtbot.waitSignal(live.acted, timeout=LONG) as acted:
            arun(live.set_state([a], "enabled"))
        assert acted.args[0] == f"{live.names.name(a)} → enabled on {names[1]}"
        qtbot.waitUntil(lambda: _live(live, ids[1]).last.member(a).admin == "enabled", timeout=LONG)
        assert [_live(live, i).last.member(a).admin for i in (ids[0], ids[2])] == ["drain", "drain"]
        # the breakdown says which instance differs from the others
        qtbot.waitUntil(lambda: next(r for r in live.agg.instances if r.instance_id == ids[1]).differs
                        == (f"{a} up",), timeout=LONG)
        # Revert on all: only the instances that have an override revert
        live.choose_instance(None)
        with qtbot.waitSignal(live.acted, timeout=LONG) as acted:
            assert arun(live.revert([])) is True
        assert names[1] not in acted.args[0]
        assert f"{a} on {names[0]}" in acted.args[0] and f"{a} on {names[2]}" in acted.args[0]
        qtbot.waitUntil(lambda: all(_live(live, i).last.member(a).admin == "enabled" for i in ids), timeout=LONG)

        # different live weights on two instances: Save to the server refuses, naming them
        live.choose_instance(ids[0])
        saved_b = procs.saved_weights(procs.group)[1]  # the first test saved another weight than 1
        arun(_live(live, ids[0]).client.set_weight(b, 6))
        arun(_live(live, ids[1]).client.set_weight(b, 7))
        live.choose_instance(None)
        qtbot.waitUntil(lambda: _live(live, ids[1]).last.member(b).weight == 7
                        and _live(live, ids[0]).last.member(b).weight == 6, timeout=LONG)
        assert arun(live.save_to_server([])) is False
        assert f"{live.names.name(b)}: 6 on {names[0]}, 7 on {names[1]}" in live.status.text()
        assert procs.saved_weights(procs.group)[1] == saved_b  # nothing saved
        # the same live weight everywhere (the table's pending weight, applied on all), saved once
        row_b = live.members.member_ids().index(b)
        assert live.members.setData(live.members.index(row_b, COL_WEIGHT), 5)
        with qtbot.waitSignal(live.acted, timeout=LONG) as acted:
            arun(live.apply_weights_live())
        assert acted.args[0].startswith(f"weights {live.names.name(b)} 5 on ")
        assert all(n in acted.args[0] for n in names)
        qtbot.waitUntil(lambda: all(_live(live, i).last.member(b).weight == 5 for i in ids), timeout=LONG)
        drift = f"{names[0]}: {live.names.name(b)}: weight running 5, saved {saved_b}"
        qtbot.waitUntil(lambda: drift in live.drift_label.text(),
                        timeout=LONG)
        with qtbot.waitSignal(live.acted, timeout=LONG) as acted:
            assert arun(live.save_to_server([]), timeout_ms=LONG) is True
        assert acted.args[0].startswith(f"saved to the server: {live.names.name(b)} weight 5 (version ")
        assert all(n in acted.args[0] for n in names)
        assert procs.saved_weights(procs.group)[1] == 5
        # applied everywhere and the overrides gone: the instances run the saved config again
        qtbot.waitUntil(lambda: all(not _live(live, i).last.overrides and _live(live, i).last.member(b).weight == 5
                                    for i in ids), timeout=LONG)
        qtbot.waitUntil(lambda: not live.drift_banner.isVisible(), timeout=LONG)

        # an instance stops answering: an action on all says where it failed (the stopped one times out), the
        # instance is shown not answering (long before the server could call it lost), the others go on
        third = procs.balancers[2]
        os.kill(third.pid, signal.SIGSTOP)
        stopped.append(third.pid)
        with qtbot.waitSignal(live.actionFailed, timeout=LONG) as failed:
            arun(live.set_state([a], "drain"))
        done, _, why = failed.args[0].partition("; ")
        assert done.startswith(f"{live.names.name(a)} → drain on ") and names[2] not in done
        assert all(n in done for n in names[:2]) and why.startswith(f"{names[2]} failed: ")
        qtbot.waitUntil(lambda: {r.instance_id: r.reach for r in live.agg.instances}[ids[2]] == UNREACHABLE,
                        timeout=LONG)
        polls = _live(live, ids[0]).watcher.polls
        qtbot.waitUntil(lambda: _live(live, ids[0]).watcher.polls >= polls + 3, timeout=LONG)
        assert {r.instance_id: r.reach for r in live.agg.instances}[ids[0]] == ANSWERS
        assert any(f"{names[2]} not answering" in t for t in texts())
        assert "2 answering · 1 not" in live.fleet_summary.text()
        os.kill(third.pid, signal.SIGCONT)
        stopped.remove(third.pid)
        qtbot.waitUntil(lambda: live.agg.answering == 3, timeout=LONG)
        assert arun(live.revert([])) is True
        qtbot.waitUntil(lambda: all(_live(live, i).last.member(a).admin == "enabled" for i in ids[:2]), timeout=LONG)
    finally:
        if live is not None:
            live.shutdown()
        arun(fleet_win.aclose())


def test_apply_refuses_a_balancer_that_runs_another_group(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, procs: Procs, mgmt: MgmtClient, arun: Callable[..., Any],
) -> None:
    first = procs.balancers[0]
    admin = arun(mgmt.balancer_admin(procs.instance(first)))
    other, _ = arun(mgmt.get_connector(procs.other))
    # a live view of "dicom" attached to the balancer's "orthanc"
    win = open_live_view(parent=None, group=other, endpoints={}, mgmt=mgmt, pool=POOL,
                         client=AdminClient(admin.admin_url, admin.admin_token, group=procs.group))
    assert isinstance(win, LiveWindow)
    qtbot.addWidget(win)
    try:
        qtbot.waitUntil(win.drift_banner.isVisible, timeout=LONG)
        assert f"the balancer runs another group ('{procs.group}', not '{procs.other}')" in win.drift_label.text()
        before = procs.snapshot(first, procs.group)["version"]
        with qtbot.waitSignal(win.actionFailed, timeout=LONG) as refused:
            win.apply_config.click()
        assert refused.args[0] == (f"apply refused: this balancer runs group '{procs.group}', not "
                                   f"'{procs.other}'; open the live view of that group to change it")
        snap = procs.snapshot(first, procs.group)
        assert snap["group"]["connectorID"] == procs.group and snap["version"] == before
    finally:
        win.shutdown()



def test_a_group_of_a_pool_offers_the_view_of_all_its_balancers(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, procs: Procs, mgmt: MgmtClient, arun: Callable[..., Any],
) -> None:
    """The main window opens the one-balancer view with the group's pool: it offers the aggregated view."""
    from PySide6.QtWidgets import QApplication, QPushButton

    group, _ = arun(mgmt.get_connector(procs.group))
    win = open_live_view(parent=None, group=group, endpoints={}, mgmt=mgmt, pool=POOL)
    assert isinstance(win, LiveWindow) and not isinstance(win, FleetLiveWindow)
    qtbot.addWidget(win)
    fleet_view: FleetLiveWindow | None = None
    try:
        qtbot.waitUntil(lambda: win.findChild(QPushButton, FLEET_BUTTON) is not None, timeout=LONG)
        button = win.findChild(QPushButton, FLEET_BUTTON)
        assert button.text() == f"Watch all 3 balancers of pool {POOL}"
        button.click()
        found = [w for w in QApplication.topLevelWidgets() if isinstance(w, FleetLiveWindow) and w.isVisible()]
        assert len(found) == 1
        fleet_view = found[0]
        qtbot.addWidget(fleet_view)
        qtbot.waitUntil(lambda: fleet_view.agg.answering == 3, timeout=LONG)
        assert fleet_view.group is not None and fleet_view.group.connector_id == procs.group
        # a group no balancer serves: nothing offered
        other, _ = arun(mgmt.get_connector(procs.other))
        lonely = open_live_view(parent=None, group=other, endpoints={}, mgmt=mgmt, pool="nobody-here")
        qtbot.addWidget(lonely)
        assert arun(offer_fleet_view(lonely, mgmt, "nobody-here")) == 0
        assert lonely.findChild(QPushButton, FLEET_BUTTON) is None
        lonely.shutdown()
    finally:
        win.shutdown()
        if fleet_view is not None:
            fleet_view.shutdown()


def test_a_killed_balancer_is_lost_in_both_views(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, procs: Procs, mgmt: MgmtClient, arun: Callable[..., Any],
) -> None:
    """Last in the module: it kills the third balancer (by its PID)."""
    ids = [procs.instance(b) for b in procs.balancers]
    group, _ = arun(mgmt.get_connector(procs.group))
    live = FleetLiveWindow(group=group, endpoints={}, mgmt=mgmt, pool=POOL)
    qtbot.addWidget(live)
    fleet_win = BalancersWindow(client=mgmt, is_admin=True, user="admin")
    qtbot.addWidget(fleet_win)
    live.show()
    fleet_win.show()
    try:
        qtbot.waitUntil(lambda: live.agg.answering == 3, timeout=LONG)
        procs.balancers[2].child.kill()
        reach = lambda: {r.instance_id: r.reach for r in live.agg.instances}  # noqa: E731
        qtbot.waitUntil(lambda: reach().get(ids[2]) == UNREACHABLE, timeout=LONG)  # at once: it stopped answering
        qtbot.waitUntil(lambda: reach().get(ids[2]) == LOST, timeout=LONG)  # then: the server says lost
        qtbot.waitUntil(lambda: (r := _row(fleet_win, ids[2])) is not None and r.lost, timeout=LONG)
        assert [reach()[i] for i in ids[:2]] == [ANSWERS, ANSWERS]
        assert live.fleet.clients().keys() == set(ids[:2])  # "all instances" means the ones not lost
        assert "2 answering · 1 not" in live.fleet_summary.text()
    finally:
        live.shutdown()
        arun(fleet_win.aclose())

"""Exported groups run on the real engines: nginx and HAProxy started from the generated config, real
upstream sockets on 127.0.0.1, and the connection counts checked against the group's semantics."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from balancedesk.core.export import to_haproxy, to_nginx
from balancedesk.core.model import parse_balancer_config

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


class NameServer:
    """A real TCP listener on 127.0.0.1 that answers every connection with its name and closes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            # a health check may hang up first: that costs this connection, never the listener
            with conn, contextlib.suppress(OSError):
                conn.sendall(self.name.encode())

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone would not
        self.sock.close()
        self._thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask(port: int, deadline_s: float = 5.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=deadline_s) as c:
        data = b""
        while chunk := c.recv(64):
            data += chunk
        return data.decode()


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"engine exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)  # polling a port with a deadline, not waiting for luck
    raise AssertionError(f"nothing listening on {port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL: an nginx master killed outright would leave its worker behind."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def upstreams() -> Iterator[list[NameServer]]:
    servers = [NameServer(n) for n in ("A", "B", "C")]
    yield servers
    for s in servers:
        s.close()


def config(servers: list[NameServer], *, round_robin: bool) -> dict[str, object]:
    return {
        "connectorID": "g-1",
        "label": "Dev Group",
        "connectorGroup": {
            "connectionTimeout": 5,
            "retryDelay": 120,
            **({"loadBalancing": "Round Robin"} if round_robin else {}),
            "members": [
                {"memberID": s.name, "sequence": i + 1, "weight": 3 - i} for i, s in enumerate(servers)
            ],
        },
        "endpoints": {s.name: f"127.0.0.1:{s.port}" for s in servers},
    }


def run_engine(kind: str, text: str, tmp: Path) -> subprocess.Popen[bytes]:
    conf = tmp / f"{kind}.conf"
    conf.write_text(text)
    if kind == "nginx":
        assert NGINX
        pid = f"pid {tmp}/nginx.pid;"
        check = subprocess.run([NGINX, "-t", "-c", str(conf), "-g", pid], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        cmd = [NGINX, "-c", str(conf), "-g", f"daemon off; {pid}"]
    else:
        assert HAPROXY
        check = subprocess.run([HAPROXY, "-c", "-f", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        cmd = [HAPROXY, "-db", "-f", str(conf)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_round_robin_weights_hold_on_the_engine(kind: str, upstreams: list[NameServer], tmp_path: Path) -> None:
    if (NGINX if kind == "nginx" else HAPROXY) is None:
        pytest.skip(f"{kind} is not installed (./dev.sh test installs it)")
    cfg = parse_balancer_config(config(upstreams, round_robin=True))
    port = free_port()
    render = to_nginx if kind == "nginx" else to_haproxy
    proc = run_engine(kind, render(cfg, mode="tcp", listen=f"127.0.0.1:{port}", workers="1"), tmp_path)
    try:
        wait_listening(port, proc)
        counts = Counter(ask(port) for _ in range(60))
    finally:
        stop(proc)
    # wait_listening's probe took one pick first; any 6 consecutive picks still hold exactly 3/2/1
    assert sum(counts.values()) == 60
    assert (counts["A"], counts["B"], counts["C"]) == (30, 20, 10), counts


def test_haproxy_sequence_failover_is_ordered(upstreams: list[NameServer], tmp_path: Path) -> None:
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (./dev.sh test installs it)")
    cfg = parse_balancer_config(config(upstreams, round_robin=False))
    port = free_port()
    proc = run_engine("haproxy", to_haproxy(cfg, mode="tcp", listen=f"127.0.0.1:{port}", workers="1"), tmp_path)
    try:
        wait_listening(port, proc)
        assert {ask(port) for _ in range(10)} == {"A"}
        upstreams[0].close()  # the first in sequence goes away: the second takes over, not the third
        assert {ask(port) for _ in range(10)} == {"B"}
    finally:
        stop(proc)


def test_export_cli_refuses_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"connectorGroup": {"members": [{"memberID": "x", "sequence": 1}]}, "endpoints": {}}))
    run = subprocess.run(
        [sys.executable, "-m", "balancedesk.gui.launcher", "export", "--config", str(bad), "--to", "nginx"],
        capture_output=True, text=True,
    )
    assert run.returncode == 2
    assert "endpoints.x" in run.stderr and "no endpoint" in run.stderr
    assert run.stdout == ""


def test_export_cli_writes_atomically(tmp_path: Path, upstreams: list[NameServer]) -> None:
    src = tmp_path / "g.json"
    src.write_text(json.dumps(config(upstreams, round_robin=True)))
    out = tmp_path / "haproxy.cfg"
    run = subprocess.run(
        [sys.executable, "-m", "balancedesk.gui.launcher", "export", "--config", str(src), "--to", "haproxy",
         "--mode", "http", "--affinity-header", "sender-transfer-id", "-o", str(out)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert "balance hdr(sender-transfer-id)" in text and "hash-type consistent" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

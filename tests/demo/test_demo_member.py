"""``balancedesk demo-member``: a real process on 127.0.0.1, driven through its control endpoint."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

CMD = [sys.executable, "-m", "balancedesk.gui.launcher", "demo-member"]
READY = r"balancedesk: demo member (\S+) on (127\.0\.0\.1):(\d+) control (http://\S+)"


def _start(spawn: Callable[..., Any], mode: str, name: str = "m1") -> tuple[int, str]:
    child = spawn([*CMD, "--listen", "127.0.0.1:0", "--mode", mode, "--name", name])
    m = child.wait_for(READY)
    assert m.group(1) == name
    return int(m.group(3)), m.group(4)


def _control(url: str, mode: str, **extra: Any) -> dict[str, Any]:
    req = urllib.request.Request(
        url + "/mode", data=json.dumps({"mode": mode, **extra}).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _http_get(port: int) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/x", timeout=5) as resp:
        return resp.status, resp.headers["X-Demo-Member"], resp.read().decode()


def test_tcp_echo(spawn: Callable[..., Any]) -> None:
    port, _ = _start(spawn, "tcp")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"hello\n")
        assert s.recv(100) == b"hello\n"


def test_http_answers_its_name(spawn: Callable[..., Any]) -> None:
    port, _ = _start(spawn, "http", name="alpha")
    assert _http_get(port) == (200, "alpha", "alpha\n")


def test_refuse_then_ok_again(spawn: Callable[..., Any]) -> None:
    port, control = _start(spawn, "http")
    assert _control(control, "refuse")["mode"] == "refuse"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    status = _control(control, "ok")
    assert status["mode"] == "ok" and status["listen"] == f"127.0.0.1:{port}"
    assert _http_get(port)[0] == 200


def test_slow_still_answers_and_bad_mode_is_400(spawn: Callable[..., Any]) -> None:
    port, control = _start(spawn, "tcp")
    status = _control(control, "slow", delay_ms=50)
    assert status["mode"] == "slow" and status["slow_ms"] == 50
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"x")
        assert s.recv(10) == b"x"
    with pytest.raises(urllib.error.HTTPError) as err:
        _control(control, "sideways")
    assert err.value.code == 400
    with urllib.request.urlopen(control + "/status", timeout=5) as resp:
        assert json.loads(resp.read())["served"] == 1

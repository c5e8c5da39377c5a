"""The native L4 engine's own contract (``core/proxy/engine/``), below the balancer: argument errors, its
collectability, and a relay driven by hand on 127.0.0.1 (a listener, a member, the callbacks)."""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import socket
import time
import weakref
from typing import Any

import pytest
from balancedesk.core.proxy._engine import Engine


def _none(*_a: Any) -> int:
    return -1


def test_targets_must_be_numeric_addresses_with_a_valid_port() -> None:
    e = Engine(_none, _none)
    assert e.add_target("127.0.0.1", 80) == 0
    assert e.add_target("::1", 80) == 1
    with pytest.raises(ValueError, match="not a numeric IP address: localhost"):
        e.add_target("localhost", 80)
    with pytest.raises(ValueError, match="port out of range: 70000"):
        e.add_target("127.0.0.1", 70000)
    with pytest.raises(TypeError, match="callable"):
        Engine(1, _none)
    e.close()


def test_an_engine_and_the_object_holding_it_are_collected_with_their_fds() -> None:
    class Holder:
        def __init__(self) -> None:
            self.engine = Engine(self.accept, self.connect)

        def accept(self, _cid: int) -> int:
            return -1

        def connect(self, *_a: Any) -> int:
            return -1

    h = Holder()
    epfd = h.engine.fileno()
    assert os.readlink(f"/proc/self/fd/{epfd}") == "anon_inode:[eventpoll]"
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None  # the cycle engine → bound method → holder → engine is seen by the GC
    with contextlib.suppress(FileNotFoundError):  # its epoll fd is closed (free, or reused by no epoll)
        assert os.readlink(f"/proc/self/fd/{epfd}") != "anon_inode:[eventpoll]"


def test_a_relay_driven_by_hand() -> None:
    """accept → on_accept picks target 0 → connect → on_connect(errno 0) → bytes both ways → half-close
    passed on → collect() counts the bytes, the close and one first-byte latency."""
    member = socket.create_server(("127.0.0.1", 0))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    calls: list[tuple[Any, ...]] = []

    def on_accept(cid: int) -> int:
        calls.append(("accept", cid))
        return 0

    def on_connect(cid: int, target: int, err: int, seconds: float) -> int:
        calls.append(("connect", cid, target, err, seconds >= 0))
        return -1

    e = Engine(on_accept, on_connect, 100, 2.0)
    assert e.add_target("127.0.0.1", member.getsockname()[1]) == 0
    e.add_listener(listener.fileno())
    sel = selectors.DefaultSelector()
    sel.register(e.fileno(), selectors.EVENT_READ)

    def pump_until(cond: Any, what: str) -> None:
        deadline = time.monotonic() + 10
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            if sel.select(0.05):
                e.run()

    client = socket.create_connection(listener.getsockname())
    member.settimeout(0.05)
    up: list[socket.socket] = []

    def accepted() -> bool:
        try:
            up.append(member.accept()[0])
        except TimeoutError:
            return False
        return True

    pump_until(accepted, "the member to be connected")
    pump_until(lambda: any(c[0] == "connect" for c in calls), "on_connect")
    cid = calls[0][1]
    assert calls == [("accept", cid), ("connect", cid, 0, 0, True)]
    assert e.active == 1 and e.peer(cid) == client.getsockname()

    member_side = up[0]
    for s in (client, member_side):
        s.setblocking(False)

    def read(s: socket.socket, n: int, what: str) -> bytes:
        """Run the engine until ``n`` bytes (or EOF, when n is 0) arrived at ``s``."""
        got = bytearray()
        eof = [False]

        def have() -> bool:
            try:
                data = s.recv(max(1, n - len(got)))
            except BlockingIOError:
                return False
            if not data:
                eof[0] = True
                return True
            got.extend(data)
            return len(got) >= n > 0

        pump_until(have, what)
        return bytes(got) if n else (b"" if eof[0] else bytes(got))

    client.sendall(b"ping")
    assert read(member_side, 4, "ping at the member") == b"ping"
    member_side.sendall(b"pong!")
    assert read(client, 5, "pong at the client") == b"pong!"
    client.shutdown(socket.SHUT_WR)  # half-close: the member sees EOF, and can still answer
    assert read(member_side, 0, "EOF at the member") == b""
    member_side.sendall(b"bye")
    member_side.close()
    assert read(client, 3, "bye at the client") == b"bye"
    assert read(client, 0, "EOF at the client") == b""
    pump_until(lambda: e.active == 0, "the connection to end")
    per, lat, refused, accept_errors, dropped, accepted = e.collect()
    # member 0: 4 bytes in, 8 out ("pong!" + "bye"), 1 closed, 0 failed; no answers by class (L4)
    assert per == [(0, 4, 8, 1, 0, 0, 0, 0, 0, 0)]
    assert [t for t, _ in lat] == [0] and 0 < lat[0][1] < 10
    assert (refused, accept_errors, dropped, accepted) == (0, 0, 0, 0)  # L4: Python counts accepts
    assert e.collect()[0] == []  # counters were handed over
    for s in (client, member, listener):
        s.close()
    e.close()


def test_without_the_engine_native_is_refused_with_a_message_and_auto_falls_back(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """Where the extension was not built: ``--data-plane native`` exits 2 naming the way out; ``auto``
    chooses the asyncio shell."""
    from balancedesk.core import cli
    from balancedesk.core.proxy import native, server

    monkeypatch.setattr(native, "Engine", None)
    monkeypatch.delenv("BALANCEDESK_L4", raising=False)
    monkeypatch.delenv("BALANCEDESK_L7", raising=False)
    for mode in ("tcp", "http"):
        code = cli.main(["balance", "--config", str(tmp_path / "unused.json"), "--listen", "127.0.0.1:0",
                         "--mode", mode, "--data-plane", "native"])
        assert code == 2
        assert "native engine was not built here" in capsys.readouterr().err
        assert server.use_native("auto", mode) is False
        with pytest.raises(SystemExit, match="use --data-plane asyncio"):
            server.use_native("native", mode)


def test_a_member_name_that_does_not_resolve_is_not_looked_up_at_every_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lookup blocks the loop: a name that failed is asked again only after RESOLVE_RETRY_S."""
    import asyncio

    from balancedesk.core.model import parse_balancer_config
    from balancedesk.core.proxy import native
    from balancedesk.core.proxy.runtime import Runtime
    from balancedesk.core.proxy.server import Options, make_shell
    from lbkit import group_config

    asked: list[str] = []

    def resolve(host: str, port: int) -> str | None:
        asked.append(host)
        return None if host == "gone.example" else "127.0.0.1"

    monkeypatch.setattr(native, "resolve", resolve)
    cfg = parse_balancer_config(group_config([("gone", "gone.example:80", 1), ("ok", "ok.example:81", 1)]))

    async def run() -> None:
        rt = Runtime(cfg, mode="tcp", affinity_header=None)
        shell = make_shell(rt, Options(listen=("127.0.0.1", 0), mode="tcp", affinity_header=None,
                                       data_plane="native"))
        plane = shell.native
        assert plane is not None
        assert plane._target("gone") == -1 and plane._target("gone") == -1
        assert plane._target("ok") == 0 and plane._target("ok") == 0
        assert asked == ["gone.example", "ok.example"]  # once each
        monkeypatch.setattr(native, "clock", lambda: 1e12)  # RESOLVE_RETRY_S later
        assert plane._target("gone") == -1 and plane._target("ok") == 0
        assert asked == ["gone.example", "ok.example", "gone.example"]  # only the failed name again
        shell.close()

    asyncio.run(run())


def test_resolve_prefers_ipv4_and_keeps_numeric_addresses() -> None:
    from balancedesk.core.proxy.native import resolve

    assert resolve("127.0.0.1", 80) == "127.0.0.1"
    assert resolve("::1", 80) == "::1"
    assert resolve("localhost", 80) == "127.0.0.1"  # even where localhost is ::1 first

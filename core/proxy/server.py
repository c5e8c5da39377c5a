"""Running a balancer: the listener, the admin endpoint, signals, graceful stop, and ``--workers N``.

One worker = one process = one event loop (uvloop when installed) with its own :class:`Runtime`.
With ``--workers N`` the parent reserves the port, forks N workers that each listen on it with
``SO_REUSEPORT`` (the kernel spreads connections), prints the readiness line once all are listening, and
forwards SIGTERM/SIGINT/SIGHUP/SIGUSR1 to them (SIGUSR1: access logs reopened, for log rotation).
The parent is :func:`supervise` (the many-group balancer of ``fleetserve.py`` uses it too). Only worker 0
serves the admin endpoint, but what it says and does is the process's: the health marks, sticky affinity
entries and runtime overrides are one state for all workers, and the snapshot's counters are summed over
every worker's (events, latency percentiles and ``/metrics`` stay worker 0's). The parent makes a
:class:`~balancedesk.core.proxy.shared.SharedState` before it forks, and each worker's ``Runtime`` reads
and writes it (the rules are in ``shared.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balancedesk.core.model import BalancerConfig
from balancedesk.core.proxy import limits
from balancedesk.core.proxy.admin import admin_factory
from balancedesk.core.proxy.config import FileSource, log
from balancedesk.core.proxy.healthcheck import HealthProber
from balancedesk.core.proxy.runtime import Runtime
from balancedesk.core.proxy.shared import SharedState
from balancedesk.core.proxy.shell import Shell

GC_GEN0_THRESHOLD = 10000  # the balancer process only (run_worker); CPython's default is 700


@dataclass
class Options:
    listen: tuple[str, int]
    mode: str  # "tcp" | "http"
    affinity_header: str | None
    admin: tuple[str, int] | None = None
    admin_token: str | None = None
    workers: int = 1
    max_connections: int = limits.MAX_CONNECTIONS
    idle_timeout: float = limits.IDLE_TIMEOUT_S
    head_timeout: float = limits.HEAD_TIMEOUT_S
    head_limit: int = limits.REQUEST_HEAD_MAX_BYTES
    config_file: Path | None = None
    stop_grace: float = limits.STOP_GRACE_S
    data_plane: str = "auto"  # "native" (the C engine), "asyncio" (tcp.py / http.py), "auto" (native when built)


def make_shell(rt: Runtime, opts: Options) -> Shell:
    """Compose one listener: the shared :class:`Shell` state and its data plane (native engine or asyncio)."""
    shell = Shell(rt, max_connections=opts.max_connections, idle_timeout=opts.idle_timeout,
                  head_timeout=opts.head_timeout, head_limit=opts.head_limit, affinity_header=opts.affinity_header)
    if use_native(opts.data_plane, opts.mode):
        from balancedesk.core.proxy.native import NativeHttp, NativeTcp

        shell.native = NativeTcp(shell) if opts.mode == "tcp" else NativeHttp(shell)
        rt.data_plane = "native"
    elif opts.mode == "tcp":
        from balancedesk.core.proxy.tcp import ConnectDeadlines

        shell.connect_deadlines = ConnectDeadlines(rt.loop)
        rt.on_member_change.append(shell.abort_tcp_of_disabled)
    return shell


def use_native(choice: str, mode: str) -> bool:
    """Whether ``mode`` (tcp or http) runs on the native engine: ``native`` insists (an error if it was not
    built), ``asyncio`` refuses, ``auto`` takes it when it was built — or does what the environment says
    (BALANCEDESK_L4 for tcp, BALANCEDESK_L7 for http; the tests run both planes through them)."""
    from balancedesk.core.proxy import native

    if choice == "auto":
        choice = os.environ.get("BALANCEDESK_L4" if mode == "tcp" else "BALANCEDESK_L7", "auto")
    if choice == "native":
        if not native.available():
            raise SystemExit(f"balancedesk: {native.MISSING}")
        return True
    if choice == "asyncio":
        return False
    return native.available()


def fd_cap(requested: int) -> int:
    """The connection cap: as asked, but below RLIMIT_NOFILE/2 (a client and its upstream need 2 fds)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        if soft != resource.RLIM_INFINITY and soft < want:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                soft = want
            except (ValueError, OSError):
                pass
        if soft == resource.RLIM_INFINITY:
            return requested
        return max(1, min(requested, soft // 2 - 32))
    except ImportError:  # not POSIX
        return requested


def listen_socket(host: str, port: int, *, reuseport: bool, listen: bool = True) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        if listen:
            sock.listen(4096)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def hostport(addr: Any) -> str:
    host, port = str(addr[0]), int(addr[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(
    opts: Options,
    cfg: BalancerConfig,
    *,
    sock: socket.socket,
    admin: bool,
    ready: Callable[[str, str | None], None],
    shared: SharedState | None = None,
) -> int:
    """Run one worker until SIGTERM/SIGINT; then stop accepting, let in-flight work finish, return 0."""
    from balancedesk.core.proxy.http import HttpClient
    from balancedesk.core.proxy.tcp import TcpClient

    loop = asyncio.get_running_loop()
    rt = Runtime(cfg, mode=opts.mode, affinity_header=opts.affinity_header if opts.mode == "http" else None,
                 shared=shared)
    shell = make_shell(rt, opts)
    proto: type[TcpClient] | type[HttpClient] = TcpClient if opts.mode == "tcp" else HttpClient

    def factory() -> asyncio.Protocol:
        made: asyncio.Protocol = proto(shell)
        return made

    listen = hostport(sock.getsockname())
    server = None
    if shell.native is not None:
        shell.native.start(sock)
    else:
        server = await loop.create_server(factory, sock=sock, backlog=4096)
    rt.listen = listen
    shell.start()
    prober = HealthProber(rt)
    admin_server = None
    admin_conns: set[Any] = set()
    admin_url = None
    if admin and opts.admin is not None and opts.admin_token:
        make, admin_conns = admin_factory(rt, opts.admin_token)
        admin_server = await loop.create_server(make, opts.admin[0], opts.admin[1])
        admin_url = "http://" + hostport(admin_server.sockets[0].getsockname())

    source: FileSource | None = None
    if opts.config_file is not None:
        source = FileSource(opts.config_file, rt)
        source.start()

    stop = asyncio.Event()

    def on_hup() -> None:
        if source is not None:
            source.reload()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)

    def on_usr1() -> None:  # log rotation: the access log is opened again at its path
        if rt.access_log is not None:
            rt.access_log.reopen()

    loop.add_signal_handler(signal.SIGUSR1, on_usr1)

    ready(listen, admin_url)
    await stop.wait()

    # graceful stop: no new connections, idle keep-alive ones closed, in-flight ones get a bound
    if server is not None:
        server.close()
    if source is not None:
        source.stop()
    prober.stop()
    shell.stop()
    if shell.alive():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(shell.drained.wait(), opts.stop_grace)
    shell.close()
    rt.close()
    if admin_server is not None:
        admin_server.close()
        for c in list(admin_conns):
            if c.transport is not None:
                c.transport.close()
    return 0


def run_worker(opts: Options, cfg: BalancerConfig, *, sock: socket.socket, admin: bool,
               ready: Callable[[str, str | None], None], shared: SharedState | None = None) -> int:
    return run_worker_loop(serve(opts, cfg, sock=sock, admin=admin, ready=ready, shared=shared))


def run_worker_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run one worker's main coroutine on its own event loop (uvloop when installed)."""
    # A connection allocates a few dozen short-lived objects, none of them cyclic garbage: a larger first
    # GC generation lets them die by refcount before a collection scans them (GC time ~5x lower).
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if not os.environ.get("BALANCEDESK_NO_UVLOOP"):
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)


def ready_line(listen: str, admin_url: str | None) -> str:
    return f"balancedesk: balancing {listen}" + (f" admin {admin_url}" if admin_url else "")


def run(opts: Options, cfg: BalancerConfig) -> int:
    """Run the balancer (forking workers if asked); returns the exit code."""
    opts.max_connections = fd_cap(opts.max_connections)
    host, port = opts.listen
    if opts.workers <= 1:
        sock = listen_socket(host, port, reuseport=False)

        def ready(listen: str, admin_url: str | None) -> None:
            print(ready_line(listen, admin_url), flush=True)

        return run_worker(opts, cfg, sock=sock, admin=True, ready=ready)
    return _run_workers(opts, cfg)


def _run_workers(opts: Options, cfg: BalancerConfig) -> int:
    host, port = opts.listen
    reserve = listen_socket(host, port, reuseport=True, listen=False)  # fixes the port (0 → a real one)
    port = reserve.getsockname()[1]
    shared = SharedState(workers=opts.workers)  # before the fork: every worker maps the same pages

    def work(i: int, tell: Callable[[str], None]) -> int:
        reserve.close()
        sock = listen_socket(host, port, reuseport=True)

        def ready(listen: str, admin_url: str | None) -> None:
            tell(f"{listen}|{admin_url or ''}")

        return run_worker(opts, cfg, sock=sock, admin=i == 0, ready=ready, shared=shared)

    def announce(first: str) -> None:
        listen, _, admin_url = first.partition("|")
        print(ready_line(listen, admin_url or None), flush=True)

    return supervise(opts.workers, work, shared=shared, announce=announce, started=reserve.close)


def supervise(n: int, work: Callable[[int, Callable[[str], None]], int], *, shared: SharedState,
              announce: Callable[[str], None], started: Callable[[], None] = lambda: None) -> int:
    """The ``--workers N`` parent, for one group and for many: fork ``n`` workers, wait until each says it
    is ready, announce, forward signals, reap; returns the exit code.

    Worker ``i`` runs ``work(i, tell)`` in the child (``shared.worker`` set to ``i``) and calls ``tell(line)``
    once it listens (``line``: one line of text; worker 0's is handed to ``announce`` in the parent). A worker
    that fails to start (it exits before ``tell``) stops them all: SIGTERM to every worker, reaped, exit 1.
    ``started`` runs in the parent once every worker answered or one failed. Then SIGTERM, SIGINT, SIGHUP and
    SIGUSR1 are forwarded to every worker, and the worst worker exit code is the parent's."""
    rfd, wfd = os.pipe()
    pids: list[int] = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # worker i
            code = 1
            try:
                os.close(rfd)
                shared.worker = i

                def tell(line: str, i: int = i) -> None:
                    os.write(wfd, (line.replace("\n", " ") + "\n" if i == 0 else "\n").encode())

                code = work(i, tell)
            except BaseException as exc:
                print(f"balancedesk: worker {i} failed: {exc!r}", file=sys.stderr, flush=True)
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(wfd)
    got, first = 0, b""
    with os.fdopen(rfd, "rb") as reader:
        while got < n:
            chunk = reader.readline()
            if not chunk:
                break
            got += 1
            if chunk.strip():
                first = chunk
    started()
    if got < n:
        log("a worker failed to start")
        for pid in pids:
            _kill(pid, signal.SIGTERM)
        _reap(pids)
        return 1
    announce(first.decode().strip())

    def forward(signum: int, _frame: Any) -> None:
        for pid in pids:
            _kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, forward)
    return _reap(pids)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pids: list[int]) -> int:
    worst = 0
    left = set(pids)
    while left:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid in left:
            left.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                worst = max(worst, abs(code) or 1)
    return worst

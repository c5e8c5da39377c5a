"""Types of the native data plane (``_engine.c``): L4 relaying, and in HTTP mode (``on_request`` given) the
L7 fast path. Its limits come from :mod:`balancedesk.core.proxy.limits` as arguments (HTTP mode requires
them); ``IO_CHUNK_BYTES`` and ``REQUEST_HEADERS_MAX`` are its compile-time values, equal to those of
``limits`` (tested)."""

from collections.abc import Callable

IO_CHUNK_BYTES: int
REQUEST_HEADERS_MAX: int  # header lines the L7 fast path takes, equal to limits.REQUEST_HEADERS_MAX (tested)
LOG_RECORD_SIZE: int
LOG_REQ_MAX: int
LOG_OK: int
LOG_FAILED: int
LOG_RESET: int
LOG_ABANDONED: int

class Engine:
    active: int
    def __init__(self, on_accept: Callable[[int], int], on_connect: Callable[[int, int, int, float], int],
                 max_connections: int = ..., connect_timeout: float = ..., *,
                 on_request: Callable[[int, str | None, int], int] | None = ...,
                 on_fail: Callable[[int, int, int, int, str], bytes] | None = ...,
                 on_handoff: Callable[[int, bytes, int], None] | None = ...,
                 head_limit: int = ..., head_timeout: float = ..., linger: float = ...,
                 affinity: str | None = ..., answer_head_limit: int = ..., read_timeout: float = ...) -> None: ...
    def run(self) -> None: ...
    def fileno(self) -> int: ...
    def add_listener(self, fd: int, /) -> None: ...
    def stop_accepting(self) -> None: ...
    def add_target(self, ip: str, port: int, /) -> int: ...
    def set_connect_timeout(self, seconds: float, /) -> None: ...
    def set_read_timeout(self, seconds: float, /) -> None: ...
    def peer(self, cid: int, /) -> tuple[str, int] | tuple[str, int, int, int] | None: ...
    def abort(self, member: int, /) -> int: ...
    def sweep(self, idle_seconds: float, /) -> int: ...
    # per member: (index, bytes_in, bytes_out, closed, failures, 1xx, 2xx, 3xx, 4xx, 5xx)
    def collect(
        self,
    ) -> tuple[list[tuple[int, int, int, int, int, int, int, int, int, int]], list[tuple[int, float]], int, int, int,
               int]: ...
    def drain(self) -> int: ...
    def set_access_log(self, capacity: int, /) -> None: ...
    def take_log(self) -> tuple[bytes, int]: ...
    def close(self) -> None: ...

FAIL_ROUTING: int
FAIL_BAD_ANSWER: int
FAIL_IDLE: int
FAIL_CLOSED: int
FAIL_STALLED: int
FAIL_CLOSED_FRESH: int
CONNECT_CLIENT_LEFT: int
CONNECT_UNANSWERED: int
CONNECT_STALLED: int

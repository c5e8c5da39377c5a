"""HAProxy's Runtime API (the stats socket) and master CLI as async calls.

An address is a unix socket path (``/run/haproxy/admin.sock``) or ``host:port`` (a ``stats socket
ipv4@127.0.0.1:9999``); :func:`parse_address` decides which, once. HAProxy's non-interactive mode is used: one
command line per connection, then end of input (a half-close: the master CLI keeps a connection open for more
commands until it sees one), the answer read until HAProxy closes. That keeps every call independent (no
prompt parsing, nothing to resynchronise after a timeout).

A command HAProxy refuses is answered in text, not by a status; :class:`RuntimeError_` carries that text when
it is one of the refusals known here (``Unknown command``, ``No such backend``, ``Permission denied`` …).
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass

from balancedesk.core.model import parse_endpoint

DEFAULT_TIMEOUT_S = 3.0
ANSWER_MAX = 16 * 1024 * 1024  # a show stat of thousands of servers is a few MB; past this something is wrong
# answers that mean "refused" (HAProxy answers a bad command with text and closes normally)
REFUSALS = ("Unknown command", "No such", "Permission denied", "Require ", "Invalid ", "is not a valid",
            "cannot ", "Can't ", "not found", "expects ", "Unexpected ")


class RuntimeUnavailable(Exception):
    """The socket could not be reached, or it did not answer in time."""


class RuntimeRefused(Exception):
    """HAProxy answered the command with a refusal (the text is HAProxy's own)."""


@dataclass(frozen=True)
class Address:
    path: str | None = None  # a unix socket
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return self.path if self.path is not None else f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """``/path/to.sock`` (or ``unix@/path``) → a unix socket; ``host:port`` (``ipv4@…`` allowed) → TCP."""
    text = text.strip()
    for prefix in ("unix@", "ipv4@", "ipv6@"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if text.startswith("/") or text.startswith("."):
        return Address(path=text)
    host, port = parse_endpoint(text)
    return Address(host=host, port=port)


def haproxy_problem(address: str, backend: str) -> str:
    """Why ``address`` + ``backend`` cannot name an HAProxy backend to watch ("" when they can)."""
    try:
        parse_address(address)
    except ValueError as exc:
        return f"HAProxy stats socket: a path or host:port ({exc})"
    if not backend or any(ch.isspace() or ch == "/" for ch in backend):
        return "HAProxy backend: the backend's name (e.g. bd_<group ID>), without spaces or /"
    return ""


class RuntimeClient:
    """Commands to one HAProxy socket: ``await RuntimeClient("/run/haproxy.sock").call("show info")``."""

    def __init__(self, address: str | Address, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.address = address if isinstance(address, Address) else parse_address(address)
        self.timeout = timeout

    def __str__(self) -> str:
        return str(self.address)

    async def call(self, command: str) -> str:
        """Send one command line; HAProxy's whole answer (raises :class:`RuntimeUnavailable`)."""
        if "\n" in command:
            raise ValueError("one command line at a time")
        try:
            async with asyncio.timeout(self.timeout):
                if self.address.path is not None:
                    reader, writer = await asyncio.open_unix_connection(self.address.path)
                else:
                    reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
                try:
                    writer.write(command.encode() + b"\n")
                    await writer.drain()
                    writer.write_eof()  # the master CLI waits for more commands; end of input makes it answer and close
                    data = await reader.read(ANSWER_MAX)
                    while chunk := await reader.read(ANSWER_MAX):
                        data += chunk
                        if len(data) > ANSWER_MAX:
                            raise RuntimeUnavailable(f"{self}: answer to {command!r} is over {ANSWER_MAX} bytes")
                finally:
                    writer.close()
        except TimeoutError as exc:
            raise RuntimeUnavailable(f"{self}: no answer to {command.split()[0]!r} within {self.timeout:g} s") from exc
        except OSError as exc:
            raise RuntimeUnavailable(f"{self}: {exc.strerror or exc}") from exc
        return data.decode("utf-8", "replace")

    async def command(self, command: str) -> str:
        """:meth:`call`, and :class:`RuntimeRefused` when HAProxy refused it."""
        answer = await self.call(command)
        text = answer.strip()
        if any(text.startswith(r) or f"\n{r}" in text for r in REFUSALS):
            raise RuntimeRefused(f"{command}: {text.splitlines()[0] if text else '?'}")
        return answer

    # the Runtime API ----------------------------------------------------------------------------------------
    async def show_stat(self) -> list[dict[str, str]]:
        """``show stat`` as rows keyed by HAProxy's CSV header (``pxname``, ``svname``, ``status`` …)."""
        return parse_csv(await self.command("show stat"))

    async def show_info(self) -> dict[str, str]:
        return parse_info(await self.command("show info"))

    async def show_servers_state(self, backend: str) -> list[dict[str, str]]:
        return parse_servers_state(await self.command(f"show servers state {backend}"))

    async def set_(self, command: str) -> None:
        """A ``set …`` command: HAProxy answers nothing when it applied it, and a sentence when it did not
        (``Absolute weight can only be …``, ``Backend is using a static LB algorithm …``): that is refused."""
        answer = (await self.command(command)).strip()
        if answer:
            raise RuntimeRefused(f"{command}: {answer.splitlines()[0]}")

    async def set_weight(self, backend: str, server: str, weight: int) -> None:
        await self.set_(f"set server {backend}/{server} weight {int(weight)}")

    async def set_state(self, backend: str, server: str, state: str) -> None:
        """``state``: HAProxy's ``ready``, ``drain`` or ``maint``."""
        if state not in ("ready", "drain", "maint"):
            raise ValueError(f"HAProxy server state must be ready, drain or maint, got {state!r}")
        await self.set_(f"set server {backend}/{server} state {state}")


def parse_csv(text: str) -> list[dict[str, str]]:
    """``show stat``'s CSV (header line ``# pxname,svname,…``) → one dict per row."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        raise RuntimeRefused(f"show stat: not CSV: {text[:120]!r}")
    header = lines[0][2:].rstrip(",").split(",")
    rows = csv.reader(io.StringIO("\n".join(lines[1:])))
    return [dict(zip(header, row, strict=False)) for row in rows]


def parse_info(text: str) -> dict[str, str]:
    """``show info`` (``Name: value`` lines) → a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """``show servers state`` (a version line, a ``# name name …`` header, space-separated rows) → dicts."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header: list[str] = []
    out: list[dict[str, str]] = []
    for line in lines:
        if line.startswith("#"):
            header = line[1:].split()
        elif header:
            out.append(dict(zip(header, line.split(), strict=False)))
    return out

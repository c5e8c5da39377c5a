"""A control for bench_proxy.py: the smallest uvloop Protocol L4 relay (round robin 3:1, no features).

    python bench/minimal_l4.py LISTEN_PORT BE1_PORT BE2_PORT

If balancedesk's L4 cost per connection is far above this one's on the same box in the same run, the
gap is in balancedesk's connection path, not in Python/uvloop or the machine.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

import uvloop


class Up(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()


class Client(asyncio.Protocol):
    order: itertools.cycle[int]
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.up: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.loop.create_task(self.connect())

    async def connect(self) -> None:
        try:
            up, _ = await self.loop.create_connection(lambda: Up(self), "127.0.0.1", next(self.order))
        except OSError:
            self.transport.close()
            return
        if self.pending:
            up.write(b"".join(self.pending))
        self.up = up  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.up is not None:
            self.up.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None:
            self.up.close()


async def main() -> None:
    listen, be1, be2 = (int(x) for x in sys.argv[1:4])
    loop = asyncio.get_running_loop()
    Client.order = itertools.cycle([be1, be1, be1, be2])
    Client.loop = loop
    server = await loop.create_server(Client, "127.0.0.1", listen, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())

"""A TCP upstream that answers every line with its own name: ``NAME <line>``.

    python tcp_name.py --name a [--port 0]

Prints ``upstream NAME listening 127.0.0.1:PORT`` once it accepts connections. ``--port`` lets a test restart
a killed upstream on the port its balancer config names.
"""

from __future__ import annotations

import argparse
import asyncio
import socket


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    name = args.name.encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(name + b" " + line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    server = await asyncio.start_server(serve, sock=sock, backlog=1024)
    port = sock.getsockname()[1]
    print(f"upstream {args.name} listening 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

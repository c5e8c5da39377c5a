"""An HTTP/1.1 upstream that answers every request with one status code and its name as the body.

    python http_status.py --name sick --status 500 [--port 0]

Prints ``upstream NAME listening 127.0.0.1:PORT`` when ready. For health-check tests: a member that accepts
connections (a TCP check passes) but whose HTTP answer is not the expected status.
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--status", type=int, default=500)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    body = args.name.encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *a: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self.send_response(args.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"upstream {args.name} listening 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

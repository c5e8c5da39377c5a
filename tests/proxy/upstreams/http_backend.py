"""An HTTP/1.1 upstream (keep-alive, threaded) that answers with its name and imitates Orthanc's push transfers.

    python http_backend.py --name be1 [--port 0]

Routes (every answer carries ``X-Upstream: NAME``):

* ``GET /...`` → 200, body ``NAME``.
* ``POST /transfers/push`` body ``{"Buckets": n}`` → creates a transfer kept in THIS process's memory; its id
  is the ``sender-transfer-id`` header if present, else a new uuid. Answers ``{"ID": id, "Backend": NAME}``.
* ``PUT /transfers/push/{id}/{k}`` → stores bucket k (its size and sha256); 404 if the transfer is unknown
  here.
* ``POST /transfers/push/{id}/commit`` → 200 ``{"Buckets": n, "Bytes": total, "Sha256": [...]}`` if every
  bucket 0..n-1 is here, else 404 (unknown transfer) or 409 naming the missing buckets.

Prints ``upstream NAME listening 127.0.0.1:PORT`` when ready.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TRANSFERS: dict[str, dict[str, Any]] = {}
LOCK = threading.Lock()
NAME = ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms Nagle + delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: Any) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("X-Upstream", NAME)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        chunks = []
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def do_GET(self) -> None:
        self._reply(200, NAME)

    def do_POST(self) -> None:
        raw = self._body()
        parts = self.path.strip("/").split("/")
        if parts == ["transfers", "push"]:
            spec = json.loads(raw or b"{}")
            tid = self.headers.get("sender-transfer-id") or str(uuid.uuid4())
            with LOCK:
                TRANSFERS[tid] = {"buckets": int(spec.get("Buckets", 1)), "got": {}}
            self._reply(200, {"ID": tid, "Backend": NAME})
        elif len(parts) == 4 and parts[:2] == ["transfers", "push"] and parts[3] == "commit":
            with LOCK:
                t = TRANSFERS.get(parts[2])
                if t is None:
                    self._reply(404, {"error": f"unknown transfer {parts[2]} on {NAME}"})
                    return
                missing = [k for k in range(t["buckets"]) if k not in t["got"]]
                if missing:
                    self._reply(409, {"error": f"missing buckets {missing} on {NAME}"})
                    return
                del TRANSFERS[parts[2]]
            got = [t["got"][k] for k in range(t["buckets"])]
            self._reply(200, {"Buckets": len(got), "Bytes": sum(n for n, _ in got),
                              "Sha256": [h for _, h in got], "Backend": NAME})
        else:
            self._reply(404, {"error": f"no route {self.path}"})

    def do_PUT(self) -> None:
        raw = self._body()
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["transfers", "push"] and parts[3].isdigit():
            with LOCK:
                t = TRANSFERS.get(parts[2])
                if t is None:
                    self._reply(404, {"error": f"unknown transfer {parts[2]} on {NAME}"})
                    return
                t["got"][int(parts[3])] = (len(raw), hashlib.sha256(raw).hexdigest())
            self._reply(200, {"Bucket": int(parts[3]), "Bytes": len(raw), "Backend": NAME})
        else:
            self._reply(404, {"error": f"no route {self.path}"})


def main() -> None:
    global NAME
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    NAME = args.name
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"upstream {NAME} listening 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

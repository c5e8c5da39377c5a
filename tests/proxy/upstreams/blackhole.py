"""An upstream that accepts nothing: a listening socket (backlog 0) that never calls accept().

It fills its own accept queue first, so the balancer's SYNs are dropped and its connect hangs until its
connectionTimeout. Prints ``upstream NAME listening 127.0.0.1:PORT`` once the queue is full.
"""

from __future__ import annotations

import argparse
import signal
import socket


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="blackhole")
    args = ap.parse_args()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    # Linux queues backlog+1 connections; connect until one cannot complete (bounded count)
    for _ in range(64):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
        except (TimeoutError, OSError):
            s.close()
            break
        fillers.append(s)
    else:
        raise SystemExit("could not fill the accept queue")
    print(f"upstream {args.name} listening 127.0.0.1:{port} queued={len(fillers)}", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()

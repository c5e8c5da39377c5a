"""A real PostgreSQL for the tests: Debian's binaries, a cluster made by ``initdb`` in a temporary directory.

The server listens on 127.0.0.1 at a port free when it starts, with its unix socket in the same temporary
directory, and is stopped by its PID. PostgreSQL refuses to run as root, so as root (CI) the cluster belongs
to an unprivileged system user — ``postgres`` (made by Debian's package), else ``nobody`` — and the binaries
run as that user; the temporary directory is handed to it. Authentication is ``trust`` for loopback only.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SUPERUSER = "bd"


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``postgres``."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if Path(p).with_name("postgres").exists()]
    found.sort(key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0])
    return found[-1] if found else None


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as, or None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    folder: Path
    port: int
    proc: subprocess.Popen[bytes]
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return self.url(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)  # "fast" shutdown: disconnect clients, checkpoint, exit
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(*, durable: bool = False, attempts: int = 5) -> Cluster:
    """initdb + postgres on a free port; ready when a connection succeeds (deadline 60 s). ``durable`` keeps
    PostgreSQL's defaults (fsync on: for benchmarks); the tests' cluster skips fsync, which only matters if
    PostgreSQL itself or the machine dies — the tests kill management servers, never the database."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; ./dev.sh test does it)")
    owner = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="balancedesk-pg-"))
    data = folder / "data"
    if owner is not None:
        os.chown(folder, *owner)

    def as_owner() -> None:
        if owner is not None:
            os.setgroups([])
            os.setgid(owner[1])
            os.setuid(owner[0])

    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--locale=C", "-E", "UTF8",
         "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=as_owner, env=env, cwd=folder,
    )
    settings = ["-c", "listen_addresses=127.0.0.1", "-k", str(folder), "-c", "max_connections=200"]
    if not durable:
        settings += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    last = ""
    for _ in range(attempts):
        port = free_port()
        log = open(folder / "postgres.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(data), "-p", str(port), *settings],
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=as_owner, env=env, cwd=folder)
        log.close()
        cluster = Cluster(folder, port, proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                psycopg.connect(cluster.url(), connect_timeout=2).close()
                return cluster
            except psycopg.OperationalError as exc:
                last = str(exc)
                time.sleep(0.05)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        last = (folder / "postgres.log").read_text(errors="replace")[-2000:] or last
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last}")

"""``balancedesk serve``: open the store, make the first admin, optionally load demo data, and serve.

The store is SQLite in the data directory unless a database URL is given (``--database``, or the
:data:`DATABASE_ENV` environment variable): ``postgresql://…`` puts it on PostgreSQL, where several servers
share it as one (see README, "A load-balancer installation"). The data directory still holds the generated
admin password.

The listening socket is bound (and listening) before the ``balancedesk: serving URL`` line is printed,
so whoever waits for that line can connect at once. A non-loopback bind needs TLS or ``--insecure``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import TextIO

from balancedesk.core.fleet import HEARTBEAT_INTERVAL_S
from balancedesk.core.mgmt.auth import generate_password, hash_password
from balancedesk.core.mgmt.serve_config import DATABASE_ENV
from balancedesk.core.mgmt.store import Store
from balancedesk.core.model import ROUND_ROBIN, Connector, ConnectorGroup, Member

ADMIN_PASSWORD_ENV = "BALANCEDESK_ADMIN_PASSWORD"
ADMIN_PASSWORD_FILE = "admin-password.txt"
DB_FILE = "balancedesk.sqlite3"
DEMO_CONNECTORS = 4  # demo-1 … demo-4 on 127.0.0.1, each on a port free when the demo data is made
DEMO_WEIGHTS = (3, 2, 1)


class ServeError(Exception):
    """A reason ``serve`` cannot start; the message is for the user."""


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("balancedesk", appauthor=False))


def data_folder(data: Path | None) -> Path:
    folder = data or default_data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ServeError(f"cannot create the data directory {folder}: {exc.strerror}") from exc
    return folder


def database_url(database: str | None) -> str | None:
    """The database to use: ``database`` if given, else :data:`DATABASE_ENV`, else None (SQLite in the data
    directory)."""
    return database or os.environ.get(DATABASE_ENV) or None


def open_store(data: Path | None, database: str | None = None) -> Store:
    url = database_url(database)
    if url is not None:
        return Store(url)
    return Store(data_folder(data) / DB_FILE)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bootstrap_admin(store: Store, out: TextIO, folder: Path) -> None:
    """First start with no users: create ``admin`` (password from the environment, or generated and saved in
    ``folder``). Several servers starting at once on one database make one admin (checked in the write)."""
    if store.count_users():
        return
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    generated = not password
    if not password:
        password = generate_password()
    pw_hash = hash_password(password)
    with store.write():
        if store.count_users():
            return
        store.insert_user("admin", pw_hash, "Administrator")
    if generated:
        path = folder / ADMIN_PASSWORD_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        os.chmod(path, 0o600)
        print(f"balancedesk: created user admin with password {password} (saved in {path}, mode 0600)", file=out)
    else:
        print(f"balancedesk: created user admin with the password from {ADMIN_PASSWORD_ENV}", file=out)
    out.flush()


def demo_id(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://balancedesk.invalid/demo/{n}"))


DEMO_GROUP_ID = demo_id(0)


def load_demo(store: Store, owner: str = "admin") -> None:
    """Demo connectors on 127.0.0.1, each on a port that is free when it is made (no port is fixed: a second
    user's demo on the same machine gets others), and a Round Robin group of the first three (weights 3, 2,
    1); idempotent. The live view starts its demo members there — or, if something listens there by then,
    on a free port it picks at start (``gui/live/demos.py``)."""
    from balancedesk.core.demo import free_ports

    with store.write():
        for i, port in enumerate(free_ports(DEMO_CONNECTORS), start=1):
            if store.get(demo_id(i)) is None:
                store.save(
                    Connector(connector_id=demo_id(i), owner=owner, label=f"demo-{i}", endpoint=f"127.0.0.1:{port}"),
                    rev=1,
                )
        if store.get(DEMO_GROUP_ID) is None:
            members = tuple(
                Member(member_id=demo_id(i), sequence=i, weight=w) for i, w in enumerate(DEMO_WEIGHTS, start=1)
            )
            known = store.known(m.member_id for m in members)
            if all(k.group_id is None and k.owner == owner for k in known.values()) and len(known) == len(members):
                group = ConnectorGroup(load_balancing=ROUND_ROBIN, members=members)
                store.save(
                    Connector(connector_id=DEMO_GROUP_ID, owner=owner, label="Demo Round Robin", connector_group=group),
                    rev=1,
                )


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot resolve --host {host}: {exc.strerror}") from exc
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(512)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def serve(
    *,
    host: str,
    port: int,
    data: Path | None,
    demo: bool,
    cert: Path | None,
    key: Path | None,
    insecure: bool,
    database: str | None = None,
    heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
) -> int:
    import uvicorn
    from balancedesk.core.mgmt.app import create_app
    from balancedesk.core.mgmt.limits import HEAD_MAX_BYTES
    from balancedesk.core.mgmt.protocol import BoundedHttpProtocol

    if (cert is None) != (key is None):
        raise ServeError("TLS needs both --cert and --key")
    if cert is None and not insecure and not is_loopback(host):
        raise ServeError(
            f"refusing to serve plain HTTP on non-loopback address {host}: passwords would cross the network "
            "in clear. Give --cert and --key, or --insecure if you really mean it."
        )
    if cert is not None and key is not None:
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ServeError(f"cannot use --cert {cert} --key {key}: {exc}") from exc
    folder = data_folder(data)
    store = open_store(folder, database)
    bootstrap_admin(store, sys.stdout, folder)
    if demo:
        load_demo(store)
    app = create_app(store, heartbeat_interval=heartbeat_interval)
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if cert else "http"
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # httptools (llhttp), explicitly: BoundedHttpProtocol adds the head and body bounds of limits.py, which
        # httptools lacks. (Were h11 ever chosen instead, its own head cap would be this same constant.)
        http=BoundedHttpProtocol,
        h11_max_incomplete_event_size=HEAD_MAX_BYTES,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    print(f"balancedesk: serving {scheme}://{shown}:{bound_port}", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
    return 0

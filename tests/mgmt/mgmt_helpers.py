"""Helpers shared by the management API tests (imported as ``mgmt_helpers``; the fixtures are in conftest)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_PASSWORD = "admin-password-1"
PASSWORD = "user-password-1"
SERVE = [sys.executable, "-m", "balancedesk.gui.launcher", "serve"]
SERVING_RX = r"balancedesk: serving (https?://\S+)"


@dataclass
class Server:
    url: str
    data: Path
    child: Any  # tests/conftest.py's Child
    database: str | None = None  # the PostgreSQL URL, or None: SQLite in ``data``
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def store_args(self) -> list[str]:
        """The CLI's arguments that reach this server's store (``--data``, and ``--database`` on PostgreSQL)."""
        return ["--data", str(self.data), *([] if self.database is None else ["--database", self.database])]

    def as_user(self, name: str, password: str = PASSWORD) -> httpx.Client:
        client = httpx.Client(base_url=self.url, auth=(name, password), timeout=15.0)
        self.clients.append(client)
        return client

    @property
    def admin(self) -> httpx.Client:
        return self.as_user("admin", ADMIN_PASSWORD)

    def anonymous(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=15.0)
        self.clients.append(client)
        return client

    def add_user(self, name: str, role: str = "User") -> httpx.Client:
        r = self.admin.post("/api/admin/users", json={"name": name, "password": PASSWORD, "role": role})
        assert r.status_code == 201, r.text
        return self.as_user(name)

    def register(self, label: str, owner: str, *, port: int = 9100, connector_id: str | None = None) -> str:
        body: dict[str, Any] = {"label": label, "owner": owner, "endpoint": f"127.0.0.1:{port}"}
        if connector_id:
            body["connectorID"] = connector_id
        r = self.admin.post("/api/admin/connectors", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["connectorID"])

    def close(self) -> None:
        for c in self.clients:
            c.close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The HDP error envelope of a response, checked for shape."""
    body = response.json()
    err = body["error"]
    assert isinstance(err["code"], str) and len(err["code"]) == 9 and err["code"].isdigit(), body
    assert err["message"]["lang"] == "en-US" and err["message"]["value"], body
    assert isinstance(err["problems"], list), body
    return dict(err)


def dump_store(server: Server) -> str:
    """Every row of the server's store as text (SQLite's dump, or each PostgreSQL table's rows)."""
    if server.database is None:
        import sqlite3

        db = sqlite3.connect(server.data / "balancedesk.sqlite3")
        try:
            return "\n".join(db.iterdump())
        finally:
            db.close()
    import psycopg

    with psycopg.connect(server.database) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(f"{t}: {row}" for t in tables for row in conn.execute(f"SELECT * FROM {t}"))

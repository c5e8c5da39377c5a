"""``balancedesk serve`` refusals and TLS, and the ``users`` / ``connectors`` commands on a data directory."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from mgmt_helpers import ADMIN_PASSWORD

from tests.conftest import self_signed_cert

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BALANCEDESK, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_non_loopback_bind_without_tls_is_refused(tmp_path: Path) -> None:
    r = _run("serve", "--host", "0.0.0.0", "--port", "0", "--data", str(tmp_path))
    assert r.returncode != 0
    assert "refusing to serve plain HTTP on non-loopback address 0.0.0.0" in r.stderr
    assert "--insecure" in r.stderr and "serving" not in r.stdout
    r = _run("serve", "--port", "0", "--data", str(tmp_path), "--cert", str(tmp_path / "missing.pem"))
    assert r.returncode != 0 and "both --cert and --key" in r.stderr


def test_serves_https_with_cert_and_key(spawn: Any, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    child = spawn(
        [*BALANCEDESK, "serve", "--port", "0", "--data", str(tmp_path / "d"), "--cert", str(cert), "--key", str(key)],
        env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    url = child.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30).group(1)
    assert url.startswith("https://127.0.0.1:")
    ctx = ssl.create_default_context(cafile=str(cert))
    r = httpx.get(f"{url}/api/mgmt/whoami", auth=("admin", ADMIN_PASSWORD), verify=ctx)
    assert r.json() == {"user": "admin", "roles": ["Administrator"]}


def test_first_start_generates_an_admin_password_in_a_0600_file(spawn: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BALANCEDESK_ADMIN_PASSWORD"}
    child = spawn(
        [*BALANCEDESK, "serve", "--port", "0", "--data", str(tmp_path)], env={**env, "BALANCEDESK_ADMIN_PASSWORD": ""}
    )
    printed = child.wait_for(r"created user admin with password (\S+)", timeout=30).group(1)
    url = child.wait_for(r"balancedesk: serving (http://\S+)", timeout=30).group(1)
    path = tmp_path / "admin-password.txt"
    assert path.read_text().strip() == printed
    assert path.stat().st_mode & 0o777 == 0o600
    assert httpx.get(f"{url}/api/mgmt/whoami", auth=("admin", printed)).status_code == 200


def test_users_and_connectors_commands(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path)]
    env = {"NEW_PW": "a-long-password"}
    r = _run("users", "add", "rick", "--password-env", "NEW_PW", *data, env=env)
    assert r.returncode == 0, r.stderr
    r = _run("users", "add", "rick", "--password-env", "NEW_PW", *data, env=env)
    assert r.returncode == 1 and "already exists" in r.stderr and r.stderr.count("\n") == 1
    r = _run("connectors", "register", "--label", "opc1", "--owner", "rick", "--endpoint", "127.0.0.1:9101", *data)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    r = _run("connectors", "register", "--label", "opc2", "--owner", "ghost", "--endpoint", "nowhere", *data)
    assert r.returncode == 1 and "owner" in r.stderr and "endpoint" in r.stderr
    listed = _run("connectors", "list", *data)
    assert f"{cid}\trick\topc1\t127.0.0.1:9101" in listed.stdout
    assert _run("users", "disable", "rick", *data).returncode == 0
    assert "rick\tUser\tdisabled" in _run("users", "list", *data).stdout
    assert _run("connectors", "unregister", cid, *data).returncode == 0
    assert cid not in _run("connectors", "list", *data).stdout
    r = _run("connectors", "unregister", cid, *data)
    assert r.returncode == 1 and "no connector" in r.stderr


def test_cli_writes_beside_a_running_server_are_seen_at_once(start_server: Any) -> None:
    server = start_server()
    before = server.admin.get("/api/mgmt/connectors", params={"details": "true"}).json()["connectors"]
    r = _run("connectors", "register", "--label", "live", "--owner", "admin", "--endpoint", "127.0.0.1:9",
             *server.store_args)  # fmt: skip
    assert r.returncode == 0, r.stderr
    after = server.admin.get("/api/mgmt/connectors", params={"details": "true"}).json()["connectors"]
    assert [c["connectorID"] for c in after] == [c["connectorID"] for c in before] + [r.stdout.strip()]


def test_cli_unregister_beside_a_running_server_is_seen_by_reads_it_already_answered(start_server: Any) -> None:
    server = start_server()
    cid = server.register("m1", "admin", port=9101)
    group = server.admin.post(
        "/api/mgmt/connectors", json={"label": "g", "connectorGroup": {"members": [{"memberID": cid, "sequence": 1}]}}
    )
    assert group.status_code == 201, group.text
    gid = group.json()["connectorID"]
    url = f"/api/mgmt/connectors/{gid}"
    for _ in range(2):  # answered twice, so the second answer may come from what the server remembers
        assert server.admin.get(url).status_code == 200
        assert gid in [
            c["connectorID"] for c in server.admin.get("/api/mgmt/connectors?details=true").json()["connectors"]
        ]
        assert gid in server.admin.get("/api/mgmt/connectors").json()["connectorIDs"]
    r = _run("connectors", "unregister", gid, *server.store_args)
    assert r.returncode == 0, r.stderr
    assert server.admin.get(url).status_code == 404
    stale = server.admin.put(url, json={**group.json(), "label": "g2"}, headers={"If-Match": group.headers["ETag"]})
    assert stale.status_code == 404, stale.text
    assert gid not in [
        c["connectorID"] for c in server.admin.get("/api/mgmt/connectors?details=true").json()["connectors"]
    ]
    assert gid not in server.admin.get("/api/mgmt/connectors").json()["connectorIDs"]

"""``balancedesk serve --config FILE`` and the store commands' ``--config``, on real processes: the file's data,
database and settings are used, a flag (and ``BALANCEDESK_DATABASE``) wins over the file, and a bad file stops
the command before anything is made."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from fleet_helpers import as_token, heartbeat_body, make_token, new_pool
from mgmt_helpers import ADMIN_PASSWORD, SERVE, SERVING_RX, Server
from pg_cluster import Cluster

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]
ADMIN_ENV = {"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD}


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("BALANCEDESK_CONFIG", "BALANCEDESK_DATABASE")}
    return subprocess.run([*BALANCEDESK, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**base, **(env or {})})


def _config(folder: Path, text: str, mode: int = 0o600) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "serve.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def _start(spawn: Any, *argv: str, data: Path, env: dict[str, str] | None = None, cwd: Path | None = None
           ) -> Server:
    child = spawn([*SERVE, *argv], env={**ADMIN_ENV, **(env or {})}, cwd=cwd)
    return Server(url=child.wait_for(SERVING_RX, timeout=30).group(1), data=data, child=child)


def _labels(server: Server) -> list[str]:
    r = server.admin.get("/api/mgmt/connectors", params={"details": "true"})
    assert r.status_code == 200, r.text
    return sorted(c["label"] for c in r.json()["connectors"])


def test_serve_uses_the_files_data_and_settings_and_a_flag_wins(spawn: Any, tmp_path: Path) -> None:
    etc, elsewhere = tmp_path / "etc", tmp_path / "cwd"
    elsewhere.mkdir()
    config = _config(etc, 'data = "data"\ndemo = true\nheartbeat-interval = 0.5\nport = 8090\n')
    server = _start(spawn, "--config", str(config), "--port", "0", data=etc / "data", cwd=elsewhere)
    try:
        assert not server.url.endswith(":8090")  # --port 0 won over the file's port
        assert (etc / "data" / "balancedesk.sqlite3").is_file()  # relative to the file, not the working directory
        assert not (elsewhere / "data").exists()
        assert _labels(server) == ["Demo Round Robin", "demo-1", "demo-2", "demo-3", "demo-4"]
        balancer = as_token(server, make_token(server, new_pool()))
        beat = balancer.post("/api/admin/balancers/heartbeat", json=heartbeat_body(f"bal-{uuid.uuid4().hex[:8]}"))
        assert beat.status_code == 200, beat.text
        assert beat.json()["heartbeatInterval"] == 0.5

        # the store commands read the same file's data (from anywhere)
        listed = _run("connectors", "list", "--config", str(config), cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "\tdemo-1\t" in listed.stdout and "Demo Round Robin" in listed.stdout
        listed = _run("connectors", "list", env={"BALANCEDESK_CONFIG": str(config)})
        assert "\tdemo-1\t" in listed.stdout, listed.stderr

        other = tmp_path / "other"
        second = _start(spawn, "--config", str(config), "--port", "0", "--data", str(other), "--no-demo",
                        data=other)
        try:
            assert (other / "balancedesk.sqlite3").is_file()
            assert _labels(second) == []
        finally:
            second.close()
    finally:
        server.close()


def test_serve_uses_the_files_postgresql_database_and_the_environment_wins(
    spawn: Any, tmp_path: Path, pg_cluster: Cluster
) -> None:
    url = pg_cluster.new_database()
    with_password = url.replace("postgresql://bd@", "postgresql://bd:not-checked@")  # the test cluster trusts loopback
    etc = tmp_path / "etc"
    config = _config(etc, f'database = "{with_password}"\ndata = "data"\n', mode=0o644)
    server = _start(spawn, "--config", str(config), "--port", "0", data=etc / "data")
    try:
        warning = server.child.wait_for(r"balancedesk: warning: .*serve\.toml: the database URL holds a password",
                                        timeout=30)
        assert "should be 0600: chmod 600" in warning.string and "not-checked" not in warning.string
        cid = server.register("in-postgres", "admin", port=9101)
        assert (etc / "data").is_dir() and not (etc / "data" / "balancedesk.sqlite3").exists()
        listed = _run("connectors", "list", "--database", url)  # the connector is in the file's database
        assert f"{cid}\tadmin\tin-postgres\t127.0.0.1:9101" in listed.stdout, listed.stderr
        listed = _run("connectors", "list", "--config", str(config))
        assert cid in listed.stdout and "should be 0600" in listed.stderr

        other = pg_cluster.new_database()  # $BALANCEDESK_DATABASE wins over the file's database
        second = _start(spawn, "--config", str(config), "--port", "0", data=etc / "data",
                        env={"BALANCEDESK_DATABASE": other})
        try:
            assert _labels(second) == []
            second.register("in-other", "admin", port=9102)
        finally:
            second.close()
        assert "in-other" not in _run("connectors", "list", "--database", url).stdout
        assert "in-other" in _run("connectors", "list", "--database", other).stdout
        # and --database wins over both
        flagged = _run("connectors", "list", "--config", str(config), "--database", other,
                       env={"BALANCEDESK_DATABASE": url})
        assert "in-other" in flagged.stdout and "in-postgres" not in flagged.stdout, flagged.stderr
    finally:
        server.close()


def test_a_bad_config_file_stops_serve_before_anything_is_made(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    config = _config(etc, 'data = "data"\nprot = 8090\nhost = 1\n')
    r = _run("serve", "--config", str(config), "--port", "0")
    assert r.returncode == 2 and "serving" not in r.stdout
    assert r.stderr.splitlines() == [
        f"balancedesk: {config}: unknown key 'prot' (did you mean 'port'?)",
        f"balancedesk: {config}: key 'host': expected a string, got an integer (1)",
    ]
    assert not (etc / "data").exists()

    config.write_text('data = "data"\nport = \n')
    r = _run("serve", "--config", str(config), "--port", "0")
    assert r.returncode == 2
    assert r.stderr == f"balancedesk: {config}: not valid TOML: Invalid value (at line 2, column 8)\n"

    missing = tmp_path / "missing.toml"
    r = _run("serve", "--port", "0", "--data", str(tmp_path / "d"), env={"BALANCEDESK_CONFIG": str(missing)})
    assert r.returncode == 2 and not (tmp_path / "d").exists()
    assert r.stderr == (f"balancedesk: {missing}: cannot read the config file (given by $BALANCEDESK_CONFIG): "
                        "No such file or directory\n")


def test_a_bad_config_file_stops_a_store_command_before_it_asks_or_writes(tmp_path: Path) -> None:
    config = _config(tmp_path / "etc", 'data = "data"\ndatabse = "postgresql://db/bd"\n')
    r = _run("users", "add", "bob", "--config", str(config))  # would ask for a password on a terminal
    assert r.returncode == 2
    assert r.stderr == f"balancedesk: {config}: unknown key 'databse' (did you mean 'database'?)\n"
    assert not (tmp_path / "etc" / "data").exists()

"""The serve settings and their TOML file (core/mgmt/serve_config.py), without processes: parsing, refusals,
relative paths, the password warning, precedence, and the ``serve`` flags made from the same table."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.cli import build_parser
from balancedesk.core.mgmt.serve_config import (
    CONFIG_ENV,
    DATABASE_ENV,
    SETTINGS,
    ConfigError,
    ServeSettings,
    config_path,
    has_password,
    load,
    parse_config,
    password_warning,
    read_config,
    resolve,
)

FOLDER = Path("/etc/balancedesk")
PG = "postgresql://balancedesk@db.example/balancedesk"


def problems_of(text: str, name: str = "serve.toml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FOLDER, name)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def test_every_setting_is_read_with_its_type_and_paths_relative_to_the_files_folder() -> None:
    text = f"""
host = "10.0.0.11"
port = 8443
data = "data"
database = "{PG}"
cert = "/etc/ssl/bd.pem"
key = "tls/bd.key"
insecure = true
demo = false
heartbeat-interval = 2
"""
    values = parse_config(text, FOLDER, "serve.toml")
    assert values == {
        "host": "10.0.0.11", "port": 8443, "data": FOLDER / "data", "database": PG,
        "cert": Path("/etc/ssl/bd.pem"), "key": FOLDER / "tls/bd.key", "insecure": True, "demo": False,
        "heartbeat_interval": 2.0,
    }
    assert isinstance(values["heartbeat_interval"], float)
    assert set(values) == {f.name for f in dataclasses.fields(ServeSettings)}  # the file can give every one


def test_a_sqlite_database_is_relative_to_the_folder_and_a_home_path_expands() -> None:
    assert parse_config('database = "sqlite:store/bd.sqlite3"', FOLDER, "f")["database"] == \
        "sqlite:/etc/balancedesk/store/bd.sqlite3"
    assert parse_config('database = "bd.sqlite3"', FOLDER, "f")["database"] == "sqlite:/etc/balancedesk/bd.sqlite3"
    assert parse_config('database = "sqlite:/srv/bd.sqlite3"', FOLDER, "f")["database"] == "sqlite:/srv/bd.sqlite3"
    assert parse_config('data = "~/bd"', FOLDER, "f")["data"] == Path.home() / "bd"
    assert parse_config("", FOLDER, "f") == {}


def test_an_unknown_key_is_named_with_the_close_one() -> None:
    assert problems_of("prot = 1") == ["serve.toml: unknown key 'prot' (did you mean 'port'?)"]
    assert problems_of("heartbeat_interval = 1") == [
        "serve.toml: unknown key 'heartbeat_interval' (did you mean 'heartbeat-interval'?)"]
    [far] = problems_of("colour = 'blue'")
    assert far.startswith("serve.toml: unknown key 'colour' (known keys: host, port, data, database,")
    assert problems_of("[serve]\nport = 1") == [
        "serve.toml: unknown key 'serve' (the settings are top-level keys, not in a [table])"]


@pytest.mark.parametrize(("line", "problem"), [
    ('port = "8090"', "key 'port': expected an integer 0-65535, got a string (\"8090\")"),
    ("port = 80.5", "key 'port': expected an integer 0-65535, got a float (80.5)"),
    ("port = true", "key 'port': expected an integer 0-65535, got a boolean (true)"),
    ("port = 70000", "key 'port': must be 0-65535, not 70000"),
    ("port = -1", "key 'port': must be 0-65535, not -1"),
    ("insecure = 1", "key 'insecure': expected true or false, got an integer (1)"),
    ('demo = "yes"', "key 'demo': expected true or false, got a string (\"yes\")"),
    ("heartbeat-interval = 0", "key 'heartbeat-interval': must be 0.05-3600, not 0"),
    ("heartbeat-interval = nan", "key 'heartbeat-interval': must be 0.05-3600, not nan"),
    ('heartbeat-interval = "5"', "key 'heartbeat-interval': expected a number of seconds 0.05-3600, got a string"),
    ("host = 10", "key 'host': expected a string, got an integer (10)"),
    ('host = ""', "key 'host': must not be empty"),
    ("data = 1979-05-27", "key 'data': expected a path (a string), got a date/time (\"1979-05-27\")"),
    ("cert = ['a.pem']", "key 'cert': expected a path (a string), got an array ([\"a.pem\"])"),
])
def test_a_wrong_value_is_refused_naming_the_file_the_key_and_what_is_wrong(line: str, problem: str) -> None:
    [found] = problems_of(line)
    assert found.startswith(f"serve.toml: {problem}"), found


def test_a_wrong_value_never_shows_a_password() -> None:
    [found] = problems_of('database = ["postgresql://bd:s3cret@db/bd"]')
    assert "s3cret" not in found and "postgresql://bd:***@db/bd" in found


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    found = problems_of('prot = 1\nport = "x"\ninsecure = "no"\nhost = "h"')
    assert [p.split(": ", 2)[1] for p in found] == ["unknown key 'prot' (did you mean 'port'?)", "key 'port'",
                                                   "key 'insecure'"]


def test_toml_syntax_errors_give_line_and_column() -> None:
    assert problems_of('host = "a"\nport 8090\n') == [
        "serve.toml: not valid TOML: Expected '=' after a key in a key/value pair (at line 2, column 6)"]
    assert problems_of("port = 1\nport = 2\n")[0].startswith("serve.toml: not valid TOML: Cannot overwrite a value")


def test_precedence_flag_then_environment_then_file_then_default() -> None:
    file = {"host": "10.0.0.11", "port": 9000, "database": PG, "insecure": True}
    env = {DATABASE_ENV: "postgresql://env@db/env"}
    assert resolve({}, {}, {}) == ServeSettings()
    assert ServeSettings() == ServeSettings(host="127.0.0.1", port=8090, data=None, database=None, demo=False,
                                            cert=None, key=None, insecure=False, heartbeat_interval=None)
    s = resolve({}, {}, file)
    assert (s.host, s.port, s.database, s.insecure, s.demo) == ("10.0.0.11", 9000, PG, True, False)
    assert resolve({}, env, file).database == "postgresql://env@db/env"
    assert resolve({}, {DATABASE_ENV: ""}, file).database == PG  # an empty variable counts as unset
    flags = {"port": 0, "database": "postgresql://flag@db/flag", "insecure": False, "host": None}
    s = resolve(flags, env, file)
    assert (s.host, s.port, s.database, s.insecure) == ("10.0.0.11", 0, "postgresql://flag@db/flag", False)
    assert resolve({}, {"BALANCEDESK_HOST": "x"}, {}).host == "127.0.0.1"  # only database has a variable


def test_the_config_file_comes_from_the_flag_else_the_environment() -> None:
    assert config_path(None, {}) is None
    assert config_path(None, {CONFIG_ENV: ""}) is None
    assert config_path(None, {CONFIG_ENV: "/etc/bd.toml"}) == (Path("/etc/bd.toml"), "$BALANCEDESK_CONFIG")
    assert config_path(Path("mine.toml"), {CONFIG_ENV: "/etc/bd.toml"}) == (Path("mine.toml"), "--config")


def test_read_config_relative_to_the_files_folder_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "serve.toml"
    path.parent.mkdir()
    path.write_text('data = "data"\nport = 0\n')
    assert read_config(path) == ({"data": tmp_path / "etc" / "data", "port": 0}, [])
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read the config file \(given by --config\): "
                                          "No such file or directory"):
        read_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r": cannot read the config file \(given by \$BALANCEDESK_CONFIG\): "
                                          "Is a directory"):
        read_config(tmp_path, "$BALANCEDESK_CONFIG")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'host = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: not valid TOML: not UTF-8 text \(byte 11\)"):
        read_config(latin)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text("port = 0\n")
    path.chmod(0)
    with pytest.raises(ConfigError, match=r"cannot read the config file .*Permission denied"):
        read_config(path)


def test_a_password_in_a_file_others_can_read_is_warned_about_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text('database = "postgresql://bd:s3cret@db.example/bd"\n')
    path.chmod(0o644)
    values, [warning] = read_config(path)
    assert values == {"database": "postgresql://bd:s3cret@db.example/bd"}
    assert warning == (f"{path}: the database URL holds a password and anyone on this machine can read the file "
                       f"(mode 0644); it should be 0600: chmod 600 {path}")
    path.chmod(0o600)
    assert read_config(path)[1] == []
    assert password_warning(PG, stat.S_IFREG | 0o644, "f") is None  # no password: nothing to say
    assert password_warning(None, 0o644, "f") is None
    assert password_warning("postgresql://db/bd?password=x", 0o604, "f") is not None


def test_has_password() -> None:
    assert has_password("postgresql://bd:pw@db/bd")
    assert has_password("postgres://bd:pw@db1,db2/bd")
    assert has_password("postgresql://bd@db/bd?sslmode=require&password=pw")
    assert not has_password(PG)
    assert not has_password("postgresql://bd:@db/bd")
    assert not has_password("sqlite:/var/lib/bd:pw@x")


def serve_args(*argv: str) -> Any:
    return build_parser().parse_args(["serve", *argv])


def test_the_serve_flags_are_made_from_the_same_table() -> None:
    args = serve_args()
    assert args.config is None
    for s in SETTINGS:  # every setting has its flag, and none has a value unless given
        assert getattr(args, s.dest) is None, s.dest
    args = serve_args("--heartbeat-interval", "0.5", "--port", "0", "--data", "d", "--no-insecure", "--demo")
    assert (args.heartbeat_interval, args.port, args.data, args.insecure, args.demo) == (0.5, 0, Path("d"), False,
                                                                                        True)


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "99999"], "argument --port: must be 0-65535, not 99999"),
    (["--port", "http"], "argument --port: expected an integer 0-65535, got 'http'"),
    (["--heartbeat-interval", "abc"], "argument --heartbeat-interval: expected a number of seconds 0.05-3600"),
    (["--host", ""], "argument --host: must not be empty"),
])
def test_a_bad_flag_is_refused_with_the_same_rules_as_the_file(argv: list[str], message: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        serve_args(*argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_load_puts_the_flags_over_the_environment_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(f'database = "{PG}"\ndata = "d"\ninsecure = true\nport = 9000\n')
    args = serve_args("--port", "0", "--no-insecure")
    flags = {s.dest: getattr(args, s.dest) for s in SETTINGS}
    settings, warnings = load(path, flags, env={})
    assert (settings.port, settings.insecure, settings.data, settings.database) == (0, False, tmp_path / "d", PG)
    assert warnings == []
    settings, _ = load(None, {}, env={CONFIG_ENV: str(path), DATABASE_ENV: "postgresql://env@db/env"})
    assert (settings.port, settings.database) == (9000, "postgresql://env@db/env")
    assert load(None, {}, env={})[0] == ServeSettings()

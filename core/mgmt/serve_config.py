"""The settings of ``balancedesk serve``, defined once, and the TOML file that holds them per machine.

:class:`ServeSettings` is the one list of serve settings: each field says its kind, bounds, help and default.
``core/mgmt/cli.py`` makes the ``serve`` flags from it (:data:`SETTINGS`), and :func:`parse_config` reads
the same names from a file. A key is the flag without its ``--``, dashes and all (``heartbeat-interval``);
the settings are top-level keys, not in a ``[table]``::

    host = "10.0.0.11"
    data = "/var/lib/balancedesk"        # relative paths are relative to this file's folder
    database = "postgresql://balancedesk@db.example/balancedesk"
    insecure = true
    heartbeat-interval = 5

Rules:

* **precedence** (:func:`resolve`): a command-line flag > the setting's environment variable (only
  ``database`` has one, :data:`DATABASE_ENV`) > the file (``--config FILE``, else :data:`CONFIG_ENV`) > the
  default. An empty environment variable counts as unset.
* **paths** in the file (``data``, ``cert``, ``key``, and a ``sqlite:PATH`` ``database``) are relative to the
  file's folder; ``~`` is the user's home. Paths on the command line are relative to the working directory.
* **a bad file is refused whole** (:class:`ConfigError`, every problem on its own line, each naming the file
  and the key): not TOML (tomllib's line and column), an unknown key (with the close one, if any), a value of
  the wrong type or out of range, an empty string; a missing or unreadable file.
* **a password** in a ``database`` URL of a file others may read is warned about (:func:`password_warning`,
  the file should be 0600); it is not refused.

Pure except :func:`read_config` (reads the file and its mode). No heavy imports: the CLI builds its parser
from this module on every ``balancedesk`` run.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from balancedesk.core.mgmt.database import SQLITE_SCHEME, is_postgres, redacted, sqlite_path

CONFIG_ENV = "BALANCEDESK_CONFIG"  # the config file when no --config is given
DATABASE_ENV = "BALANCEDESK_DATABASE"  # the database URL when no --database is given (over the file's)
PORT_MAX = 65535
HEARTBEAT_MIN_S = 0.05
HEARTBEAT_MAX_S = 3600.0
SHOWN_MAX = 60  # characters of a wrong value quoted in a message

Kind = Literal["text", "database", "integer", "seconds", "path", "switch"]
KIND_WORDS: dict[str, str] = {  # what a value of the kind is, for messages
    "text": "a string",
    "database": "a database URL (a string)",
    "integer": "an integer",
    "seconds": "a number of seconds",
    "path": "a path (a string)",
    "switch": "true or false",
}


@dataclass(frozen=True)
class Spec:
    """How one setting is written and checked: ``kind`` (see :data:`KIND_WORDS`), the flag's ``help`` and
    ``metavar``, the environment variable ``env`` that may give it, the bounds of a number."""

    kind: Kind
    help: str
    metavar: str | None = None
    env: str | None = None
    low: float | None = None
    high: float | None = None


def spec(kind: Kind, help: str, *, metavar: str | None = None, env: str | None = None,
         low: float | None = None, high: float | None = None) -> dict[str, Spec]:
    """A field's metadata in :class:`ServeSettings`: its :class:`Spec`."""
    return {"spec": Spec(kind, help, metavar, env, low, high)}


@dataclass(frozen=True)
class ServeSettings:
    """Every setting of ``balancedesk serve`` a machine keeps (flag ``--NAME``, file key ``NAME``, dashes for
    underscores). None: ``serve`` decides (the user's data directory; SQLite; no TLS; its heartbeat period)."""

    host: str = field(default="127.0.0.1", metadata=spec("text", "address to bind", metavar="HOST"))
    port: int = field(default=8090, metadata=spec("integer", "port, 0 picks a free one", low=0, high=PORT_MAX))
    data: Path | None = field(default=None, metadata=spec(
        "path", "data directory (default: the user's data directory)", metavar="DIR"))
    database: str | None = field(default=None, metadata=spec(
        "database", "postgresql://user@host/db to keep the data in PostgreSQL, shared by every server given the same "
        f"URL (default: ${DATABASE_ENV}, else SQLite in --data)", metavar="URL", env=DATABASE_ENV))
    demo: bool = field(default=False, metadata=spec("switch", "also register demo connectors and a demo group"))
    cert: Path | None = field(default=None, metadata=spec("path", "TLS certificate (PEM)", metavar="FILE"))
    key: Path | None = field(default=None, metadata=spec("path", "TLS private key (PEM)", metavar="FILE"))
    insecure: bool = field(default=False, metadata=spec("switch", "allow plain HTTP on a non-loopback address"))
    heartbeat_interval: float | None = field(default=None, metadata=spec(
        "seconds", "seconds between balancer heartbeats, told to every balancer; one that misses three is shown as "
        "lost (default 5)", metavar="S", low=HEARTBEAT_MIN_S, high=HEARTBEAT_MAX_S))


@dataclass(frozen=True)
class Setting:
    """One field of :class:`ServeSettings`: ``dest`` its attribute, ``key`` its flag (``--key``) and file key."""

    dest: str
    default: Any
    spec: Spec

    @property
    def key(self) -> str:
        return self.dest.replace("_", "-")

    @property
    def flag(self) -> str:
        return f"--{self.key}"

    def expected(self) -> str:
        words = KIND_WORDS[self.spec.kind]
        if self.spec.low is not None and self.spec.high is not None:
            words += f" {_number(self.spec.low)}-{_number(self.spec.high)}"
        return words

    def check(self, value: Any) -> str | None:
        """What is wrong with an already typed value (range, emptiness), or None."""
        if isinstance(value, str | Path) and not str(value):
            return "must not be empty"
        low, high = self.spec.low, self.spec.high
        if low is not None and high is not None and not low <= value <= high:
            return f"must be {_number(low)}-{_number(high)}, not {_number(value)}"
        return None

    def from_text(self, text: str) -> Any:
        """A flag's text → its value (argparse's ``type``); ValueError names what is wrong."""
        kind = self.spec.kind
        try:
            value: Any = {"integer": int, "seconds": float, "path": Path}.get(kind, str)(text)
        except ValueError:
            raise ValueError(f"expected {self.expected()}, got {text!r}") from None
        problem = self.check(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def from_file(self, value: Any, folder: Path) -> Any:
        """A TOML value → the setting's value (paths joined to ``folder``); ValueError names what is wrong."""
        kind = self.spec.kind
        fits = {
            "switch": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "seconds": isinstance(value, int | float) and not isinstance(value, bool),
        }.get(kind, isinstance(value, str))
        if not fits:
            raise ValueError(f"expected {self.expected()}, got {_toml_type(value)} ({_shown(value)})")
        problem = self.check(value)
        if problem is not None:
            raise ValueError(problem)
        if kind == "seconds":
            return float(value)
        if kind == "path":
            return folder / Path(value).expanduser()
        if kind == "database" and not is_postgres(value):
            return SQLITE_SCHEME + str(folder / sqlite_path(value).expanduser())
        return value


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, f.metadata["spec"]) for f in dataclasses.fields(ServeSettings)
)
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


class ConfigError(Exception):
    """A config file that cannot be used; ``problems``: one line each, naming the file (and the key)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_config(text: str, folder: Path, name: str) -> dict[str, Any]:
    """A config file's text → ``{dest: value}`` of the settings it gives, or :class:`ConfigError` with every
    problem. ``folder``: what relative paths are relative to; ``name``: the file, for the messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: not valid TOML: {exc}"]) from None
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in document.items():
        known = BY_KEY.get(key)
        if known is None:
            problems.append(f"{name}: {_unknown(key, value)}")
            continue
        try:
            values[known.dest] = known.from_file(value, folder)
        except ValueError as exc:
            problems.append(f"{name}: key '{key}': {exc}")
    if problems:
        raise ConfigError(problems)
    return values


def read_config(path: Path, origin: str = "--config") -> tuple[dict[str, Any], list[str]]:
    """The file's settings (see :func:`parse_config`, paths relative to its folder) and its warnings;
    ``origin``: who named the file, for the message if it cannot be read."""
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file (given by {origin}): {exc.strerror or exc}"]
                          ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: not UTF-8 text (byte {exc.start})"]) from None
    values = parse_config(text, path.absolute().parent, str(path))
    warning = password_warning(values.get("database"), mode, str(path))
    return values, [] if warning is None else [warning]


def has_password(url: str) -> bool:
    """A ``postgresql://`` URL with a password in it (``user:PASSWORD@`` or ``?password=``)."""
    if not is_postgres(url):
        return False
    parts = urlsplit(url)
    return bool(parts.password) or "password" in parse_qs(parts.query)


def password_warning(database: str | None, mode: int, name: str) -> str | None:
    """A warning when the file (permission bits ``mode``) holds a database password others may read."""
    if database is None or not has_password(database) or not mode & stat.S_IROTH:
        return None
    return (f"{name}: the database URL holds a password and anyone on this machine can read the file "
            f"(mode {stat.S_IMODE(mode):04o}); it should be 0600: chmod 600 {name}")


def resolve(flags: Mapping[str, Any], env: Mapping[str, str], file: Mapping[str, Any]) -> ServeSettings:
    """Each setting from, in order: ``flags`` (``{dest: value}``, None or absent: not given), its environment
    variable in ``env`` (non-empty), ``file`` (:func:`parse_config`'s values), else its default."""
    chosen: dict[str, Any] = {}
    for s in SETTINGS:
        value = flags.get(s.dest)
        if value is None and s.spec.env is not None:
            value = env.get(s.spec.env) or None
        if value is None:
            value = file.get(s.dest, s.default)
        chosen[s.dest] = value
    return ServeSettings(**chosen)


def config_path(given: Path | None, env: Mapping[str, str]) -> tuple[Path, str] | None:
    """The config file to read and who named it: ``--config``, else :data:`CONFIG_ENV` (non-empty), else None."""
    if given is not None:
        return given, "--config"
    named = env.get(CONFIG_ENV)
    return (Path(named), f"${CONFIG_ENV}") if named else None


def load(given: Path | None, flags: Mapping[str, Any], env: Mapping[str, str] | None = None
         ) -> tuple[ServeSettings, list[str]]:
    """The settings for a command: its flags over ``env`` (default: the process's) over the config file, and
    the file's warnings; :class:`ConfigError` if the file cannot be used."""
    env = os.environ if env is None else env
    found = config_path(given, env)
    values, warnings = read_config(*found) if found is not None else ({}, [])
    return resolve(flags, env, values), warnings


def _unknown(key: str, value: Any) -> str:
    close = difflib.get_close_matches(key, BY_KEY, n=1)
    if isinstance(value, dict):
        hint = "the settings are top-level keys, not in a [table]"
    elif close:
        hint = f"did you mean '{close[0]}'?"
    else:
        hint = "known keys: " + ", ".join(BY_KEY)
    return f"unknown key '{key}' ({hint})"


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


def _shown(value: Any) -> str:
    """A TOML value for a message: as TOML writes it (near enough), short, any password hidden."""
    text = redacted(json.dumps(value, default=str, ensure_ascii=False))
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 1] + "…"


def _number(value: float) -> str:
    return f"{value:g}"

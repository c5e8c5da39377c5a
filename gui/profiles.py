"""Connection profiles: server URL and user, the password in the OS keyring (never in a file).

The built-in "This computer" profile has no URL of its own: it runs the embedded management server
(:mod:`balancedesk.gui.local_server`) in the user data directory and reads the admin password the server
wrote there (mode 0600) on first start. Other profiles live in ``profiles.json`` in the user config
directory; where no keyring backend exists the password is asked for each time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import platformdirs

APP = "balancedesk"
LOCAL_NAME = "This computer"
KEYRING_SERVICE = "balancedesk"


@dataclass(frozen=True)
class Profile:
    """Where to connect. ``verify``: True, or a path to a certificate the user accepted explicitly."""

    name: str
    url: str = ""
    user: str = "admin"
    verify: bool | str = True
    local: bool = False

    @property
    def key(self) -> str:
        return f"{self.url}|{self.user}"


def data_dir() -> Path:
    return Path(os.environ.get("BALANCEDESK_DATA") or platformdirs.user_data_dir(APP))


def config_dir() -> Path:
    return Path(os.environ.get("BALANCEDESK_CONFIG") or platformdirs.user_config_dir(APP))


def local_profile() -> Profile:
    return Profile(name=LOCAL_NAME, user="admin", local=True)


class ProfileStore:
    """Profiles saved as JSON (no secrets). The local profile always comes first."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or config_dir()) / "profiles.json"

    def load(self) -> list[Profile]:
        out = [local_profile()]
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return out
        for item in raw if isinstance(raw, list) else []:
            try:
                p = Profile(
                    name=str(item["name"]), url=str(item["url"]), user=str(item["user"]),
                    verify=item.get("verify", True),
                )
            except (KeyError, TypeError):
                continue
            if p.name != LOCAL_NAME:
                out.append(p)
        return out

    def save(self, profiles: list[Profile]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{k: v for k, v in asdict(p).items() if k != "local"} for p in profiles if not p.local]
        self.path.write_text(json.dumps(rows, indent=2), encoding="utf-8")

    def upsert(self, profile: Profile) -> list[Profile]:
        profiles = [p for p in self.load() if p.name != profile.name] + [replace(profile, local=False)]
        self.save(profiles)
        return self.load()


def stored_password(profile: Profile) -> str | None:
    """The password from the OS keyring, or None (no keyring, nothing stored, or the keyring failed)."""
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, profile.key)
    except Exception:  # keyring backends raise many kinds; no keyring means "ask"
        return None


def remember_password(profile: Profile, password: str) -> bool:
    """Store the password in the OS keyring; False when there is none (then it is asked each time)."""
    try:
        import keyring
        from keyring.backends import fail

        if isinstance(keyring.get_keyring(), fail.Keyring):
            return False
        keyring.set_password(KEYRING_SERVICE, profile.key, password)
        return True
    except Exception:
        return False

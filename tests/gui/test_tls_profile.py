"""A self-signed management server: the window shows its fingerprint and connects only once the admin
accepts it; afterwards the profile verifies against exactly that certificate. Real ``serve --cert``."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.client import ApiUnavailable
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import Profile

from tests.conftest import self_signed_cert
from tests.gui.conftest import ADMIN_PASSWORD
from tests.gui.editor_support import CannedPrompter

Run = Callable[..., Any]


class Accepting(CannedPrompter):
    def __init__(self, accept: bool) -> None:
        super().__init__()
        self.accept = accept

    async def accept_certificate(self, url: str, fingerprint: str, subject: str) -> bool:
        self.asked.append(("certificate", fingerprint))
        return self.accept


@pytest.fixture
def tls_server(spawn: Callable[..., Any], tmp_path: Path) -> tuple[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = self_signed_cert(tmp_path)
    child = spawn(
        [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", str(tmp_path / "d"),
         "--demo", "--cert", str(cert), "--key", str(key)],
        env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    return child.wait_for(r"balancedesk: serving (https://\S+)", timeout=30).group(1), cert


def fingerprint_of(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()


def test_declined_certificate_does_not_connect(window: MainWindow, tls_server: tuple[str, Path], arun: Run) -> None:
    url, cert = tls_server
    window.prompter = Accepting(False)  # type: ignore[assignment]
    with pytest.raises(ApiUnavailable):
        arun(window.connect_profile(Profile(name="tls", url=url, user="admin"), password=ADMIN_PASSWORD))
    asked = [a for k, a in window.prompter.asked if k == "certificate"]  # type: ignore[attr-defined]
    assert len(asked) == 1
    assert asked[0].replace(":", "").lower() == fingerprint_of(cert)
    assert window.client is None


def test_accepted_certificate_connects_and_is_pinned(
    window: MainWindow, tls_server: tuple[str, Path], arun: Run
) -> None:
    url, cert = tls_server
    window.prompter = Accepting(True)  # type: ignore[assignment]
    arun(window.connect_profile(Profile(name="tls", url=url, user="admin"), password=ADMIN_PASSWORD))
    assert window.client is not None
    assert [g.label for g in window.catalog.groups] == ["Demo Round Robin"]
    assert window.profile is not None and window.profile.verify not in (True, False)
    pinned = Path(str(window.profile.verify))
    assert ssl.PEM_cert_to_DER_cert(pinned.read_text()) == ssl.PEM_cert_to_DER_cert(cert.read_text())

"""A self-signed management server: the window shows its fingerprint and connects only once the admin
accepts it; afterwards the profile verifies against exactly that certificate. Real ``serve --cert``."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.client import ApiUnavailable
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import Profile, ProfileStore

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
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    child = spawn(
        [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", str(tmp_path / "d"),
         "--demo", "--cert", str(cert), "--key", str(key)],
        env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    return child.wait_for(r"balancedesk: serving (https://\S+)", timeout=30).group(1), cert


@pytest.fixture
def window(qtbot: Any, arun: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    monkeypatch.setenv("BALANCEDESK_CONFIG", str(tmp_path / "config"))
    w = MainWindow(profiles=ProfileStore(tmp_path / "config"), local_data=tmp_path / "local")
    qtbot.addWidget(w)
    w.show()
    yield w
    arun(w.shutdown())


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

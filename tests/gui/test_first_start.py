"""The first start shows the generated admin password once, with where it is kept; later starts do not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from balancedesk.gui.app import compose_window
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import ProfileStore, local_profile

from tests.gui.editor_support import CannedPrompter

Run = Callable[..., Any]


def test_the_generated_password_is_shown_once(window: MainWindow, qtbot: Any, arun: Run,
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BALANCEDESK_ADMIN_PASSWORD", raising=False)
    arun(window.connect_profile(local_profile()), timeout_ms=40000)
    pw_file = tmp_path / "local" / "admin-password.txt"
    prompter = window.prompter
    assert isinstance(prompter, CannedPrompter)
    shown = [answer for kind, answer in prompter.asked if kind == "first_password"]
    assert shown == [(pw_file.read_text().strip(), str(pw_file))]
    arun(window.connect_profile(local_profile()), timeout_ms=40000)  # reconnecting: not again
    assert prompter.kinds().count("first_password") == 1
    arun(window.shutdown())

    again = compose_window(profiles=ProfileStore(tmp_path / "config"), local_data=tmp_path / "local")
    again.prompter = CannedPrompter()  # type: ignore[assignment]
    qtbot.addWidget(again)
    try:
        arun(again.connect_profile(local_profile()), timeout_ms=40000)  # the next start: the file was there
        assert "first_password" not in again.prompter.kinds()  # type: ignore[attr-defined]
    finally:
        arun(again.shutdown())

"""A new group's form opens without errors; a save shows them in plain words; 0 seconds says what it means."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from balancedesk.gui.main_window import MainWindow

from tests.gui.conftest import Server
from tests.gui.test_editor_server import connect

Run = Callable[..., Any]


def visible_errors(w: MainWindow) -> dict[str, str]:
    assert w.editor is not None
    return {k: label.text() for k, label in w.editor.errors.items() if not label.isHidden()}


def test_a_new_group_opens_clean_and_a_save_names_what_is_missing(
    window: MainWindow, mgmt_server: Server, arun: Run
) -> None:
    connect(window, mgmt_server, arun)
    arun(window.new_group())
    assert window.editor is not None
    assert visible_errors(window) == {}
    assert arun(window.save()) is False
    errors = visible_errors(window)
    assert "must not be empty" in errors.get("label", ""), errors
    assert not any("should" in text for text in errors.values()), errors  # no validation-library wording


def test_zero_seconds_says_what_it_means(window: MainWindow, mgmt_server: Server, arun: Run) -> None:
    connect(window, mgmt_server, arun)
    arun(window.new_group())
    editor = window.editor
    assert editor is not None
    editor.retry_spin.setValue(0)
    editor.timeout_spin.setValue(0)
    assert editor.retry_spin.text() == "0 s (never left out)"
    assert editor.timeout_spin.text() == "0 s (no limit)"

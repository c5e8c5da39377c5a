"""The Qt binding must not leak references away from None: PySide6 6.12.0 on CPython 3.11 drops one on
every void call, and a window that repaints for a minute then dies with ``Fatal Python error:
none_dealloc``. pyproject.toml excludes that version; this test catches any other that does the same."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from tests.gui.refcounts import refs_lost


def test_void_calls_keep_none_references(qtbot: QtBot) -> None:
    w = QWidget()
    qtbot.addWidget(w)

    def calls() -> None:
        for _ in range(2000):
            w.update()

    lost = refs_lost(None, calls)
    assert lost < 100, f"None lost {lost} references over 2000 void calls"


class _Emitter(QObject):
    fired = Signal(int)


def test_emit_keeps_true_references(qtbot: QtBot) -> None:
    """6.12.0 also dropped a reference to True per Python-side emit() (bool_dealloc at exit)."""
    emitter = _Emitter()
    got: list[int] = []
    emitter.fired.connect(got.append)

    def calls() -> None:
        for i in range(2000):
            emitter.fired.emit(i)

    lost = refs_lost(True, calls)
    assert len(got) == 2000
    assert lost < 100, f"True lost {lost} references over 2000 emits"

"""``emit(signal, *args)``: emit a Qt signal from Python without PySide6 6.12's refcount bug.

In PySide6-Essentials 6.12 (CPython 3.11) every Python-side ``SignalInstance.emit()`` returns ``True``
without taking a reference, so discarding the result drops one reference to the ``True`` singleton. After a
few thousand emits the interpreter aborts at exit ("bool_dealloc: deallocating True or False", rc 134).
This wrapper detects the bug once, at import, and gives the reference back; on a fixed PySide6 it is a
plain emit. Every Python-side emit in ``balancedesk.gui`` goes through it.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None


class _Probe(QObject):
    probed = Signal()


def _emit_steals_true() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    probe.probed.emit()
    after = sys.getrefcount(True)
    if after < before:
        _incref(True)  # give back what the probe took
        return True
    return False


EMIT_STEALS_TRUE = _emit_steals_true()


def emit(signal: SignalInstance, *args: Any) -> None:
    """``signal.emit(*args)``, compensating the PySide6 6.12 reference leak when present."""
    result = signal.emit(*args)  # type: ignore[func-returns-value]
    if EMIT_STEALS_TRUE and result is True:
        _incref(True)

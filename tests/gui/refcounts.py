"""Counting references a Qt binding drops: PySide6 6.12.0 on CPython 3.11 lost one reference to None per
void call and one to True per Python-side emit(), and the interpreter aborted at exit."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable


def refs_lost(obj: object, calls: Callable[[], None]) -> int:
    """How many references to ``obj`` went missing over ``calls()``. Only the calls may move the count:
    earlier tests' garbage (objects holding None or True) is collected first and the collector stays off
    meanwhile (CI once saw True's count fall by 87 from a collection inside such a loop, with no leak)."""
    gc.collect()
    gc.disable()
    try:
        before = sys.getrefcount(obj)
        calls()
        return before - sys.getrefcount(obj)
    finally:
        gc.enable()

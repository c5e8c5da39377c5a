"""Keep ``None`` alive on CPython 3.11 with PySide6 6.12.

Measured here (PySide6/shiboken6 6.12.0, CPython 3.11.7): every call of a void Qt method from Python
(``widget.update()``) and every Python override that returns ``None`` (``data()`` for an unused role,
``paint()``…) drops one reference to ``None`` (or a bool) without taking one — shiboken assumes the immortal ``None``
of Python ≥ 3.12. ``None`` starts with ~5 000 references, so a window that repaints for a minute ends in
``Fatal Python error: none_dealloc`` (at exit, or mid-paint). Python 3.12+ is not affected.

:func:`keep_none_alive` adds 2**40 references to ``None`` once, making it effectively immortal for the
process. Call it before the first window; it is idempotent and does nothing where it is not needed.
"""

from __future__ import annotations

import sys

_LOTS = 1 << 40


def keep_none_alive() -> None:
    """Also ``True`` and ``False``: PySide drops references to them the same way (``bool_dealloc``)."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    for singleton in (None, True, False, Ellipsis, NotImplemented):
        refcnt = ctypes.c_ssize_t.from_address(id(singleton))  # ob_refcnt is PyObject's first field
        if refcnt.value < _LOTS:
            refcnt.value += _LOTS

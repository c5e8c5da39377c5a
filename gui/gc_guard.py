"""Garbage collection in the GUI thread only.

Python's cyclic collector runs in whichever thread happens to allocate past its threshold — in this app
also a worker thread: the start-up preload (:mod:`.preload`), the threads anyio resolves host names on,
``asyncio.to_thread``. A Qt object in a reference cycle that is collected there has its C++ destructor run in
the wrong thread; Qt cannot unregister its timers or socket notifiers from another thread, and the GUI
thread later fires a timer at freed memory — a crash in ``QTimerInfoList::activateTimers``, seen in long
test runs. So while the app runs automatic collection is off and :class:`GuiCollector` collects from a
timer in the GUI thread, by the rule Python itself uses (:func:`generation_due`, with ``gc.get_threshold()``).
Reference counting still frees everything that is not in a cycle at once, in any thread.

Calling protocol::

    collector = GuiCollector()   # in the GUI thread, after the QApplication exists
    collector.start()            # gc.disable(); a check every INTERVAL_MS
    ...
    collector.stop()             # gc back as it was
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 250


def generation_due(counts: tuple[int, int, int], thresholds: tuple[int, ...]) -> int | None:
    """The oldest generation whose count is past its threshold (Python's own rule), or None.

    ``counts`` is ``gc.get_count()``: allocations minus deallocations since the last collection of generation
    0, then collections of 0 since the last of 1, then of 1 since the last of 2."""
    for generation in (2, 1, 0):
        if generation < len(thresholds) and thresholds[generation] and counts[generation] > thresholds[generation]:
            return generation
    return None


class GuiCollector(QObject):
    """Collects garbage from a timer of the thread it lives in (the GUI thread); see the module text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        self.collections = 0  # how many collections this collector ran
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.check)

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        if self._was_enabled:
            gc.enable()

    def check(self) -> int | None:
        """Collect the generation that is due, if one is; which one it was."""
        generation = generation_due(gc.get_count(), self._thresholds)
        if generation is not None:
            gc.collect(generation)
            self.collections += 1
        return generation

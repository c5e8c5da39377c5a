"""gui/gc_guard.py: cycles are collected by a timer of the GUI thread, by Python's own thresholds."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from balancedesk.gui.gc_guard import GuiCollector, generation_due


def test_the_oldest_generation_past_its_threshold_is_due() -> None:
    thresholds = (700, 10, 10)
    assert generation_due((0, 0, 0), thresholds) is None
    assert generation_due((700, 10, 10), thresholds) is None  # at the threshold: not yet (Python's ">")
    assert generation_due((701, 0, 0), thresholds) == 0
    assert generation_due((701, 11, 0), thresholds) == 1
    assert generation_due((5, 11, 11), thresholds) == 2
    assert generation_due((10_000, 0, 0), (0, 10, 10)) is None  # a threshold of 0: that collection is off


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_cycle_made_in_another_thread_is_collected_in_this_one(qtbot: Any) -> None:
    before = gc.isenabled()  # off already when the suite's own collector runs (tests/gui/conftest.py)
    collector = GuiCollector()
    collector.start()
    try:
        assert not gc.isenabled()
        freed_in: list[str] = []
        refs: list[weakref.ref[Node]] = []

        def make_garbage() -> None:  # allocations in a worker thread, far past generation 0's threshold
            for _ in range(gc.get_threshold()[0] * 3):
                node = Node()
                refs.append(weakref.ref(node, lambda _r: freed_in.append(threading.current_thread().name)))
                del node

        worker = threading.Thread(target=make_garbage, name="worker")
        worker.start()
        worker.join(30)
        assert not freed_in  # nothing collected in the worker: automatic collection is off
        qtbot.waitUntil(lambda: all(r() is None for r in refs), timeout=10_000)
        assert set(freed_in) == {threading.main_thread().name}  # by a collector's timer, in the GUI thread
    finally:
        collector.stop()
    assert gc.isenabled() == before

"""The arrows of the house: core never imports the GUI; the sans-io core never does I/O or reads a clock."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def test_core_never_imports_gui_or_qt() -> None:
    assert _violations("core", ("balancedesk.gui", "PySide6", "qasync", "pyqtgraph")) == []


def test_balance_is_sans_io() -> None:
    forbidden = ("asyncio", "socket", "time", "selectors", "ssl", "uvloop", "balancedesk.core.proxy")
    assert _violations("core/balance", forbidden) == []


def test_mgmt_does_not_reach_into_the_balancer() -> None:
    assert _violations("core/mgmt", ("balancedesk.core.proxy", "balancedesk.core.balance")) == []

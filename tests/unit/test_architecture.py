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


def _proxy_graph() -> dict[str, set[str]]:
    """core/proxy's modules → the core/proxy modules each imports (type-only imports included)."""
    prefix = "balancedesk.core.proxy."
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "core" / "proxy").glob("*.py")):
        deps = {n[len(prefix):].split(".")[0] for n in _imports(path) if n.startswith(prefix)}
        for node in ast.walk(ast.parse(path.read_text())):  # from balancedesk.core.proxy import native
            if isinstance(node, ast.ImportFrom) and node.module == prefix[:-1]:
                deps.update(a.name for a in node.names)
        graph[path.stem] = deps - {path.stem}
    return graph


def test_core_proxy_has_no_import_circle() -> None:
    graph = _proxy_graph()
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        assert node not in trail, "import circle: " + " → ".join((*trail[trail.index(node):], node))
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, (*trail, node))
        done.add(node)

    for module in graph:
        visit(module, ())


def test_a_data_plane_imports_nothing_of_the_server() -> None:
    graph = _proxy_graph()
    assert {m for m, deps in graph.items() if "server" in deps} == {"cli"}

"""Startup benchmark: a fresh app process → window shown and 100 groups listed, this tree against another revision.

    .venv/bin/python bench/bench_startup.py [--runs 5] [--groups 100] [--against REV]

``--against REV`` (default :data:`LAST_RELEASE`, or e.g. ``HEAD~3``) is checked out into a temporary git
worktree; both trees run from this venv, each through its own ``PYTHONPATH`` (a ``balancedesk`` folder of
links to the tree's ``core``, ``gui`` and ``resources``, so neither uses the editable install). For each
tree the benchmark starts that tree's ``balancedesk serve --demo`` on 127.0.0.1 with a fresh data
directory and registers ``--groups`` groups (two new connectors each) through the management API, then
times fresh ``balancedesk`` app processes of that tree until they print ``balancedesk-gui: groups listed
N`` (the app prints it when BALANCEDESK_BENCH_EXIT is set, then quits). Runs alternate between the trees
(this, other, other, this, …), so a load change on the machine falls on both:

* ``remote``: the app connects to the running server (``--url``);
* ``local``: the "This computer" profile on that data directory, i.e. including starting the embedded
  server (the first server is stopped first).

Prints, per scenario and tree, min / median / max seconds to "groups listed" against the 1.5 s target, the
median time to "window shown" (the app prints ``balancedesk-gui: window shown`` once its event loop runs)
and the app's CPU seconds, then the ratios this ÷ other of the medians; and the load average before and
after. Not part of the test run.

Bytecode: an installed app has its ``.pyc`` files; a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` compiles
every module of the package from source at each start (~0.1-0.2 s CPU). By default the app processes get a
private bytecode cache (``PYTHONPYCACHEPREFIX`` in the temporary directory, filled by one untimed start),
which is what users have; ``--no-bytecode-cache`` measures the from-source start instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from balancedesk.core.client import MgmtClient
from balancedesk.core.model import ROUND_ROBIN, Connector, ConnectorGroup, Member

PASSWORD = "bench-admin-pw-1"
TARGET_S = 1.5
ROOT = Path(__file__).resolve().parent.parent
# main before the main window's collaborators and the listener editor (issue 13, issue 11 item 1): what the
# README's startup numbers are compared with. Move it when a release is cut.
LAST_RELEASE = "a31b918"
FOLDERS = ("core", "gui", "resources")  # setup.py maps these onto balancedesk.*


@dataclass
class Tree:
    """One revision under test: its source folder and the PYTHONPATH that makes ``balancedesk`` it."""

    name: str
    source: Path
    path: Path  # holds balancedesk/{core,gui,resources} → source/{core,gui,resources}
    data: Path
    url: str = ""
    remote: list[tuple[float, int, float, float]] = field(default_factory=list)
    local: list[tuple[float, int, float, float]] = field(default_factory=list)
    failed: int = 0  # starts that did not list groups (not timed)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "balancedesk.gui.launcher", *args]

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.path), "PYTHONUNBUFFERED": "1", **extra}


def make_tree(name: str, source: Path, tmp: Path) -> Tree:
    pkg = tmp / f"path-{name}" / "balancedesk"
    pkg.mkdir(parents=True)
    for folder in FOLDERS:
        (pkg / folder).symlink_to(source / folder, target_is_directory=True)
    return Tree(name=name, source=source, path=pkg.parent, data=tmp / f"data-{name}")


def checkout(rev: str, where: Path) -> str:
    """Check ``rev`` out into a detached worktree at ``where``; returns its short hash."""
    short = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True,
                           capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), short], check=True,
                   capture_output=True, text=True)
    return short


def start_server(tree: Tree, cache: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """The tree's ``balancedesk serve --demo`` (with the apps' bytecode cache, so that the embedded servers
    of the local scenario find the server's modules compiled as the apps find theirs)."""
    proc = subprocess.Popen(
        tree.argv("serve", "--host", "127.0.0.1", "--port", "0", "--data", str(tree.data), "--demo"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=tree.env(BALANCEDESK_ADMIN_PASSWORD=PASSWORD, **cache),
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if m := re.search(r"balancedesk: serving (\S+)", line):
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("the management server did not start")


async def register(url: str, groups: int) -> int:
    async with MgmtClient(url, "admin", PASSWORD, timeout=30) as client:
        for g in range(groups):
            ids = []
            for k in range(2):
                reg = await client.register_connector(
                    label=f"bench-{g:03d}-{k}", owner="admin", endpoint=f"127.0.0.1:{20000 + 2 * g + k}"
                )
                ids.append(reg.connector_id)
            await client.create_group(Connector(
                owner="admin", label=f"Bench group {g:03d}",
                connector_group=ConnectorGroup(load_balancing=ROUND_ROBIN, members=tuple(
                    Member(member_id=i, sequence=n + 1, weight=n + 1) for n, i in enumerate(ids))),
            ))
        return len([c for c in await client.list_connectors(details=True) if c.is_group])


def time_app(tree: Tree, args: list[str], env: dict[str, str]) -> tuple[float, int, float, float] | None:
    """(wall seconds to "groups listed", groups listed, CPU seconds the app process used in all,
    wall seconds to "window shown"); None (counted in ``tree.failed``) when the app did not list."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    full_env = tree.env(**env, BALANCEDESK_BENCH_EXIT="1")
    if full_env.get("PYTHONPYCACHEPREFIX"):
        full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.Popen(tree.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=full_env)
    assert proc.stdout is not None
    listed = -1
    shown = float("nan")
    output: list[str] = []
    for line in proc.stdout:
        output.append(line)
        if "balancedesk-gui: window shown" in line:
            shown = time.perf_counter() - t0
        if m := re.search(r"balancedesk-gui: groups listed (\d+)", line):
            listed = int(m.group(1))
            break
    elapsed = time.perf_counter() - t0
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if listed < 0:  # counted and reported, not timed; the benchmark goes on
        why = next((line.strip() for line in reversed(output) if line.strip()), "no output")
        print(f"{tree.name}: a start did not list groups (rc {proc.returncode}): {why[:300]}", flush=True)
        tree.failed += 1
        return None
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return elapsed, listed, cpu, shown


def alternating(trees: list[Tree], runs: int) -> list[Tree]:
    """this, other, other, this, this, other, …: each tree as often first as second."""
    order: list[Tree] = []
    for i in range(runs):
        order += trees if i % 2 == 0 else trees[::-1]
    return order


def medians(rows: list[tuple[float, int, float, float]]) -> tuple[float, float, float]:
    """(median seconds to listed, median seconds to shown, median app CPU seconds)."""
    return (statistics.median(t for t, _, _, _ in rows), statistics.median(w for _, _, _, w in rows),
            statistics.median(c for _, _, c, _ in rows))


def report(trees: list[Tree]) -> None:
    print(f"{'scenario':<40} {'tree':<16} {'groups':>6} {'min s':>6} {'median s':>9} {'max s':>6} "
          f"{'shown s':>8} {'app CPU s':>10} {'target':>7}")
    for label, attr in (("remote: app start → groups listed", "remote"),
                        ("local: app + embedded server → listed", "local")):
        for tree in trees:
            rows = getattr(tree, attr)
            if not rows:
                print(f"{label:<40} {tree.name:<16} no start listed groups")
                continue
            times = [t for t, _, _, _ in rows]
            listed, shown, cpu = medians(rows)
            ok = "ok" if listed <= TARGET_S else "SLOW"
            print(f"{label:<40} {tree.name:<16} {rows[0][1]:>6} {min(times):>6.2f} {listed:>9.2f} "
                  f"{max(times):>6.2f} {shown:>8.2f} {cpu:>10.2f} {ok:>7}")
    print("\neach run, in order (seconds to groups listed):")
    for attr in ("remote", "local"):
        for tree in trees:
            print(f"  {attr:<7} {tree.name:<16} " + " ".join(f"{t:.2f}" for t, _, _, _ in getattr(tree, attr)))
    for tree in trees:
        if tree.failed:
            print(f"  {tree.name}: {tree.failed} start(s) did not list groups (see above; not timed)")
    this, other = trees
    print(f"\nratios {this.name} ÷ {other.name} (medians; < 1: {this.name} is faster)")
    print(f"{'scenario':<40} {'listed':>8} {'shown':>8} {'app CPU':>8}")
    for label, attr in (("remote", "remote"), ("local", "local")):
        if not getattr(this, attr) or not getattr(other, attr):
            continue
        a, b = medians(getattr(this, attr)), medians(getattr(other, attr))
        print(f"{label:<40} {a[0] / b[0]:>8.2f} {a[1] / b[1]:>8.2f} {a[2] / b[2]:>8.2f}")


def measure(trees: list[Tree], runs: int, groups: int, tmp: Path, cache: dict[str, str]) -> float:
    """Start each tree's server, register the groups, time the remote then the local starts (alternating);
    returns the load average before the timed runs."""
    servers: list[subprocess.Popen[str]] = []
    try:
        for tree in trees:
            server, tree.url = start_server(tree, cache)
            servers.append(server)
            t0 = time.perf_counter()
            total = asyncio.run(register(tree.url, groups))
            print(f"{tree.name}: registered {groups} groups ({total} on its server) in "
                  f"{time.perf_counter() - t0:.1f} s")
        print(f"platform {os.environ['QT_QPA_PLATFORM']}; runs alternate between the trees")
        env = {"BALANCEDESK_PASSWORD": PASSWORD, "BALANCEDESK_CONFIG": str(tmp / "config"), **cache}
        if cache:
            for tree in trees:  # untimed: fills the bytecode cache
                time_app(tree, ["--url", tree.url, "--user", "admin"], env)
        load0 = os.getloadavg()[0]
        for tree in alternating(trees, runs):
            if (row := time_app(tree, ["--url", tree.url, "--user", "admin"], env)) is not None:
                tree.remote.append(row)
    finally:
        for server in servers:
            server.kill()
            server.wait()
    env = {"BALANCEDESK_ADMIN_PASSWORD": PASSWORD, "BALANCEDESK_CONFIG": str(tmp / "config"), **cache}
    for tree in alternating(trees, runs):
        if (row := time_app(tree, ["--data", str(tree.data)], env)) is not None:
            tree.local.append(row)
    return load0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed starts per tree and scenario")
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--against", default=LAST_RELEASE,
                        help=f"the revision to measure side by side with this tree (default {LAST_RELEASE}, "
                             "the one the README's numbers are compared with; e.g. HEAD~3)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="let the app compile the package from source at each start (PYTHONDONTWRITEBYTECODE)")
    ns = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="bd-bench-"))
    worktree = tmp / "against"
    short = checkout(ns.against, worktree)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    trees = [make_tree(f"this ({head}{'+' if dirty else ''})", ROOT, tmp),
             make_tree(f"{ns.against} ({short})" if ns.against != short else short, worktree, tmp)]
    cache = {} if ns.no_bytecode_cache else {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    try:
        load0 = measure(trees, ns.runs, ns.groups, tmp, cache)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average {load0:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"bytecode {'from source' if ns.no_bytecode_cache else 'cached'}")
    report(trees)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The wheel installs everything under the ``balancedesk`` namespace: no generic top-level ``core`` or
``gui`` lands in site-packages, and the folders of the card map onto the packages the code imports."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_has_only_the_balancedesk_namespace(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    (wheel,) = tmp_path.glob("balancedesk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.startswith("balancedesk")} == set(), tops
    for module in ("balancedesk/core/model.py", "balancedesk/core/balance/group.py", "balancedesk/core/proxy/http.py",
                   "balancedesk/core/mgmt/app.py", "balancedesk/gui/app.py", "balancedesk/gui/live/window.py"):
        assert module in names
    assert not any(n.startswith("balancedesk/tests") or "/tests/" in n for n in names)

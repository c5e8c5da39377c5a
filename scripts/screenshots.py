"""Screenshots of the group editor, light and dark, under Xvfb: ``python scripts/screenshots.py``.

Without a DISPLAY it re-runs itself under ``xvfb-run`` (1280×800). For each theme it starts a fresh
embedded management server with the demo data on 127.0.0.1, opens the app window, connects, opens the
first group, and saves both the window grab and the X screen (``import -window root``) to
docs/screenshots/; then it turns the group's listener on (a port, HTTP mode) and saves that grab too
(``editor-listener-*.png``). Everything it starts it stops.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"


def main() -> int:
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, __file__, *sys.argv[1:]]
        return subprocess.call(cmd, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    themes = sys.argv[1:] or ["light", "dark"]
    if len(themes) > 1:  # one process per theme: a fresh QApplication each
        return max(subprocess.call([sys.executable, __file__, t]) for t in themes)
    return shoot(themes[0])


def shoot(theme: str) -> int:
    import qasync
    from balancedesk.gui.app import compose_window
    from balancedesk.gui.theme import apply_theme
    from PySide6.QtWidgets import QApplication

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bd-shots-"))
    os.environ["BALANCEDESK_CONFIG"] = str(tmp / "config")
    os.environ["BALANCEDESK_ADMIN_PASSWORD"] = "screenshot-pw-1"
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    apply_theme(app, theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = compose_window(local_data=tmp / "data")
    window.resize(1280, 770)
    window.move(0, 0)
    window.show()

    async def scene() -> None:
        from balancedesk.gui.profiles import local_profile

        await window.connect_profile(local_profile())
        groups = window.catalog.groups
        assert groups, "the demo data set has no group"
        await window.open_group(groups[0].connector_id or "")
        editor = window.editor
        assert editor is not None
        editor.view.select_row(0)
        editor.view.setFocus()
        # a group dropped on the members table is refused: show the reason as the user sees it
        editor.model.add_member(groups[0].connector_id or "")
        window.filter_edit.setText("")
        await asyncio.sleep(0.5)  # let layouts and paints settle before grabbing (a script, not a test)
        window.grab().save(str(OUT / f"editor-{theme}.png"))
        if shutil.which("import") and os.environ.get("DISPLAY"):
            shot = ["import", "-window", "root", str(OUT / f"screen-{theme}.png")]
            await asyncio.to_thread(subprocess.run, shot, check=False)
        # the listener (issue 11): served by the default pool on a port, in HTTP mode — a preview beside
        # the saved "not served", an edit that can be undone
        editor.refusal.hide()
        doc = editor.doc
        doc.set_field("listener", True)
        doc.set_field("listener_port", 8443)
        doc.set_field("listener_mode", "http")
        editor.port_spin.setFocus()
        await asyncio.sleep(0.5)
        window.grab().save(str(OUT / f"editor-listener-{theme}.png"))
        await window.shutdown()

    with loop:
        loop.run_until_complete(scene())
    window.deleteLater()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {OUT}/editor-{theme}.png and editor-listener-{theme}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

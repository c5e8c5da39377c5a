"""The Export… dialog: the preview is ``core.export``'s text (affinity from the listener, the engine's
comments), a bad listen address is said inline, Save writes exactly the preview, Deploy to HAProxy deploys to a
real HAProxy (master-worker) and a config HAProxy refuses changes nothing and shows HAProxy's message."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balancedesk.core.model import BalancerConfig, parse_balancer_config
from balancedesk.gui.export_dialog import ExportDialog
from haproxykit import RunningHaproxy, check_config_file
from pytestqt.qtbot import QtBot

from tests.gui import conftest as gui_fixtures

qloop, arun, own_settings = gui_fixtures.qloop, gui_fixtures.arun, gui_fixtures.own_settings
window, mgmt_server = gui_fixtures.window, gui_fixtures.mgmt_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cfg(group_id: str = "g-dlg") -> BalancerConfig:
    return parse_balancer_config({
        "connectorID": group_id, "label": "dialog group",
        "connectorGroup": {"loadBalancing": "Round Robin", "retryDelay": 5,
                           "members": [{"memberID": "a", "sequence": 1, "weight": 256},
                                       {"memberID": "b", "sequence": 2, "weight": 1}]},
        "endpoints": {"a": "127.0.0.1:1", "b": "127.0.0.1:2"},
        "listener": {"mode": "http", "port": free_port(), "bind": "127.0.0.1"},
    })


def test_preview_save_and_inline_errors(qtbot: QtBot, arun: Callable[..., Any], tmp_path: Path) -> None:
    dlg = ExportDialog(cfg())
    qtbot.addWidget(dlg)
    assert "balance hdr(sender-transfer-id)" in dlg.text() and "weight 256" in dlg.text()
    assert "Differences from Balance Desk's own balancer" in dlg.text()
    dlg.engine.setCurrentText("nginx")
    assert "hash $http_sender_transfer_id consistent;" in dlg.text() and "weight=256" in dlg.text()
    assert not dlg.deploy_button.isEnabled()  # deploy is HAProxy's
    dlg.listen.setText("127.0.0.1:99999")
    assert not dlg.save.isEnabled() and "Listen on" in dlg.message.text()
    assert dlg.message.objectName() == "fieldError"
    dlg.listen.setText("127.0.0.1:8088")
    assert dlg.save.isEnabled() and "listen 127.0.0.1:8088;" in dlg.text()
    out = tmp_path / "nginx.conf"
    assert arun(dlg.save_to(out))
    assert out.read_text() == dlg.text()
    assert not arun(dlg.save_to(tmp_path / "no-such-dir" / "x.conf"))
    assert "Cannot save" in dlg.message.text()


def test_deploy_from_the_dialog(qtbot: QtBot, arun: Callable[..., Any], haproxy: Callable[..., RunningHaproxy]) -> None:
    h = haproxy()
    dlg = ExportDialog(cfg())
    qtbot.addWidget(dlg)
    dlg.listen.setText(f"127.0.0.1:{free_port()}")
    dlg.hap_config.setText(str(h.config))
    dlg.hap_master.setText(h.master)
    dlg.hap_stats.setText(h.stats)
    results = arun(dlg.deploy_now(), timeout_ms=40_000)
    assert results and results[0].version == 1 and results[0].workers, results
    assert "Deployed g-dlg version 1" in dlg.message.text()
    assert "# BEGIN balancedesk group g-dlg version 1" in h.config.read_text()

    h.config.write_text(h.config.read_text() + "\nbackend bd_g-twice\n    mode http\n")
    before = h.config.read_bytes()
    other = ExportDialog(cfg("g-twice"))
    qtbot.addWidget(other)
    other.listen.setText(f"127.0.0.1:{free_port()}")
    assert arun(other.deploy_now(), timeout_ms=40_000) is None
    assert "Not deployed" in other.message.text() and "same name" in other.message.text()
    assert h.config.read_bytes() == before


def test_group_menu_export_opens_the_dialog_on_the_open_group(
    window: Any, mgmt_server: Any, qtbot: QtBot, arun: Callable[..., Any], tmp_path: Path,
) -> None:
    from balancedesk.gui.profiles import Profile
    from PySide6.QtWidgets import QApplication

    arun(window.connect_profile(Profile(name="t", url=mgmt_server.url, user=mgmt_server.user),
                                password=mgmt_server.password))
    assert not window.export_action.isEnabled()  # no group open yet
    saved = window.catalog.groups[0]
    row = window.browser_model.group_row(saved.connector_id)
    with qtbot.waitSignal(window.group_opened, timeout=10000):
        window.browser.setCurrentIndex(window.browser_filter.mapFromSource(window.browser_model.index(row, 0)))
    qtbot.waitUntil(window.export_action.isEnabled, timeout=5000)
    window.export_action.trigger()
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, ExportDialog) and w.isVisible()]
    assert len(dialogs) == 1
    dlg = dialogs[0]
    assert dlg.config.connector_id == saved.connector_id
    assert f"backend bd_{saved.connector_id}" in dlg.text()
    for m in saved.connector_group.members:
        assert f"# {m.member_id} (sequence {m.sequence})" in dlg.text()
    check = tmp_path / "check.cfg"
    check.write_text(dlg.text())
    assert check_config_file(check).returncode == 0, check_config_file(check).stdout
    dlg.close()

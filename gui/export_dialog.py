"""The Export… dialog: a saved group as an nginx or HAProxy config, previewed, saved to a file, or deployed.

The text is ``core.export``'s (the same as ``balancedesk export``), comments included — where the engine
differs from the group's rules, and any weight share it had to round — so what is previewed is what is
saved. "Deploy to HAProxy" is ``balancedesk haproxy deploy`` for one instance (``core.haproxy.deploy``):
config file, master CLI socket, optional stats socket; a config HAProxy refuses changes nothing and its
message is shown inline. Saving and deploying run on the qasync loop (file writes in a thread): the window
never waits on a disk or a process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from balancedesk.core.export import ENGINES, Settings, render, settings_for, write_atomically
from balancedesk.core.haproxy.deploy import DeployError, Instance, Origin, Result, deploy
from balancedesk.core.model import BalancerConfig, parse_endpoint
from balancedesk.gui.settings import app_settings
from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

DEPLOY_KEYS = {"config": "export/haproxy/config", "master": "export/haproxy/master", "stats": "export/haproxy/stats"}


class ExportDialog(QDialog):
    """Preview, save or deploy one group's engine config.

    Signals: ``saved(str)`` with the path written; ``deployed(object)`` with the list of
    :class:`~balancedesk.core.haproxy.deploy.Result`; ``failed(str)`` with the sentence shown.
    """

    saved = Signal(str)
    deployed = Signal(object)
    failed = Signal(str)

    def __init__(self, config: BalancerConfig, *, origin: Origin | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.origin = origin
        self.setWindowTitle(f"Export — {config.label}")
        self.resize(960, 720)
        self._tasks: set[asyncio.Task[Any]] = set()
        base = settings_for(config)
        self.engine = QComboBox()
        self.engine.addItems(list(ENGINES))
        self.engine.setCurrentText("haproxy")
        self.listen = QLineEdit(base.listen)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setAccessibleName("Exported config")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.save = QPushButton("Save…")
        top = QHBoxLayout()
        top.addWidget(QLabel("Engine"))
        top.addWidget(self.engine)
        top.addWidget(QLabel("Listen on"))
        top.addWidget(self.listen, 1)
        top.addWidget(self.save)

        settings = app_settings()
        self.hap_config = QLineEdit(str(settings.value(DEPLOY_KEYS["config"], "")))
        self.hap_config.setPlaceholderText("/etc/haproxy/haproxy.cfg")
        self.hap_master = QLineEdit(str(settings.value(DEPLOY_KEYS["master"], "")))
        self.hap_master.setPlaceholderText("master CLI socket (haproxy -W -S …)")
        self.hap_stats = QLineEdit(str(settings.value(DEPLOY_KEYS["stats"], "")))
        self.hap_stats.setPlaceholderText("optional: stats socket, to confirm the backend runs")
        self.deploy_button = QPushButton("Deploy to HAProxy")
        box = QGroupBox("Deploy to an HAProxy instance (managed section, haproxy -c, master-worker reload)")
        form = QFormLayout(box)
        form.addRow("config file", self.hap_config)
        form.addRow("master socket", self.hap_master)
        form.addRow("stats socket", self.hap_stats)
        form.addRow(self.deploy_button)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.preview, 1)
        lay.addWidget(box)
        lay.addWidget(self.message)
        self.engine.currentTextChanged.connect(self.on_engine_currentTextChanged)
        self.listen.textChanged.connect(self.on_listen_textChanged)
        self.save.clicked.connect(self.on_save_clicked)
        self.deploy_button.clicked.connect(self.on_deploy_button_clicked)
        self.refresh()

    # the text ------------------------------------------------------------------------------------
    def settings(self) -> Settings | None:
        """The listener's settings with the typed listen address (None, said inline, when it is not one)."""
        listen = self.listen.text().strip()
        try:
            parse_endpoint(listen)
        except ValueError as exc:
            self.say(f"Listen on: {exc}", error=True)
            return None
        return settings_for(self.config, listen=listen)

    def refresh(self) -> None:
        s = self.settings()
        self.save.setEnabled(s is not None)
        self.deploy_button.setEnabled(s is not None and self.engine.currentText() == "haproxy")
        if s is None:
            return
        self.preview.setPlainText(render(self.engine.currentText(), self.config, s))
        self.say("")

    def text(self) -> str:
        return self.preview.toPlainText()

    def say(self, text: str, *, error: bool = False) -> None:
        self.message.setObjectName("fieldError" if error else "")
        self.message.setStyleSheet("")  # re-polish: the theme styles #fieldError
        self.message.setText(text)
        if error:
            self.failed.emit(text)

    def on_engine_currentTextChanged(self, _text: str) -> None:
        self.refresh()

    def on_listen_textChanged(self, _text: str) -> None:
        self.refresh()

    # saving and deploying ------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def on_save_clicked(self) -> None:
        suffix = "conf" if self.engine.currentText() == "nginx" else "cfg"
        path, _ = QFileDialog.getSaveFileName(self, "Save the exported config",
                                              f"{self.engine.currentText()}.{suffix}")
        if path:
            self._spawn(self.save_to(Path(path)))

    async def save_to(self, path: Path) -> bool:
        try:
            await asyncio.to_thread(write_atomically, path, self.text())
        except OSError as exc:
            self.say(f"Cannot save {path}: {exc.strerror or exc}", error=True)
            return False
        self.say(f"Saved {path}.")
        self.saved.emit(str(path))
        return True

    def on_deploy_button_clicked(self) -> None:
        self._spawn(self.deploy_now())

    def instance(self) -> Instance | None:
        config = self.hap_config.text().strip()
        if not config:
            self.say("Deploy: the instance's config file is needed.", error=True)
            return None
        s = self.settings()
        if s is None:
            return None
        return Instance(config=Path(config).expanduser(), master=self.hap_master.text().strip() or None,
                        stats=self.hap_stats.text().strip() or None, listen=s.listen)

    async def deploy_now(self) -> list[Result] | None:
        inst = self.instance()
        if inst is None:
            return None
        settings = app_settings()
        for key, edit in (("config", self.hap_config), ("master", self.hap_master), ("stats", self.hap_stats)):
            settings.setValue(DEPLOY_KEYS[key], edit.text().strip())
        self.deploy_button.setEnabled(False)
        try:
            results = await deploy(self.config, [inst], origin=self.origin)
        except DeployError as exc:
            self.say(f"Not deployed: {exc}", error=True)
            return None
        finally:
            self.deploy_button.setEnabled(True)
        r = results[0]
        how = f"new workers {', '.join(map(str, r.workers))}" if r.workers else "; ".join(r.notes) or "reloaded"
        self.say(f"Deployed {self.config.connector_id} version {r.version} to {inst.title} ({how}).")
        self.deployed.emit(results)
        return results

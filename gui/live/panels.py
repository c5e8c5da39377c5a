"""The live view's control panels: run locally, demo members, traffic, and the attach dialog.

Their status texts are :class:`~balancedesk.gui.elided.ElidedLabel`s: a long message is cut to the
room there is (whole on hover) and never widens the window; demo members are named and badged as
everywhere else (:class:`~balancedesk.gui.live.names.MemberNames`), their IDs on hover.
"""

from __future__ import annotations

from pathlib import Path

from balancedesk.core.haproxy.runtime import haproxy_problem
from balancedesk.core.model import DEFAULT_AFFINITY_HEADER
from balancedesk.gui.elided import ElidedLabel
from balancedesk.gui.live.admin import admin_url
from balancedesk.gui.live.demos import DemoMembers
from balancedesk.gui.live.names import MemberNames
from balancedesk.gui.settings import app_settings
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QWidget,
)

ATTACH_KEYS = {"url": "live/attach/url", "token_file": "live/attach/tokenFile", "ca_file": "live/attach/caFile",
               "haproxy_socket": "live/attach/haproxySocket", "haproxy_backend": "live/attach/haproxyBackend"}


class RunPanel(QGroupBox):
    """Run the balancer locally: port, L4/L7, affinity header; Run/Stop; Attach…. No signals of its own:
    the window connects the buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Balancer", parent)
        lay = QHBoxLayout(self)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any")
        self.port.setToolTip("port the balancer listens on (127.0.0.1); 'any' picks a free one")
        self.mode = QComboBox()
        self.mode.addItem("L4 (TCP)", "tcp")
        self.mode.addItem("L7 (HTTP)", "http")
        self.affinity = QCheckBox("affinity header")
        self.header = QLineEdit(DEFAULT_AFFINITY_HEADER)
        self.header.setMaximumWidth(170)
        self.run = QPushButton("Run locally")
        self.stop = QPushButton("Stop")
        self.stop.setEnabled(False)
        self.attach = QPushButton("Attach…")
        self.status = ElidedLabel("not running")
        self.status.setObjectName("balancerStatus")
        for w in (QLabel("port"), self.port, self.mode, self.affinity, self.header, self.run, self.stop,
                  self.attach):
            lay.addWidget(w)
        lay.addWidget(self.status, 1)
        self.affinity.toggled.connect(self.header.setEnabled)
        self.header.setEnabled(False)

    def mode_value(self) -> str:
        return str(self.mode.currentData())

    def affinity_header(self) -> str | None:
        return self.header.text().strip() or None if self.affinity.isChecked() else None


class DemoPanel(QGroupBox):
    """One row per local member: its badge and label, its demo's status, and Start / Stop / Slow / Refuse /
    OK buttons."""

    def __init__(self, demos: DemoMembers, names: MemberNames | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Demo members (on this machine)", parent)
        self.demos = demos
        self.names = names or MemberNames()
        grid = QGridLayout(self)
        grid.setColumnStretch(1, 1)
        self.rows: dict[str, tuple[QLabel, dict[str, QAbstractButton]]] = {}
        self._chips: dict[str, QLabel] = {}
        if not demos.slots:
            grid.addWidget(QLabel("no member endpoint is on this machine"), 0, 0, 1, 2)
        for r, mid in enumerate(sorted(demos.slots, key=self.names.position)):
            chip = QLabel()
            grid.addWidget(chip, r, 0)
            self._chips[mid] = chip
            label = ElidedLabel()
            grid.addWidget(label, r, 1)
            buttons: dict[str, QAbstractButton] = {}
            for c, action in enumerate(("start", "stop", "slow", "refuse", "ok"), start=2):
                b = QToolButton()  # as wide as its word (a push button is ~80 px at least): the status gets the room
                b.setText(action.capitalize())
                b.setObjectName(f"demo_{action}_{mid}")
                grid.addWidget(b, r, c)
                buttons[action] = b
            self.rows[mid] = (label, buttons)
            self.refresh(mid)
        demos.changed.connect(self.refresh)

    def set_names(self, names: MemberNames) -> None:
        if names != self.names:
            self.names = names
            for mid in self.rows:
                self.refresh(mid)

    def refresh(self, member_id: str) -> None:
        if member_id not in self.rows:
            return
        slot = self.demos.slots[member_id]
        label, buttons = self.rows[member_id]
        words = {"free": "nothing listens — start a demo",
                 "busy": "in use by another program", "other": "another window's demo",
                 "unknown": "checking…", "starting": "starting…", "stopped": "stopped",
                 "ok": "demo running", "slow": "demo running, slow", "refuse": "demo refusing connects"}
        name = self.names.name(member_id)
        label.setText(f"{name}: {words.get(slot.status, slot.status)} · {slot.endpoint}")
        elsewhere = slot.status in ("busy", "other")  # Start then listens on a free port (demos.py's rules)
        tip = self.names.tooltip(member_id, slot.endpoint)
        label.setToolTip(tip + ("\nsomething listens there: Start runs the demo on a free port, and this window's "
                                "balancer uses it" if elsewhere else ""))
        chip = self._chips[member_id]
        chip.setPixmap(self.names.chip(member_id, dpr=self.devicePixelRatioF()))
        chip.setToolTip(label.toolTip())
        for action, b in buttons.items():
            b.setToolTip(f"{action} the demo member for {name} ({member_id}) at {slot.endpoint}")
        ours = slot.ours
        buttons["start"].setEnabled(not ours and slot.status not in ("starting", "unknown"))
        for action in ("stop", "slow", "refuse", "ok"):
            buttons[action].setEnabled(ours and slot.control is not None)


class TrafficPanel(QGroupBox):
    """The built-in generator: rate, affinity keys, Start/Stop, and its counters."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Traffic", parent)
        lay = QHBoxLayout(self)
        self.rate = QSpinBox()
        self.rate.setRange(1, 20000)
        self.rate.setValue(20)
        self.rate.setSuffix(" /s")
        self.keys = QSpinBox()
        self.keys.setRange(0, 10000)
        self.keys.setValue(0)
        self.keys.setSpecialValueText("no keys")
        self.keys.setToolTip("L7 with an affinity header: number of distinct affinity keys to send")
        self.start = QPushButton("Start traffic")
        self.stop = QPushButton("Stop traffic")
        self.stop.setEnabled(False)
        self.stats = ElidedLabel("idle — or point real clients at the balancer port")
        for w in (QLabel("rate"), self.rate, QLabel("affinity keys"), self.keys, self.start, self.stop):
            lay.addWidget(w)
        lay.addWidget(self.stats, 1)


class AttachDialog(QDialog):
    """Attach to a balancer running elsewhere: its admin URL and token (or a token file); for an https URL,
    optionally the CA bundle that signed its certificate. Or to an HAProxy: its stats socket and a backend.
    A URL (or socket) that cannot be one is refused here, inline, and the dialog stays open."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Attach to a balancer")
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("x" * 64))  # URLs and paths fit, unscrolled
        form = QFormLayout(self)
        # the last attach's URL, token file and CA file are offered again (never the token itself)
        settings = app_settings()
        self.url = QLineEdit(str(settings.value(ATTACH_KEYS["url"], "http://127.0.0.1:9901")))
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_file = QLineEdit(str(settings.value(ATTACH_KEYS["token_file"], "")))
        self.token_file.setPlaceholderText("or a file holding the token")
        self.ca_file = QLineEdit(str(settings.value(ATTACH_KEYS["ca_file"], "")))
        self.ca_file.setPlaceholderText("https only: CA bundle file (empty: the system's CAs)")
        self.error = QLabel("")
        self.error.setObjectName("fieldError")  # the theme's inline error style
        self.error.setWordWrap(True)
        self.error.hide()
        # or an HAProxy: its stats socket (path or host:port) and the backend to watch (core.haproxy.engine)
        self.haproxy_socket = QLineEdit(str(settings.value(ATTACH_KEYS["haproxy_socket"], "")))
        self.haproxy_socket.setPlaceholderText("HAProxy: stats socket path or host:port (instead of the URL)")
        self.haproxy_backend = QLineEdit(str(settings.value(ATTACH_KEYS["haproxy_backend"], "")))
        self.haproxy_backend.setPlaceholderText("HAProxy: the backend, e.g. bd_<group ID>")
        form.addRow("admin URL", self.url)
        form.addRow("token", self.token)
        form.addRow("token file", self.token_file)
        form.addRow("CA file", self.ca_file)
        form.addRow("HAProxy stats socket", self.haproxy_socket)
        form.addRow("HAProxy backend", self.haproxy_backend)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def haproxy(self) -> tuple[str, str] | None:
        """The HAProxy stats socket and backend when one was given (then the URL is not used)."""
        sock = self.haproxy_socket.text().strip()
        return (sock, self.haproxy_backend.text().strip()) if sock else None

    def accept(self) -> None:
        hp = self.haproxy()
        problem = haproxy_problem(*hp) if hp is not None else self._url_problem()
        if problem:
            self.error.setText(problem)
            self.error.show()
            return
        settings = app_settings()
        for key, edit in (("url", self.url), ("token_file", self.token_file), ("ca_file", self.ca_file),
                          ("haproxy_socket", self.haproxy_socket), ("haproxy_backend", self.haproxy_backend)):
            settings.setValue(ATTACH_KEYS[key], edit.text().strip())
        super().accept()

    def _url_problem(self) -> str:
        problem = ""
        try:
            url = admin_url(self.url.text())  # the same check AdminClient makes
        except ValueError as exc:
            problem = str(exc)
        else:
            if self.ca_file.text().strip() and url.scheme != "https":
                problem = "A CA file is only used with an https:// admin URL."
        return problem

    def values(self) -> tuple[str, str, Path | None, str | None]:
        """URL, token, the token file to read when no token was typed (read off the UI thread), CA file."""
        file = self.token_file.text().strip()
        ca = self.ca_file.text().strip()
        return (self.url.text().strip(), self.token.text().strip(), Path(file).expanduser() if file else None,
                str(Path(ca).expanduser()) if ca else None)

"""The app's own settings between runs (window geometry, the attach dialog's last values): one QSettings
for the organisation and application "balancedesk", in the platform's usual place."""

from __future__ import annotations

from PySide6.QtCore import QSettings


def app_settings() -> QSettings:
    return QSettings("balancedesk", "balancedesk")

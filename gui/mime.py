"""The drag format between the browser and a group's members table: a JSON list of connector IDs.

Apart from :mod:`balancedesk.gui.members_model` so that the browser (on the startup path) needs neither the
editor's models nor :mod:`balancedesk.core.model`. Imports Qt and the standard library only.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QByteArray, QMimeData

CONNECTOR_MIME = "application/x-balancedesk-connector-ids"


def connector_ids(data: QMimeData) -> list[str]:
    try:
        raw = json.loads(bytes(data.data(CONNECTOR_MIME).data()).decode())
    except (ValueError, UnicodeDecodeError):
        return []
    return [str(x) for x in raw] if isinstance(raw, list) else []


def connector_mime(ids: list[str]) -> QMimeData:
    mime = QMimeData()
    mime.setData(CONNECTOR_MIME, QByteArray(json.dumps(ids).encode()))
    mime.setText("\n".join(ids))
    return mime

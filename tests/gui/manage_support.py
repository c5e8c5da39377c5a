"""Helpers of the management-view tests: the API seen from outside the GUI (httpx against the same real
server), a count of the requests a GUI client sends, and a Manage window on a real client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from balancedesk.core.client import MgmtClient
from balancedesk.core.mgmt import idempotency
from balancedesk.gui.manage.window import ManageWindow

LONG = 20_000


@dataclass
class Sent:
    """Every request a client's httpx transport sends (method and path), recorded by an httpx event hook."""

    requests: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, client: MgmtClient) -> MgmtClient:
        async def record(request: httpx.Request) -> None:
            self.requests.append((request.method, request.url.path))

        client._http.event_hooks["request"].append(record)
        return client

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]


class ApiClient(httpx.Client):
    """A test's own plain client of the API, writing as the app's client does (core/client.py): every write
    carries an Idempotency-Key and is sent again after a 502/503/504 — in the installation mode the server a
    POST reached may have just been killed (the front balancer does not resend a POST)."""

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        headers = dict(kwargs.pop("headers", None) or {})
        if method.upper() in idempotency.UNSAFE_METHODS:
            headers.setdefault(idempotency.HEADER, uuid.uuid4().hex)
        for attempt in range(idempotency.RETRY_ATTEMPTS):
            response = super().request(method, url, headers=headers, **kwargs)
            if response.status_code not in idempotency.RETRY_STATUSES or attempt == idempotency.RETRY_ATTEMPTS - 1:
                return response
            time.sleep(idempotency.RETRY_PAUSES_S[min(attempt, len(idempotency.RETRY_PAUSES_S) - 1)])  # backoff
        raise AssertionError("unreachable: the last attempt returns")


def api(url: str, user: str, password: str) -> httpx.Client:
    return ApiClient(base_url=url, auth=(user, password), timeout=30.0)


def manage(qtbot: Any, client: MgmtClient, *, user: str, is_admin: bool, tab: str = "connectors") -> ManageWindow:
    """A shown Manage window on ``tab``, its first read done."""
    win = ManageWindow(client=client, user=user, is_admin=is_admin)
    qtbot.addWidget(win)
    view = win.users if tab == "users" else win.connectors
    if is_admin or tab == "connectors":
        with qtbot.waitSignal(view.refreshed, timeout=LONG):
            win.show_tab(tab)
            win.show()
    else:
        win.show_tab(tab)
        win.show()
    return win


def confirm_with(answer: bool, asked: list[str]) -> Callable[[str, str], Any]:
    async def confirm(label: str, endpoint: str) -> bool:
        asked.append(label)
        return answer

    return confirm

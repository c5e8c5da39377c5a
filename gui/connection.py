"""The main window's connection to a management server: profiles, the embedded server, the client, the listing.

:class:`ConnectionMixin` holds what :class:`~balancedesk.gui.main_window.MainWindow` does to connect — pick a
profile, start "This computer"'s embedded server, log in (asking for a password or a certificate when needed),
list the connectors into the catalog — and :func:`explain`, which turns any failure into a status-bar sentence.

Startup: the network and model stack (httpx, pydantic through :mod:`balancedesk.core.client`) is the slow
part of importing the app, so nothing here imports it at module level: :mod:`balancedesk.gui.preload` imports
it on a worker thread while Qt builds and shows the window, and :meth:`ConnectionMixin.connect_profile` awaits
that instead of importing on the UI thread. Imports: Qt, the standard library and light GUI modules at import
time; ``balancedesk.core.client``/``core.model`` and :mod:`~balancedesk.gui.tls` when used.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from balancedesk.gui.catalog import Catalog
from balancedesk.gui.local_server import ADMIN_PASSWORD_FILE, LocalServer, LocalServerError, admin_password
from balancedesk.gui.preload import client_stack
from balancedesk.gui.profiles import Profile, ProfileStore, remember_password, stored_password
from PySide6.QtCore import QObject, SignalInstance
from PySide6.QtWidgets import QComboBox, QTreeView

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient, Whoami
    from balancedesk.gui.browser_model import BrowserModel
    from balancedesk.gui.document import GroupDocument
    from balancedesk.gui.prompts import Prompter

T = TypeVar("T")
BENCH_ENV = "BALANCEDESK_BENCH_EXIT"
def explain(exc: BaseException) -> str:
    """A failure as a sentence for the status bar (never a traceback)."""
    from balancedesk.core.client import ApiError, ApiUnavailable

    if isinstance(exc, ApiError):
        if exc.status == 401:
            return "The server did not accept the user name or password. Reconnect with the right password."
        if exc.status == 403:
            return f"Not allowed: {exc.message}"
        if exc.status == 404:
            return f"Not found: {exc.message} It may have been deleted; reload the list."
        message = str(exc.message)
        return message if message.endswith(".") else message + "."
    if isinstance(exc, (ApiUnavailable, LocalServerError)):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__}: {exc}). The details are in the log."


def is_expected(exc: BaseException) -> bool:
    """A failure of the server, the network or the user's input (not a bug: no traceback in the log)."""
    from balancedesk.core.client import ApiError, ApiUnavailable
    from balancedesk.gui.tls import CertificateProblem

    return isinstance(exc, (ApiError, ApiUnavailable, LocalServerError, CertificateProblem))


class ConnectionMixin:
    """Connecting and listing, mixed into the main window (which provides the widgets and signals below)."""

    connected: SignalInstance
    catalog_loaded: SignalInstance
    prompter: Prompter
    profile_store: ProfileStore
    profile_combo: QComboBox
    browser_model: BrowserModel
    browser: QTreeView
    local_data: Path
    local_server: LocalServer | None
    client: MgmtClient | None
    whoami: Whoami | None
    profile: Profile | None
    catalog: Catalog
    doc: GroupDocument | None

    if TYPE_CHECKING:  # the main window's own

        def spawn(self, coro: Awaitable[T], what: str) -> asyncio.Task[T]: ...
        async def confirm_leave(self) -> bool: ...
        def show_message(self, text: str, *, error: bool = False) -> None: ...
        def _update_actions(self) -> None: ...
        def set_document(self, doc: GroupDocument | None) -> None: ...

    def _fill_profiles(self, profiles: list[Profile]) -> None:
        for p in profiles:
            self.profile_combo.addItem(p.name, p)
        self.profile_combo.addItem("New connection…", None)

    def launch_local_server(self) -> None:
        """Start the embedded server's process now (at app start, so it starts while the window is built)."""
        self._local_server().launch()

    def _local_server(self) -> LocalServer:
        if self.local_server is None:
            self.local_server = LocalServer(self.local_data, cast(QObject, self))  # the window is a QObject
        return self.local_server

    def on_profile_combo_activated(self, index: int) -> None:
        self.spawn(self.connect_chosen(), "Connecting…")

    def on_connect_action_triggered(self) -> None:
        self.spawn(self.connect_chosen(), "Connecting…")

    async def connect_chosen(self) -> None:
        profile = self.profile_combo.currentData()
        if not await self.confirm_leave():
            return
        if profile is None:
            answer = await self.prompter.login(url="https://", user="admin")
            if answer is None:
                return
            url, user, password = answer
            profile = Profile(name=f"{user}@{url.split('://')[-1]}", url=url, user=user)
            await self.connect_profile(profile, password=password, remember=True)
            self.profile_combo.blockSignals(True)
            self.profile_combo.clear()
            self._fill_profiles(self.profile_store.upsert(profile))
            self.profile_combo.setCurrentIndex(self.profile_combo.findText(profile.name))
            self.profile_combo.blockSignals(False)
            return
        await self.connect_profile(profile)

    async def connect_profile(self, profile: Profile, *, password: str | None = None, remember: bool = False) -> None:
        """Connect (starting the embedded server for the local profile) and list the connectors.

        What belonged to the previous server (the open group, the listing) is put away first, so a failed
        login shows nothing of it and nothing can be saved to the wrong server. Callers that let the user
        pick a server ask about unsaved changes first (``confirm_leave``)."""
        await self.disconnect_client()
        self.forget_server()
        if profile.local:
            server = self._local_server()
            self.show_message("Starting the local management server…")
            url = await server.start()
            password = admin_password(self.local_data)
            if password is None:
                raise LocalServerError(
                    f"The local server's admin password is not in {self.local_data / 'admin-password.txt'}; "
                    "set BALANCEDESK_ADMIN_PASSWORD or reset it with `balancedesk users`."
                )
            profile = Profile(name=profile.name, url=url, user="admin", local=True)
            generated = server.generated_password()
            if generated is not None and not server.password_shown:
                server.password_shown = True
                await self.prompter.first_password(generated, str(self.local_data / ADMIN_PASSWORD_FILE))
        else:
            password = password or stored_password(profile)
            if password is None:
                answer = await self.prompter.login(url=profile.url, user=profile.user,
                                                   message="No password is stored for this profile.")
                if answer is None:
                    return
                _, _, password = answer
                remember = True
        await client_stack()  # imported on the preload thread: instant below
        from balancedesk.core.client import ApiUnavailable, MgmtClient

        client = MgmtClient(profile.url, profile.user, password, verify=profile.verify, timeout=10.0)
        try:
            who = await client.whoami()
        except ApiUnavailable as exc:
            await client.aclose()
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) and profile.verify is True:
                accepted = await self.trust_certificate(profile)
                if accepted is not None:
                    await self.connect_profile(accepted, password=password, remember=remember)
                    return
            raise
        except BaseException:
            await client.aclose()
            raise
        if remember and not profile.local and not remember_password(profile, password):
            self.show_message("No keyring on this computer: the password will be asked each time.")
        self.client, self.whoami, self.profile = client, who, profile
        self._show_profile(profile)
        self.connected.emit(profile.url)
        await self.refresh_catalog()

    async def trust_certificate(self, profile: Profile) -> Profile | None:
        from balancedesk.gui.tls import fetch_certificate, save_certificate

        cert = await fetch_certificate(profile.url)
        if not await self.prompter.accept_certificate(profile.url, cert.fingerprint, cert.subject):
            self.show_message("Not connected: the server's certificate was not accepted.", error=True)
            return None
        path = save_certificate(cert)
        trusted = Profile(name=profile.name, url=profile.url, user=profile.user, verify=str(path))
        self.profile_store.upsert(trusted)
        return trusted

    async def disconnect_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def refresh_catalog(self) -> Catalog:
        from balancedesk.core.model import Connector, ConnectorGroup

        client = self._client()
        is_admin = self.whoami is not None and self.whoami.is_admin
        if is_admin:  # both listings at once: the admin one adds other owners' connectors and group use
            listed, registered = await asyncio.gather(
                client.list_connectors(details=True, accessible=True), client.list_registered()
            )
        else:
            listed, registered = await client.list_connectors(details=True, accessible=True), []
        connectors = list(listed)
        used_by: dict[str, str] = {}
        seen = {c.connector_id for c in connectors}
        for r in registered:
            if r.group_id:
                used_by[r.connector_id] = r.group_id
            if r.connector_id in seen:
                continue
            group = ConnectorGroup(members=()) if r.is_group else None
            connectors.append(Connector(connector_id=r.connector_id, owner=r.owner, label=r.label,
                                        endpoint=r.endpoint, connector_group=group))
        self.catalog = Catalog.from_connectors(connectors, used_by=used_by)
        self.browser_model.set_catalog(self.catalog)
        self.browser.expandAll()
        if self.doc is not None:
            self.doc.catalog = self.catalog
            self.doc.members_model.refresh()
        groups = len(self.catalog.groups)
        plain = len(self.catalog.plain)
        self.show_message(f"{groups} group{'' if groups == 1 else 's'}, {plain} connector{'' if plain == 1 else 's'} "
                          f"on {self._client().base_url}.")
        self._update_actions()
        self.catalog_loaded.emit(groups)
        if os.environ.get(BENCH_ENV):
            print(f"balancedesk-gui: groups listed {groups}", flush=True)
        return self.catalog

    def forget_server(self) -> None:
        """Close the open group and empty the listing: they belong to the server being left."""
        self.set_document(None)
        self.profile, self.whoami = None, None
        self.catalog = Catalog()
        self.browser_model.set_catalog(self.catalog)
        self._update_actions()

    def _show_profile(self, profile: Profile) -> None:
        """The profile box names the server actually connected (adding a ``--url`` one if it is not listed)."""
        combo = self.profile_combo
        for i in range(combo.count()):
            known = combo.itemData(i)
            if known is not None and (known.name == profile.name or (profile.local and known.local)):
                index = i
                break
        else:
            index = max(0, combo.count() - 1)  # before "New connection…"
            combo.insertItem(index, profile.name, profile)
        combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)

    def _server_url(self) -> str:
        return self.profile.url if self.profile is not None else ""

    def _client(self) -> MgmtClient:
        if self.client is None:
            from balancedesk.core.client import ApiUnavailable

            raise ApiUnavailable("Not connected: choose a server and press Connect.")
        return self.client

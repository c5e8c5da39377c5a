"""The main window's connection to a management server: profiles, the embedded server, the client, the listing.

:class:`ConnectionController` is what :class:`~balancedesk.gui.main_window.MainWindow` is given to connect —
pick a profile, start "This computer"'s embedded server, log in (asking for a password or a certificate when
needed), list the connectors into the catalog — and :func:`explain` turns any failure into a status-bar
sentence. The controller owns the connection's state (profile, client, whoami, catalog, the embedded server);
the window learns of changes from its signals and never sets that state itself.

Contract: one server at a time. Every connect first emits ``server_left`` (what belonged to the previous
server — the open group, the listing — is put away, so a failed login shows nothing of it and nothing can be
saved to the wrong server); callers that let the user pick a server ask about unsaved changes before calling.

Startup: the network and model stack (httpx, pydantic through :mod:`balancedesk.core.client`) is the slow
part of importing the app, so nothing here imports it at module level: :mod:`balancedesk.gui.preload` imports
it on a worker thread while Qt builds and shows the window, and :meth:`ConnectionController.connect_profile` awaits
that instead of importing on the UI thread. Imports: Qt, the standard library and light GUI modules at import
time; ``balancedesk.core.client``/``core.model`` and :mod:`~balancedesk.gui.tls` when used.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from balancedesk.gui.catalog import Catalog
from balancedesk.gui.local_server import ADMIN_PASSWORD_FILE, LocalServer, LocalServerError, admin_password
from balancedesk.gui.preload import client_stack
from balancedesk.gui.profiles import Profile, ProfileStore, remember_password, stored_password
from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient, Whoami
    from balancedesk.gui.host import WindowHost

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


class ConnectionController(QObject):
    """The connection to one management server at a time, and its listing.

    Owns: the profile store, the embedded server ("This computer"), the client, who is logged in, the
    connected profile and the catalog (the listing). Asks the user (password, certificate, the first
    admin password) through ``host.prompter``; says what it is doing through ``host.show_message``.

    Signals:
        connected(str): a profile is connected (``profile`` is set); the argument is the server URL.
        server_left(): what belonged to the previous server must go (the open group); emitted before a
            connect, whether or not it succeeds.
        catalog_changed(object): the catalog is a new :class:`~balancedesk.gui.catalog.Catalog` (a listing,
            a save, or an empty one when the server is left).
        catalog_loaded(int): a fresh listing is shown; the argument is the number of groups.
        profiles_changed(list): the saved profiles changed (a new connection was added); the argument is
            the list of :class:`~balancedesk.gui.profiles.Profile`.
    """

    connected = Signal(str)
    server_left = Signal()
    catalog_changed = Signal(object)
    catalog_loaded = Signal(int)
    profiles_changed = Signal(list)

    def __init__(self, host: WindowHost, *, profiles: ProfileStore, local_data: Path,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._host = host
        self.profile_store = profiles
        self.local_data = local_data
        self.local_server: LocalServer | None = None
        self.client: MgmtClient | None = None
        self.whoami: Whoami | None = None
        self.profile: Profile | None = None
        self.catalog = Catalog()

    # what the window reads -----------------------------------------------------------------------
    def profiles(self) -> list[Profile]:
        return self.profile_store.load()

    @property
    def is_admin(self) -> bool:
        return self.whoami is not None and self.whoami.is_admin

    @property
    def user(self) -> str:
        """Who is logged in ("admin" when nobody is: the owner a new group starts with)."""
        return self.whoami.user if self.whoami is not None else "admin"

    def server_url(self) -> str:
        return self.profile.url if self.profile is not None else ""

    def require_client(self) -> MgmtClient:
        """The connected client, or :class:`~balancedesk.core.client.ApiUnavailable` saying how to connect."""
        if self.client is None:
            from balancedesk.core.client import ApiUnavailable

            raise ApiUnavailable("Not connected: choose a server and press Connect.")
        return self.client

    def set_catalog(self, catalog: Catalog) -> None:
        """Replace the listing (e.g. with a saved group in it) and tell the views."""
        self.catalog = catalog
        self.catalog_changed.emit(catalog)

    # the embedded server --------------------------------------------------------------------------
    def launch_local_server(self) -> None:
        """Start the embedded server's process now (at app start, so it starts while the window is built)."""
        self._local_server().launch()

    def _local_server(self) -> LocalServer:
        if self.local_server is None:
            self.local_server = LocalServer(self.local_data, self)
        return self.local_server

    # connecting -----------------------------------------------------------------------------------
    async def connect_chosen(self, profile: Profile | None) -> None:
        """Connect the profile chosen in the window (None: "New connection…", asked for first)."""
        if profile is not None:
            await self.connect_profile(profile)
            return
        answer = await self._host.prompter.login(url="https://", user="admin")
        if answer is None:
            return
        url, user, password = answer
        profile = Profile(name=f"{user}@{url.split('://')[-1]}", url=url, user=user)
        await self.connect_profile(profile, password=password, remember=True)
        self.profiles_changed.emit(self.profile_store.upsert(profile))

    async def connect_profile(self, profile: Profile, *, password: str | None = None, remember: bool = False) -> None:
        """Connect (starting the embedded server for the local profile) and list the connectors."""
        await self.disconnect_client()
        self.forget_server()
        if profile.local:
            server = self._local_server()
            self._host.show_message("Starting the local management server…")
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
                await self._host.prompter.first_password(generated, str(self.local_data / ADMIN_PASSWORD_FILE))
        else:
            password = password or stored_password(profile)
            if password is None:
                answer = await self._host.prompter.login(url=profile.url, user=profile.user,
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
            self._host.show_message("No keyring on this computer: the password will be asked each time.")
        self.client, self.whoami, self.profile = client, who, profile
        self.connected.emit(profile.url)
        await self.refresh_catalog()

    async def trust_certificate(self, profile: Profile) -> Profile | None:
        from balancedesk.gui.tls import fetch_certificate, save_certificate

        cert = await fetch_certificate(profile.url)
        if not await self._host.prompter.accept_certificate(profile.url, cert.fingerprint, cert.subject):
            self._host.show_message("Not connected: the server's certificate was not accepted.", error=True)
            return None
        path = save_certificate(cert)
        trusted = Profile(name=profile.name, url=profile.url, user=profile.user, verify=str(path))
        self.profile_store.upsert(trusted)
        return trusted

    async def disconnect_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    def forget_server(self) -> None:
        """Put away what belongs to the server being left: the open group (``server_left``), the listing."""
        self.server_left.emit()
        self.profile, self.whoami = None, None
        self.set_catalog(Catalog())

    async def shutdown(self) -> None:
        """Close the client, then stop the embedded server (SIGTERM, waited for)."""
        await self.disconnect_client()
        server, self.local_server = self.local_server, None
        if server is not None and shiboken6.isValid(server):
            server.stop()

    # listing ---------------------------------------------------------------------------------------
    async def refresh_catalog(self) -> Catalog:
        from balancedesk.core.model import Connector, ConnectorGroup

        client = self.require_client()
        if self.is_admin:  # both listings at once: the admin one adds other owners' connectors and group use
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
        self.set_catalog(Catalog.from_connectors(connectors, used_by=used_by))
        groups = len(self.catalog.groups)
        plain = len(self.catalog.plain)
        self._host.show_message(f"{groups} group{'' if groups == 1 else 's'}, "
                                f"{plain} connector{'' if plain == 1 else 's'} on {client.base_url}.")
        self.catalog_loaded.emit(groups)
        if os.environ.get(BENCH_ENV):
            print(f"balancedesk-gui: groups listed {groups}", flush=True)
        return self.catalog

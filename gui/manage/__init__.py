"""Management in the GUI: register, edit and delete connectors; users and their roles (Administrators).

Map (imports ``balancedesk.core`` and Qt; nothing in core imports this; importing this package is light —
Qt only — so the main window can offer its menu without loading the client stack):

* ``forms``      — pure: the rows the views list and the checks a form makes before it sends anything, with
  the management API's own rules and wording (:func:`balancedesk.core.model.plain_connector_problems`,
  :func:`~balancedesk.core.model.user_name_problem`, ``PASSWORD_MIN``, ``ROLES``). No Qt.
* ``models``     — Qt item models over plain lists: connectors (with the group each belongs to), users.
* ``fields``     — :class:`~balancedesk.gui.manage.fields.FieldErrors`: a message under each form field, for
  the form's own checks and the API's field-level refusals alike.
* ``view``       — :class:`~balancedesk.gui.manage.view.ManageView`, what both views share: the calls they start,
  the list and its chosen row, the status line, the form's own checks and how a refusal is shown.
* ``connectors`` — :class:`~balancedesk.gui.manage.connectors.ConnectorsView`: list, register, edit (ETag /
  If-Match: a concurrent change says so and offers Reload), delete (confirmed).
* ``users``      — :class:`~balancedesk.gui.manage.users.UsersView`: list, add, disable/enable, reset a password,
  change a role; a password made here is shown once (``shown``:
  :class:`~balancedesk.gui.manage.shown.PasswordShownDialog`, a :class:`~balancedesk.gui.shown_once.ShownOnceDialog`).
* ``window``     — :class:`~balancedesk.gui.manage.window.ManageWindow`, the two views as tabs, one per server;
  :func:`install_menu` adds the main window's Manage menu.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow, QMenuBar

CONNECTORS = "connectors"
USERS = "users"


def install_menu(window: QMainWindow, menu_bar: QMenuBar) -> tuple[QAction, QAction]:
    """Add “Manage › Connectors… / Users and roles…” to the main window; each opens (or raises) that
    server's :class:`~balancedesk.gui.manage.window.ManageWindow` on its tab. Returns the two actions."""
    menu = menu_bar.addMenu("&Manage")
    actions = []
    entries = (("&Connectors…", CONNECTORS, "Ctrl+Shift+K"), ("&Users and roles…", USERS, "Ctrl+Shift+U"))
    for text, tab, shortcut in entries:
        action = QAction(text, window)
        action.setShortcut(shortcut)
        action.setToolTip("Register, edit and delete connectors" if tab == CONNECTORS
                          else "Add users, disable them, reset passwords, change roles (Administrators)")
        action.triggered.connect(lambda _checked=False, t=tab: open_manage(window, t))
        menu.addAction(action)
        actions.append(action)
    return actions[0], actions[1]


def open_manage(window: Any, tab: str = CONNECTORS) -> Any:
    """Open the Manage window of ``window``'s connected server on ``tab`` (None and a status sentence if the
    main window is not connected). ``window`` is the main window: its ``client`` and ``whoami`` are read."""
    from balancedesk.gui.manage.window import ManageWindow

    return ManageWindow.open_for(window, tab)

"""Balance Desk's desktop app (PySide6 only): widgets, Qt item models, view-models, undo commands.

``app`` is the one composition root. Imports ``balancedesk.core``; core never imports this package.
"""

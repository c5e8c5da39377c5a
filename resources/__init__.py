"""Icons, the .desktop file, styles and demo data, installed as ``balancedesk.resources``."""

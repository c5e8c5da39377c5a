"""The export tests use tests/proxy's helpers (a real management server: ``fleetkit.Mgmt``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))

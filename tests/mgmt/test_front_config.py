"""`balancedesk front-config` (core/mgmt/installation.py): the management servers as a balancer group that the
balancer accepts as it is, with a health check on the path the servers answer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from balancedesk.core.mgmt.installation import HEALTH_PATH, front_config
from balancedesk.core.proxy.config import parse_config_bytes

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]


@pytest.mark.parametrize("failover", [False, True])
def test_the_config_is_one_the_balancer_accepts(failover: bool) -> None:
    config = front_config(["http://127.0.0.1:8091", "10.0.0.12:8090"], failover=failover)
    assert config["endpoints"] == {"mgmt-1": "127.0.0.1:8091", "mgmt-2": "10.0.0.12:8090"}
    assert config["listener"]["healthCheck"]["path"] == HEALTH_PATH
    assert ("loadBalancing" in config["connectorGroup"]) is not failover
    loaded = parse_config_bytes(json.dumps(config).encode())
    assert [m.member_id for m in loaded.connector_group.ordered()] == ["mgmt-1", "mgmt-2"]
    assert loaded.listener is not None and loaded.listener.health_check is not None


def test_the_command_prints_it_and_refuses_what_is_not_host_port() -> None:
    ok = subprocess.run([*BALANCEDESK, "front-config", "a.example:8090", "b.example:8090", "--failover"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and json.loads(ok.stdout) == front_config(["a.example:8090", "b.example:8090"],
                                                                        failover=True)
    bad = subprocess.run([*BALANCEDESK, "front-config", "a.example:8090", "nope", "b:99999"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == "" and "nope, b:99999" in bad.stderr

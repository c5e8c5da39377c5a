"""The ``listener`` extension object of a balancer config: defaults, and field-level errors."""

from __future__ import annotations

from typing import Any

import pytest
from balancedesk.core.model import DEFAULT_READ_TIMEOUT, RuleError, parse_balancer_config

BASE: dict[str, Any] = {"connectorGroup": {"members": [{"memberID": "a", "sequence": 1}]},
                        "endpoints": {"a": "127.0.0.1:1"}}


def test_without_listener_the_defaults_keep_the_seed_rules() -> None:
    cfg = parse_balancer_config(BASE)
    assert cfg.listener.read_timeout == DEFAULT_READ_TIMEOUT
    assert cfg.listener.health_check is None and cfg.listener.access_log is None
    assert cfg.listener.to_json() == {"readTimeout": DEFAULT_READ_TIMEOUT}


def test_a_full_listener_round_trips() -> None:
    body = {"readTimeout": 1.5,
            "healthCheck": {"type": "http", "path": "/health", "expectStatus": 204, "interval": 0.2,
                            "timeout": 0.5, "rise": 1, "fall": 2},
            "accessLog": {"path": "/var/log/bd/access.log", "format": "json"}}
    cfg = parse_balancer_config({**BASE, "listener": body})
    assert cfg.listener.to_json() == body
    assert parse_balancer_config({**BASE, "listener": cfg.listener.to_json()}) == cfg


@pytest.mark.parametrize(("listener", "field"), [
    ({"readTimeout": 0}, "listener.readTimeout"),
    ({"readTimeout": "60"}, "listener.readTimeout"),
    ({"healthCheck": {"type": "udp"}}, "listener.healthCheck.type"),
    ({"healthCheck": {"path": "no-slash"}}, "listener.healthCheck.path"),
    ({"healthCheck": {"path": "/a b"}}, "listener.healthCheck.path"),
    ({"healthCheck": {"interval": True}}, "listener.healthCheck.interval"),
    ({"healthCheck": {"rise": 0}}, "listener.healthCheck.rise"),
    ({"healthCheck": {"expectStatus": 600}}, "listener.healthCheck.expectStatus"),
    ({"accessLog": {}}, "listener.accessLog.path"),
    ({"accessLog": {"path": "/x", "format": "xml"}}, "listener.accessLog.format"),
    ({"bogus": 1}, "listener.bogus"),
])
def test_a_bad_listener_field_is_named(listener: dict[str, Any], field: str) -> None:
    with pytest.raises(RuleError) as err:
        parse_balancer_config({**BASE, "listener": listener})
    assert [p.field for p in err.value.problems] == [field]

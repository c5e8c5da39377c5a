"""The ``listener`` extension object of a balancer config: defaults, and field-level errors."""

from __future__ import annotations

from typing import Any

import pytest
from balancedesk.core.model import (
    DEFAULT_AFFINITY_HEADER,
    DEFAULT_MODE,
    DEFAULT_POOL,
    DEFAULT_READ_TIMEOUT,
    ListenerSettings,
    RuleError,
    parse_balancer_config,
)

DEFAULTS: dict[str, Any] = {"mode": DEFAULT_MODE, "affinityHeader": DEFAULT_AFFINITY_HEADER, "pool": DEFAULT_POOL,
                            "readTimeout": DEFAULT_READ_TIMEOUT}

BASE: dict[str, Any] = {"connectorGroup": {"members": [{"memberID": "a", "sequence": 1}]},
                        "endpoints": {"a": "127.0.0.1:1"}}


def test_without_listener_the_defaults_keep_the_seed_rules() -> None:
    cfg = parse_balancer_config(BASE)
    assert cfg.listener.read_timeout == DEFAULT_READ_TIMEOUT
    assert cfg.listener.health_check is None and cfg.listener.access_log is None
    assert cfg.listener.port is None and cfg.listener.bind is None
    assert cfg.listener.to_json() == DEFAULTS


def test_a_full_listener_round_trips() -> None:
    body = {"port": 8443, "bind": "::1", "mode": "http", "affinityHeader": None, "pool": "edge-2", "readTimeout": 1.5,
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
    ({"port": 0}, "listener.port"),
    ({"port": 65536}, "listener.port"),
    ({"port": "80"}, "listener.port"),
    ({"port": True}, "listener.port"),
    ({"bind": "example.org"}, "listener.bind"),
    ({"bind": 1}, "listener.bind"),
    ({"mode": "udp"}, "listener.mode"),
    ({"affinityHeader": "a b"}, "listener.affinityHeader"),
    ({"affinityHeader": ""}, "listener.affinityHeader"),
    ({"pool": ""}, "listener.pool"),
    ({"pool": "a/b"}, "listener.pool"),
    ({"pool": None}, "listener.pool"),
])
def test_a_bad_listener_field_is_named(listener: dict[str, Any], field: str) -> None:
    with pytest.raises(RuleError) as err:
        parse_balancer_config({**BASE, "listener": listener})
    assert [p.field for p in err.value.problems] == [field]


def test_null_affinity_header_means_none_and_survives_a_round_trip() -> None:
    cfg = parse_balancer_config({**BASE, "listener": {"affinityHeader": None}})
    assert cfg.listener.affinity_header is None
    assert cfg.listener.to_json()["affinityHeader"] is None
    assert parse_balancer_config({**BASE, "listener": cfg.listener.to_json()}).listener.affinity_header is None


def test_header_names_are_kept_lowercase_and_binds_canonical() -> None:
    listener = ListenerSettings.model_validate({"affinityHeader": "Sender-Transfer-ID", "bind": "[0:0::1]"})
    assert listener.affinity_header == "sender-transfer-id" and listener.bind == "::1"


@pytest.mark.parametrize(("a", "b", "clash"), [
    ({"port": 80}, {"port": 80}, True),
    ({"port": 80}, {"port": 81}, False),
    ({"port": 80, "bind": "127.0.0.1"}, {"port": 80, "bind": "127.0.0.2"}, False),
    ({"port": 80, "bind": "127.0.0.1"}, {"port": 80, "bind": "127.0.0.1"}, True),
    ({"port": 80, "bind": "127.0.0.1"}, {"port": 80}, True),
    ({"port": 80, "bind": "0.0.0.0"}, {"port": 80, "bind": "127.0.0.1"}, True),
    ({"port": 80, "bind": "::"}, {"port": 80, "bind": "::1"}, True),
    ({}, {}, False),
])
def test_which_listeners_claim_the_same_socket(a: dict[str, Any], b: dict[str, Any], clash: bool) -> None:
    one, two = ListenerSettings.model_validate(a), ListenerSettings.model_validate(b)
    assert one.claims(two) is clash and two.claims(one) is clash

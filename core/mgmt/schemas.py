"""JSON Schemas of the request and response bodies, for the OpenAPI document (``/openapi.json``).

The server parses bodies itself (with :mod:`balancedesk.core.model`, so errors use HDP's envelope and name
the field); these schemas describe the same shapes so clients and fuzzers know what to send.
"""

from __future__ import annotations

from typing import Any

from balancedesk.core.model import ID_PATTERN, SEQUENCE_MAX, USER_NAME_PATTERN, WEIGHT_MAX

SECONDS: dict[str, Any] = {
    "description": "Whole seconds; 0 means never. A number or a numeric string; answered as a number.",
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": 31_536_000},
        {"type": "string", "pattern": "^[0-9]{1,8}$"},
    ],
}
MEMBER: dict[str, Any] = {
    "type": "object",
    "required": ["memberID", "sequence"],
    "additionalProperties": False,
    "properties": {
        "memberID": {"type": "string", "pattern": ID_PATTERN},
        "sequence": {"type": "integer", "minimum": 0, "maximum": SEQUENCE_MAX},
        "weight": {"type": "integer", "minimum": 1, "maximum": WEIGHT_MAX, "default": 1},
    },
}
GROUP: dict[str, Any] = {
    "type": "object",
    "required": ["members"],
    "additionalProperties": False,
    "properties": {
        "connectionTimeout": {**SECONDS, "default": 15},
        "retryDelay": {**SECONDS, "default": 120},
        "loadBalancing": {"type": ["string", "null"], "enum": ["Round Robin", None]},
        "members": {"type": "array", "items": MEMBER},
    },
}
AUTH_USERS: dict[str, Any] = {"type": "array", "items": {"type": "string", "minLength": 1}}
POOL: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
SECONDS_FLOAT: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
LISTENER: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "Balance Desk extension: how a pool's balancers serve the group. Absent on PUT keeps the "
    "group's listener; null removes it (the group leaves its pool).",
    "required": ["port"],
    "additionalProperties": False,
    "properties": {
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "bind": {"type": "string", "description": "IPv4 or IPv6 address; absent: the balancer's default"},
        "mode": {"type": "string", "enum": ["tcp", "http"], "default": "tcp"},
        "affinityHeader": {"type": ["string", "null"], "default": "sender-transfer-id",
                           "description": "http: route by this request header's value; null: no affinity"},
        "pool": {**POOL, "default": "default"},
        "readTimeout": {**SECONDS_FLOAT, "maximum": 86_400, "default": 60},
        "healthCheck": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": ["tcp", "http"], "default": "tcp"},
                "path": {"type": "string", "default": "/"},
                "expectStatus": {"type": "integer", "minimum": 100, "maximum": 599, "default": 200},
                "interval": {**SECONDS_FLOAT, "maximum": 3600, "default": 5},
                "timeout": {**SECONDS_FLOAT, "maximum": 600, "default": 2},
                "rise": {"type": "integer", "minimum": 1, "maximum": 100, "default": 2},
                "fall": {"type": "integer", "minimum": 1, "maximum": 100, "default": 3},
            },
        },
        "accessLog": {
            "type": "object",
            "required": ["path"],
            "additionalProperties": False,
            "properties": {"path": {"type": "string"}, "format": {"type": "string", "enum": ["text", "json"]}},
        },
    },
}
CONNECTOR: dict[str, Any] = {
    "type": "object",
    "required": ["owner", "label"],
    "additionalProperties": False,
    "properties": {
        "connectorID": {"type": "string", "pattern": ID_PATTERN},
        "owner": {"type": "string", "minLength": 1, "maxLength": 255},
        "label": {"type": "string", "minLength": 1, "maxLength": 255},
        "connectorGroup": GROUP,
        "authUser": AUTH_USERS,
        "endpoint": {"type": "string", "description": "host:port (Balance Desk extension, plain connectors)"},
        "listener": LISTENER,
    },
}
GROUP_CREATE: dict[str, Any] = {**CONNECTOR, "required": ["label", "connectorGroup"]}
MEMBERS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["members"],
    "additionalProperties": False,
    "properties": {"members": {"type": "array", "items": MEMBER}},
}
MEMBER_IDS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["members"],
    "additionalProperties": False,
    "properties": {"members": {"type": "array", "minItems": 1, "items": {"type": "string"}}},
}
AUTH_USERS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["authUser"],
    "additionalProperties": False,
    "properties": {"authUser": AUTH_USERS},
}
REGISTER_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["label", "owner"],
    "additionalProperties": False,
    "properties": {
        "label": {"type": "string", "minLength": 1, "maxLength": 255},
        "owner": {"type": "string", "minLength": 1},
        "endpoint": {"type": "string", "example": "127.0.0.1:9101"},
        "connectorID": {"type": "string", "pattern": ID_PATTERN},
    },
}
USER_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name", "password"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": USER_NAME_PATTERN},
        "password": {"type": "string", "minLength": 8},
        "role": {"type": "string", "enum": ["Administrator", "User"], "default": "User"},
    },
}
USER_UPDATE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "password": {"type": "string", "minLength": 8},
        "role": {"type": "string", "enum": ["Administrator", "User"]},
        "active": {"type": "boolean"},
    },
}
TOKEN_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["pool"],
    "additionalProperties": False,
    "properties": {"pool": POOL, "label": {"type": "string", "maxLength": 255}},
}
_ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}
HEARTBEAT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["instanceID", "host", "dataPlane", "startedAt"],
    "additionalProperties": False,
    "properties": {
        "instanceID": {"type": "string", "pattern": "^[A-Za-z0-9_.:@-]{1,128}$"},
        "host": {"type": "string", "minLength": 1, "maxLength": 255},
        "adminURL": {"type": ["string", "null"], "format": "uri"},
        "adminToken": {"type": ["string", "null"], "maxLength": 512,
                       "description": "kept in memory; readable by Administrators only"},
        "dataPlane": {"type": "string", "maxLength": 32},
        "workers": {"type": "integer", "minimum": 1, "maximum": 1024},
        "startedAt": {"type": "number", "minimum": 0, "description": "Unix time"},
        "groups": {"type": "array", "maxItems": 5000, "items": {
            "type": "object", "required": ["connectorID", "version"], "additionalProperties": False,
            "properties": {"connectorID": _ID, "version": {"type": "integer", "minimum": 0},
                           "listen": {"type": ["string", "null"]}, "error": {"type": ["string", "null"]}}}},
        "overrides": {"type": "array", "maxItems": 10_000, "items": {
            "type": "object", "required": ["connectorID", "memberID"], "additionalProperties": False,
            "properties": {"connectorID": _ID, "memberID": _ID,
                           "state": {"type": ["string", "null"], "enum": ["enabled", "drain", "disabled", None]},
                           "weight": {"type": ["integer", "null"], "minimum": 1}}}},
    },
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "pattern": "^[0-9]{9}$"},
                "message": {
                    "type": "object",
                    "properties": {"lang": {"type": "string"}, "value": {"type": "string"}},
                },
                "problems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                            "memberID": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}


def body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for an operation whose JSON body follows ``schema``."""
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the error statuses an operation may answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"description": "Error (HDP envelope)", "content": {"application/json": {"schema": ERROR}}}
    return out

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

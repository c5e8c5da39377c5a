"""Conditional GETs: ``If-None-Match`` against a resource's ETag (RFC 9110 §13.1.2, weak comparison).

Every GET that answers an ETag answers ``304 Not Modified`` (no body, the ETag repeated) when the request's
``If-None-Match`` lists that ETag (weak or strong) or is ``*``; otherwise the full answer.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    mine = _opaque(etag)
    return any(_opaque(t) == mine for t in if_none_match.split(","))


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 answer if the request already holds ``etag``, else None (answer in full)."""
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    return None

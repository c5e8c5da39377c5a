"""What a request may carry, checked before a handler acts on it. Each refusal is a 4xx naming the problem.

* A body is JSON by its ``Content-Type``: ``application/json`` or ``application/<anything>+json``, with no
  ``charset`` other than UTF-8; anything else (``text/plain`` included) is 415, before the body is read.
* A body is read in pieces and counted: past :data:`~.limits.BODY_MAX_BYTES` it is 413 at once, the rest
  unread (a ``Content-Length`` over the limit never gets this far: :mod:`.protocol` answers it).
* The body is UTF-8 JSON (400 with code ``222210001`` otherwise) whose every string, object keys included,
  is text (:func:`~balancedesk.core.model.text_problems`): a lone surrogate such as ``"\\ud800"``, a byte
  that is not UTF-8 or a NUL (``"\\u0000"``, which no PostgreSQL text column takes) inside a string is 400
  naming the field.
* Path segments and query values, once percent-decoded, are UTF-8 without NUL (400 naming the parameter);
  Starlette would otherwise replace what is not UTF-8 with U+FFFD and act on a name the client never sent.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from balancedesk.core.mgmt.errors import INVALID_JSON, ApiFailure, rule_failure
from balancedesk.core.mgmt.limits import BODY_MAX_BYTES
from balancedesk.core.model import NUL_TEXT, Problem, shown, text_problems
from fastapi import Request
from starlette.requests import ClientDisconnect

# path parameters by the JSON name a problem gives them
PATH_FIELDS = {"connector_id": "connectorID", "name": "name"}


def is_json_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/<x>+json``; a ``charset`` parameter, if any, is UTF-8."""
    if not content_type:
        return False
    kind, *params = (part.strip() for part in content_type.split(";"))
    kind = kind.lower()
    main, _, sub = kind.partition("/")
    if main != "application" or not (sub == "json" or (sub.endswith("+json") and len(sub) > 5)):
        return False
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length.strip() != "0")


async def read_body(request: Request, limit: int = BODY_MAX_BYTES) -> bytes:
    """The body, read in pieces; 413 as soon as it passes ``limit`` (what is left is never read)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiFailure(413, f"The request body is larger than {limit} bytes.", [Problem("body", "too large")])
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ApiFailure(400, "The client closed the connection before the body was complete.") from exc
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """The request's JSON body, by the rules above."""
    if _has_body(request) and not is_json_type(request.headers.get("content-type")):
        got = request.headers.get("content-type")
        raise ApiFailure(
            415,
            f"The body must be JSON, sent with Content-Type: application/json (got {got or 'none'}).",
            [Problem("Content-Type", f"must be application/json, got {got or 'none'}")],
        )
    raw = await read_body(request)
    if not raw.strip():
        raise ApiFailure(
            400, "Invalid JSON input: the request body is empty.", [Problem("body", "is required")], code=INVALID_JSON
        )
    # bytes that are not UTF-8 become lone surrogates, so text_problems can name the field they are in
    text = raw.decode("utf-8", "surrogateescape")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        message = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")
        raise ApiFailure(
            400, f"Invalid JSON input: {message}", [Problem("body", "is not valid JSON")], code=INVALID_JSON
        ) from exc
    problems = text_problems(value)
    if problems:
        raise rule_failure(problems, "The body is not UTF-8 text: it breaks")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def url_problems(raw_path: bytes, query: bytes, path_params: dict[str, Any]) -> list[Problem]:
    """Path segments and query parameters whose percent-decoded bytes are not UTF-8, or hold a NUL."""
    problems: list[Problem] = []
    decoded = {unquote(seg.decode("latin-1")): seg for seg in raw_path.split(b"/")}
    for seg_text, seg in decoded.items():
        raw = unquote_to_bytes(seg)
        if _utf8(raw) and b"\x00" not in raw:
            continue
        field = next((PATH_FIELDS.get(k, k) for k, v in path_params.items() if v == seg_text), "path")
        why = "is not valid UTF-8 once percent-decoded" if not _utf8(raw) else NUL_TEXT
        problems.append(Problem(field, f"{why}: {shown(seg.decode('latin-1'))}"))
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        name_b, value_b = (unquote_to_bytes(x.replace(b"+", b" ")) for x in (name, value))
        if not _utf8(name_b) or b"\x00" in name_b:
            problems.append(Problem("query", f"a parameter name is not valid UTF-8 text without NUL: "
                                             f"{shown(name.decode('latin-1'))}"))
        elif not _utf8(value_b):
            problems.append(Problem(name_b.decode("utf-8"), "is not valid UTF-8 once percent-decoded"))
        elif b"\x00" in value_b:
            problems.append(Problem(name_b.decode("utf-8"), NUL_TEXT))
    return problems


async def check_url(request: Request) -> None:
    """An app-wide dependency: 400 if the path or the query carries something that is not UTF-8 text."""
    problems = url_problems(
        request.scope.get("raw_path") or request.url.path.encode(),
        request.scope.get("query_string", b""),
        dict(request.path_params),
    )
    if problems:
        raise rule_failure(problems, "The URL is not UTF-8 text without NUL: it breaks")

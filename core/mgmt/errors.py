"""HDP's error envelope and the codes Balance Desk answers with.

``{"error": {"code": "<9 digits>", "message": {"lang": "en-US", "value": "…"}, "problems": [...]}}`` —
``problems`` (field, message, memberID) is our extension so a client can show a message next to a field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from balancedesk.core.model import Problem

# 9-digit codes, quoted as strings like HDP's; 2222100xx is Balance Desk's connector range.
CODES: dict[int, str] = {
    400: "222210002",
    401: "222210003",
    403: "222210004",
    404: "222210005",
    405: "222210009",
    409: "222210008",
    412: "222210006",
    408: "222210012",
    413: "222210011",
    415: "222210013",
    429: "222210007",
    422: "222210015",
    431: "222210014",
    500: "222210010",
}
INVALID_JSON = "222210001"


class ApiFailure(Exception):
    """A request that must be refused: status, a readable message, and the problems found (if any)."""

    def __init__(
        self,
        status: int,
        message: str,
        problems: Iterable[Problem] = (),
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.problems = list(problems)
        self.code = code or CODES.get(status, CODES[500] if status >= 500 else CODES[400])
        self.headers = dict(headers or {})
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return envelope(self.code, self.message, self.problems)


def envelope(code: str, message: str, problems: Iterable[Problem] = ()) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": {"lang": "en-US", "value": message},
            "problems": [p.as_json() for p in problems],
        }
    }


def rule_failure(problems: list[Problem], what: str = "The request breaks") -> ApiFailure:
    """400 whose message names every field (and member) at fault."""
    parts = []
    for p in problems:
        where = f"{p.field} (member {p.member_id})" if p.member_id else p.field
        parts.append(f"{where}: {p.message}")
    noun = "rule" if len(problems) == 1 else "rules"
    return ApiFailure(400, f"{what} {len(problems)} {noun}: " + "; ".join(parts), problems)


def not_found(connector_id: str) -> ApiFailure:
    return ApiFailure(404, f"There is no connector with ID {connector_id} that you can see.")

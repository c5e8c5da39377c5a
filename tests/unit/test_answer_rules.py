"""The error answer when every candidate of a request's walk was tried (``http.exhausted_answer``, used by
both L7 planes): the status follows the last attempt, and a member that took the request and sent no answer
byte in time is named with the timeout that applied."""

from __future__ import annotations

import pytest
from balancedesk.core.proxy.http import exhausted_answer

CASES = [
    ([], None, (503, "no member is enabled")),
    ([("a", "refused", 0.2)], None, (502, "every member failed")),
    ([("a", "reset", 0.2)], "a", (502, "every member failed")),
    ([("a", "timeout", 2000.0)], None, (504, "every member failed")),  # a connect timeout
    ([("a", "timeout", 1000.0)], "a", (504, "member a did not answer within 1.5 s")),
    ([("a", "timeout", 1000.0), ("b", "refused", 0.1)], "a", (502, "every member failed")),
    ([("a", "refused", 0.1), ("b", "timeout", 1000.0)], "b", (504, "member b did not answer within 1.5 s")),
    ([("a", "timeout", 1000.0), ("b", "timeout", 2000.0)], "a", (504, "every member failed")),
]


@pytest.mark.parametrize(("attempts", "stalled", "expected"), CASES)
def test_exhausted_answer(attempts: list[tuple[str, str, float]], stalled: str | None,
                          expected: tuple[int, str]) -> None:
    assert exhausted_answer(attempts, stalled, 1.5) == expected

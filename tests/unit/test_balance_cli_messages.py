"""``balancedesk balance --api``: a refused call is one sentence for the admin, without HTTP library wording."""

from __future__ import annotations

import httpx
from balancedesk.core.proxy.cli import api_failure


def _refused(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1:1/api/mgmt/connectors/g")
    response = httpx.Response(status, request=request)
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    raise AssertionError("raise_for_status did not raise")


def test_a_401_says_what_to_give() -> None:
    text = api_failure(_refused(401))
    assert text.startswith("the server answered 401 Unauthorized")
    assert "--password-env" in text and "http" not in text.split(":", 1)[1]


def test_other_statuses_name_the_status_and_never_link() -> None:
    for status in (403, 404, 500):
        text = api_failure(_refused(status))
        assert f"answered {status}" in text and "developer.mozilla.org" not in text


def test_a_connect_failure_keeps_its_own_words() -> None:
    assert api_failure(httpx.ConnectError("All connection attempts failed")) == "All connection attempts failed"

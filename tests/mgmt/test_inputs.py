"""What a request may carry: UTF-8 text everywhere, JSON by Content-Type, IDs a URL can carry, no null for a
value, and data files only the server's user can read."""

from __future__ import annotations

import stat
from typing import Any

import httpx
import pytest
from mgmt_helpers import ADMIN_PASSWORD, Server, error_of

USERS = "/api/admin/users"
REGISTER = "/api/admin/connectors"


def _raw(server: Server, method: str, path: str, body: bytes, content_type: str | None = "application/json") -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    return server.admin.request(method, path, content=body, headers=headers)


def _fields(r: httpx.Response) -> set[str]:
    return {p["field"] for p in error_of(r)["problems"]}


def test_a_lone_surrogate_in_any_string_is_400_naming_the_field(shared_server: Server) -> None:
    s = shared_server
    cid = s.register("surrogates", "admin", port=9201)
    cases = [
        ("POST", REGISTER, b'{"label": "x\\ud800", "owner": "admin"}', {"label"}),
        ("POST", REGISTER, b'{"label": "ok", "owner": "admin", "\\udfff": 1}', {"\\udfff"}),
        ("POST", USERS, b'{"name": "eve", "password": "pw-\\udc00-long"}', {"password"}),
        (
            "POST",
            "/api/mgmt/connectors",
            b'{"label": "g", "connectorGroup": {"members": [{"memberID": "\\ud83d", "sequence": 1}]}}',
            {"connectorGroup.members[0].memberID"},
        ),
        ("PUT", f"/api/mgmt/connectors/{cid}/authuser", b'{"authUser": ["admin", "\\ud800x"]}', {"authUser[1]"}),
        # a pair (\ud83d\ude00) is fine text: it is one character, and the rules go on to judge the value
    ]
    for method, path, body, fields in cases:
        r = _raw(s, method, path, body)
        assert r.status_code == 400, (path, r.text)
        assert _fields(r) == fields, r.text
        assert "UTF-8" in error_of(r)["message"]["value"]
    ok = _raw(s, "POST", REGISTER, b'{"label": "smile \\ud83d\\ude00", "owner": "admin"}')
    assert ok.status_code == 201 and ok.json()["label"] == "smile \U0001f600"
    # nothing was half-written: the user and the connectors refused above do not exist
    assert s.admin.get(f"{USERS}/eve").status_code == 404
    assert "x\ud800" not in str(s.admin.get(REGISTER).json())


def test_bytes_that_are_not_utf8_are_400_naming_the_field(shared_server: Server) -> None:
    s = shared_server
    for body, field in (
        (b'{"label": "caf\xe9", "owner": "admin"}', "label"),  # Latin-1
        (b'{"label": "\xed\xa0\x80", "owner": "admin"}', "label"),  # a surrogate encoded as if UTF-8
        (b'{"label": "ok", "owner": "adm\xffin"}', "owner"),
    ):
        r = _raw(s, "POST", REGISTER, body)
        assert r.status_code == 400 and _fields(r) == {field}, r.text
    # in the URL: path segments and query values are percent-decoded, then must be UTF-8
    r = s.admin.get("/api/mgmt/connectors/%FF%FE")
    assert r.status_code == 400 and _fields(r) == {"connectorID"}, r.text
    r = s.admin.get(f"{USERS}/al%E9")
    assert r.status_code == 400 and _fields(r) == {"name"}, r.text
    r = s.admin.get(REGISTER + "?owner=%C3%28")
    assert r.status_code == 400 and _fields(r) == {"owner"}, r.text
    r = s.admin.get(REGISTER + "?owner=%C3%A9")  # é, fine
    assert r.status_code == 200 and r.json() == {"connectors": []}


def test_a_body_is_json_only_by_its_content_type(shared_server: Server) -> None:
    s = shared_server
    body = b'{"label": "typed", "owner": "admin", "endpoint": "127.0.0.1:9202"}'
    for content_type in ("text/plain", None, "application/x-www-form-urlencoded", "application/json; charset=latin-1",
                         "application/jsonx", "application/+json"):
        r = _raw(s, "POST", REGISTER, body, content_type)
        assert r.status_code == 415, (content_type, r.text)
        assert _fields(r) == {"Content-Type"} and "application/json" in error_of(r)["message"]["value"]
    assert all(c["label"] != "typed" for c in s.admin.get(REGISTER).json()["connectors"])
    for content_type in ("application/json", "Application/JSON; charset=UTF-8", "application/vnd.hdp+json"):
        r = _raw(s, "POST", REGISTER, body, content_type)
        assert r.status_code == 201, (content_type, r.text)


def test_connector_ids_are_what_a_path_segment_carries(shared_server: Server) -> None:
    s = shared_server
    for bad in ("a/b", "..", ".", "", "with space", "é", "a?b", "a#b", "%2F", "x" * 256, None, 7):
        r = s.admin.post(REGISTER, json={"label": "x", "owner": "admin", "connectorID": bad})
        assert r.status_code == 400 and _fields(r) == {"connectorID"}, (bad, r.text)
    r = s.admin.post(
        "/api/mgmt/connectors",
        json={"label": "g", "connectorGroup": {"members": [{"memberID": "a/b", "sequence": 1}]}},
    )
    assert r.status_code == 400 and _fields(r) == {"connectorGroup.members[0].memberID"}, r.text
    # every ID the rule lets through can be registered, read and deleted through its URL
    for good in ("host:9000@site", "a.b_c~d-e", "x!$&'()*+,;=y", "...", "A" * 255):
        cid = s.register("segment", "admin", connector_id=good)
        assert cid == good
        assert s.admin.get(f"{REGISTER}/{good}").json()["connectorID"] == good
        assert s.admin.delete(f"{REGISTER}/{good}").json() == {"success": True}
        assert s.admin.get(f"{REGISTER}/{good}").status_code == 404


def test_null_is_not_a_value(shared_server: Server) -> None:
    s = shared_server
    assert s.admin.post(USERS, json={"name": "nully", "password": "nully-password"}).status_code == 201
    for body, field in (
        ({"password": None}, "password"),
        ({"role": None}, "role"),
        ({"active": None}, "active"),
        ({"password": None, "role": "User"}, "password"),
    ):
        r = s.admin.put(f"{USERS}/nully", json=body)
        assert r.status_code == 400 and _fields(r) == {field}, (body, r.text)
    assert s.as_user("nully", "nully-password").get("/api/mgmt/whoami").status_code == 200
    r = s.admin.post(USERS, json={"name": "nully2", "password": None})
    assert r.status_code == 400 and _fields(r) == {"password"}
    for body, field in (
        ({"label": "x", "owner": "admin", "endpoint": None}, "endpoint"),
        ({"label": "x", "owner": "admin", "connectorID": None}, "connectorID"),
    ):
        r = s.admin.post(REGISTER, json=body)
        assert r.status_code == 400 and _fields(r) == {field}, (body, r.text)
    cid = s.register("plain", "admin", port=9203)
    doc = s.admin.get(f"/api/mgmt/connectors/{cid}").json()
    for key in ("endpoint", "connectorGroup", "connectorID"):
        r = s.admin.put(f"/api/mgmt/connectors/{cid}", json={**doc, key: None})
        assert r.status_code == 400 and _fields(r) == {key}, (key, r.text)


@pytest.mark.sqlite_only
def test_data_files_are_private(server: Server) -> None:
    assert server.admin.get("/api/mgmt/whoami").status_code == 200  # the store has been written
    assert stat.S_IMODE(server.data.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in server.data.iterdir()}
    assert {"balancedesk.sqlite3", "balancedesk.sqlite3-wal", "balancedesk.sqlite3-shm"} <= set(files), files
    assert all(mode == 0o600 for mode in files.values()), files


@pytest.mark.sqlite_only
def test_a_store_left_world_readable_is_narrowed(start_server: Any, tmp_path: Any) -> None:
    first = start_server()
    assert first.admin.get("/api/mgmt/whoami").status_code == 200
    first.child.kill()
    db = first.data / "balancedesk.sqlite3"
    db.chmod(0o644)
    again = start_server(data=first.data)
    assert httpx.get(f"{again.url}/api/mgmt/whoami", auth=("admin", ADMIN_PASSWORD)).status_code == 200
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


@pytest.mark.parametrize(("method", "url", "body", "field"), [
    ("GET", "/api/mgmt/connectors?user=%00x", None, "user"),
    ("GET", "/api/admin/connectors?owner=a%00", None, "owner"),
    ("GET", "/api/mgmt/connectors/a%00b", None, "connectorID"),
    ("DELETE", "/api/admin/tokens/%00", None, "token_id"),
    ("POST", "/api/admin/connectors", {"label": "x\u0000", "owner": "admin", "endpoint": "127.0.0.1:1"}, "label"),
    ("POST", "/api/admin/tokens", {"pool": "p", "label": "\u0000"}, "label"),
])
def test_a_nul_anywhere_is_400_naming_where(shared_server: Server, method: str, url: str, body: Any,
                                             field: str) -> None:
    """U+0000 is valid UTF-8 but no PostgreSQL text column takes it: refused before anything is looked up."""
    r = shared_server.admin.request(method, url, json=body)
    assert r.status_code == 400, (url, r.status_code, r.text)
    fields = [p["field"] for p in error_of(r)["problems"]]
    assert any(field in f for f in fields), (url, fields)
    assert any("NUL" in p["message"] for p in error_of(r)["problems"])


def test_a_login_name_with_a_nul_is_a_plain_401(shared_server: Server) -> None:
    for name in ("ad\u0000min", "\u0000"):
        r = httpx.get(f"{shared_server.url}/api/mgmt/whoami", auth=(name, ADMIN_PASSWORD), timeout=15)
        assert r.status_code == 401 and error_of(r)["code"]
    assert shared_server.admin.get("/api/mgmt/whoami").status_code == 200  # the server goes on

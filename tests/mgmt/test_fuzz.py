"""Fuzz every operation of the served OpenAPI document (schemathesis + hypothesis): never a 5xx.

Path parameters are drawn partly from IDs that exist (the demo group and connectors), so bodies reach the
rules instead of stopping at 404. Bounded: a few dozen examples per operation.
"""

from __future__ import annotations

from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mgmt_helpers import ADMIN_PASSWORD, Server

EXAMPLES = 15


def test_openapi_fuzz_never_answers_5xx(start_server: Any) -> None:
    server: Server = start_server("--demo")
    server.add_user("fuzzuser")
    doc = httpx.get(f"{server.url}/openapi.json").json()
    # the document describes request bodies, so generated bodies are meaningful
    put = doc["paths"]["/api/mgmt/connectors/{connector_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["properties"]["connectorGroup"]
    ids = server.admin.get("/api/mgmt/connectors").json()["connectorIDs"]
    assert ids
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    session.auth = ("admin", ADMIN_PASSWORD)
    failures: list[str] = []
    calls = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        path_values = {
            "connector_id": st.one_of(st.sampled_from(ids), st.none()),
            "name": st.one_of(st.just("fuzzuser"), st.none()),
        }

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), chosen=st.fixed_dictionaries(path_values))
        def run(case: Any, chosen: dict[str, str | None]) -> None:
            nonlocal calls
            for key, value in chosen.items():
                if value is not None and case.path_parameters and key in case.path_parameters:
                    case.path_parameters[key] = value
            response = case.call(base_url=server.url, session=session)
            calls += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code}")

        run()

    assert calls > 200
    assert not failures, "\n".join(failures[:20])
    # the admin can still log in: the fuzzing did not break the server's own state
    assert server.admin.get("/api/mgmt/whoami").status_code == 200

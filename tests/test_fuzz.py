"""A bounded schemathesis run against the live service (gunicorn + FerretDB) as a school
admin: no 5xx, and every response matches its documented schema. `make fuzz` runs longer."""

from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

MAX_EXAMPLES = int(os.environ.get("ROTA_FUZZ_EXAMPLES", "5"))
SKIPPED_PATHS = ("/api/v1/auth/logout",)  # would revoke the token the rest of the run uses


def fuzz(base_url: str, school_id: str, headers: dict, max_examples: int) -> list[str]:
    """Every operation of the live spec, `max_examples` cases each; the failures found."""
    spec = requests.get(base_url + "/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED_PATHS:
            continue

        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            if "school_id" in (case.path_parameters or {}):
                case.path_parameters["school_id"] = school_id
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            case.validate_response(response,
                                   checks=(not_a_server_error, response_schema_conformance))

        try:
            check()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    return failures


@pytest.mark.integration
@pytest.mark.slow
def test_no_server_errors_and_documented_responses(live):
    world = live.world
    failures = fuzz(live.base_url, str(world.school.id), world.headers("admin"), MAX_EXAMPLES)
    assert not failures, "\n\n".join(failures)

"""Schemathesis against the running service's own OpenAPI spec: no 5xx, and every response
matches its documented schema. `python -m scripts.fuzz --max-examples 500` (make fuzz) runs
on a throwaway SecantusDB with the demo data, signed in as a school admin."""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

SKIPPED_PATHS = ("/api/v1/auth/logout",)  # would revoke the token the rest of the run uses


def fuzz(base_url: str, school_id: str, headers: dict, max_examples: int,
         log=lambda line: None) -> list[str]:
    """Every operation of the live spec, `max_examples` cases each; the failures found."""
    spec = requests.get(base_url + "/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED_PATHS:
            continue
        log(f"{operation.method.upper():6} {operation.path}")

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
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=200)
    args = parser.parse_args(argv)

    from documents import all_documents
    from documents.accounts import School
    from documents.connection import connect, disconnect, ensure_indexes
    from scripts import embedded
    from scripts.live import start_live_server
    from scripts.seed_demo import PASSWORD, SCHOOLS, seed

    work = Path(tempfile.mkdtemp(prefix="rota-fuzz-"))
    database = embedded.start(work / "db")
    uri = database.uri + "rota_fuzz"
    connect(uri)
    ensure_indexes(all_documents())
    logins = seed(log=print)
    school_id = str(School.objects.get(code=SCHOOLS[0][1]).id)
    disconnect()
    live = start_live_server(uri, secrets.token_urlsafe(32), work)
    try:
        admin = dict(logins)["school_admin"]
        token = requests.post(live.url("/api/v1/auth/login"),
                              json={"email": admin, "password": PASSWORD}).json()["access_token"]
        failures = fuzz(live.base_url, school_id, {"Authorization": f"Bearer {token}"},
                        args.max_examples, log=print)
    finally:
        live.stop()
        database.stop()
    for failure in failures:
        print(f"\n{failure}")
    print(f"\n{len(failures)} operation(s) failed" if failures else "\nno failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""A bounded schemathesis run against the live service (gunicorn + SecantusDB) as a school
admin: no 5xx, and every response matches its documented schema. `make fuzz` runs longer."""

from __future__ import annotations

import os

import pytest

from scripts.fuzz import fuzz

MAX_EXAMPLES = int(os.environ.get("ROTA_FUZZ_EXAMPLES", "5"))


@pytest.mark.integration
@pytest.mark.slow
def test_no_server_errors_and_documented_responses(live):
    world = live.world
    failures = fuzz(live.base_url, str(world.school.id), world.headers("admin"), MAX_EXAMPLES)
    assert not failures, "\n\n".join(failures)

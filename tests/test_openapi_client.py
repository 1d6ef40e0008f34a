"""An integrator's view of the OpenAPI document (issue 14): a Python client generated with
`openapi-python-client` from the live server's /api/v1/openapi.json runs a portal flow
against it (sign in, create a school, switch its modules, create users, a period, an
assignment, read the staff grid) with typed models all the way down, and 404, 409 and 422
come back as the typed error model (401 too), never as None or an untyped bag."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.helpers import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PACKAGE = "rota_generated_client"


@pytest.fixture(scope="module")
def generated(live_server, tmp_path_factory):
    """The generated package, imported (generation takes a few seconds)."""
    work = tmp_path_factory.mktemp("client")
    spec = work / "openapi.json"
    spec.write_bytes(requests.get(live_server.url("/api/v1/openapi.json"), timeout=30).content)
    config = work / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
         "--meta", "none", "--output-path", str(work / PACKAGE), "--config", str(config)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every operation and model generated: no "Unable to parse" warnings.
    assert "Unable to" not in result.stdout + result.stderr, result.stdout + result.stderr
    print(f"client generated in {time.monotonic() - started:.1f} s")
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [name for name in sys.modules if name.startswith(PACKAGE)]:
            del sys.modules[name]


def module(package, name):
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_portal_flow_through_the_generated_client(live, generated):
    api = lambda name: module(generated, f"api.{name}")  # noqa: E731
    models = module(generated, "models")
    world = live.world
    admin = world.add_user(None, "company_admin", company=world.company, password=PASSWORD)
    anonymous = generated.Client(base_url=live.base_url, raise_on_unexpected_status=True)

    # Sign in: typed tokens and user.
    tokens = api("auth.login").sync(client=anonymous, body=models.Login(
        email=admin.email, password=PASSWORD))
    assert isinstance(tokens, models.Tokens), tokens
    assert isinstance(tokens.user, models.User) and tokens.user.role == "company_admin"
    client = generated.AuthenticatedClient(base_url=live.base_url, token=tokens.access_token,
                                           raise_on_unexpected_status=True)

    # A school, its modules switched on.
    code = f"P{uuid.uuid4().hex[:6]}"
    school = api("schools.create_school").sync(
        client=client, body=models.SchoolCreate(name="Portal School", code=code),
        idempotency_key=f"create-{code}")
    assert isinstance(school, models.School) and school.code == code
    modules = api("schools.set_modules").sync(
        school.id, client=client, body=models.Modules(timetable=True, weekly_groups=False,
                                                      tracks=True, team_rosters=False))
    assert isinstance(modules, models.School)
    assert modules.modules.timetable is True and modules.modules.weekly_groups is False

    # People.
    teacher = api("schools.create_user").sync(school.id, client=client, body=models.UserCreate(
        email=f"teacher-{code}@example.test".lower(), name="Ada Teacher",
        role=models.UserCreateRole.STAFF, department="Mathematics"))
    assert isinstance(teacher, models.User) and teacher.department == "Mathematics"

    # A period and an assignment.
    period = api("timetable.create_period").sync(school.id, client=client,
                                                 body=models.PeriodCreate(
                                                     period_number=1, period_name="P1",
                                                     start_time="08:30", end_time="09:20"))
    assert isinstance(period, models.Period) and period.duration_minutes == 50
    assignment_body = models.AssignmentCreate(
        staff_id=teacher.id, period_id=period.id, day_of_week=0,
        classes=[models.Class(class_id="10-A", subject="Mathematics", room_number="R101")])
    assignment = api("timetable.create_assignment").sync(school.id, client=client,
                                                         body=assignment_body)
    assert isinstance(assignment, models.Assignment)
    assert isinstance(assignment.classes[0], models.ClassRead)
    assert assignment.classes[0].student_count is None

    # The staff grid: the filled slot's assignment is a typed Assignment, not a bag.
    grid = api("timetable.staff_grid").sync(school.id, teacher.id, client=client)
    assert isinstance(grid, models.StaffGrid)
    monday = next(day for day in grid.days if day.day_of_week == 0)
    slot = monday.slots[0]
    assert isinstance(slot.assignment, models.Assignment)
    assert slot.assignment.classes[0].class_id == "10-A"
    assert slot.assignment.classes[0].room_number == "R101"
    assert not getattr(slot.assignment, "additional_properties", None)
    tuesday = next(day for day in grid.days if day.day_of_week == 1)
    assert tuesday.slots[0].assignment is None

    # Errors: typed, with the status the spec names.
    missing = api("timetable.get_assignment").sync_detailed(
        school.id, "665f1c2e9b1d4a0012345678", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Error)
    assert missing.parsed.error.code == "not_found"
    assert missing.parsed.error.details["request_id"] == missing.headers["X-Request-ID"]
    taken = api("timetable.create_assignment").sync_detailed(school.id, client=client,
                                                             body=assignment_body)
    assert taken.status_code == 409 and isinstance(taken.parsed, models.Error)
    assert taken.parsed.error.code in ("slot_taken", "class_taken")
    invalid = api("timetable.create_period").sync_detailed(
        school.id, client=client, body=models.PeriodCreate(
            period_number=2, period_name="P2", start_time="10:00", end_time="09:00"))
    assert invalid.status_code == 422 and isinstance(invalid.parsed, models.Error)
    assert invalid.parsed.error.code == "validation_error"
    assert "end_time" in invalid.parsed.error.details.to_dict()
    # The plain call answers the typed error too (never a silent None) ...
    assert isinstance(api("timetable.get_assignment").sync(
        school.id, "665f1c2e9b1d4a0012345678", client=client), models.Error)
    refused = generated.AuthenticatedClient(base_url=live.base_url, token="not-a-token",
                                            raise_on_unexpected_status=True)
    unauthorized = api("auth.me").sync(client=refused)
    assert isinstance(unauthorized, models.Error)
    assert unauthorized.error.code == "unauthorized"

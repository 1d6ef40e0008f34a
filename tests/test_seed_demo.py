"""`rota seed-demo`: two schools with people and every module's sample data, printed logins."""

from __future__ import annotations

from documents.accounts import Company, School, User
from documents.timetable import TimetableSlot
from documents.tracks import Track
from documents.weekly_groups import Program
from scripts.seed_demo import PASSWORD, seed


def test_seed_demo_fills_every_module_and_prints_working_logins(client):
    lines = []
    logins = seed(log=lines.append)
    schools = School.objects(company_id=Company.objects.get(name="Demo Company").id)
    assert schools.count() == 2
    for school in schools:
        assert all(school.modules.to_mongo().to_dict().values())
        assert User.objects(school_id=school.id, role="staff").count() >= 8
        assert TimetableSlot.objects(school_id=school.id, assignments__0__exists=True).count() > 0
        assert Program.objects(school_id=school.id).count() > 0
        assert Track.objects(school_id=school.id).count() > 0
    for _role, email in logins:
        response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, email
    assert seed(log=lines.append) == logins  # a second run adds nothing
    assert Company.objects(name="Demo Company").count() == 1

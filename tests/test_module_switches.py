"""Module switches: one atomic `$set` of the switches given, audited; parallel switches of
different modules by different admins all land."""

from __future__ import annotations

import pytest
import requests

from documents.accounts import School
from documents.audit import AuditEvent
from tests.helpers import parallel

MODULES = ["timetable", "weekly_groups", "tracks", "team_rosters"]


def test_a_switch_changes_only_the_modules_given_and_is_audited(client, world):
    school = world.add_school(world.company, modules={"timetable": True})
    response = client.put(world.url("/modules", school), json={"tracks": True},
                          headers=world.headers("company_admin"))
    assert response.status_code == 200
    assert response.json["modules"] == {"timetable": True, "weekly_groups": False,
                                        "tracks": True, "team_rosters": False}
    event = AuditEvent.objects.get(school_id=school.id, action="set_modules")
    assert event.before == {"timetable": True, "weekly_groups": False, "tracks": False,
                            "team_rosters": False}
    assert event.after == {"timetable": True, "weekly_groups": False, "tracks": True,
                           "team_rosters": False}
    assert event.actor_id == world.company_admin.id


def test_an_empty_switch_changes_nothing(client, world):
    school = world.add_school(world.company, modules={"tracks": True})
    response = client.put(world.url("/modules", school), json={},
                          headers=world.headers("company_admin"))
    assert response.status_code == 200
    assert response.json["modules"]["tracks"] is True
    assert School.objects.get(id=school.id).modules.tracks is True


@pytest.mark.integration
def test_two_admins_switching_different_modules_at_once_both_land(live):
    """Each round: two company admins of one company switch different modules of one school
    at the same instant (one on, one off). A read-modify-write of the whole `modules` would
    lose one of them now and then; the `$set` of just the switched fields never does."""
    world = live.world
    second_admin = world.add_user(None, "company_admin", company=world.company)
    admins = [world.headers("company_admin"), world.headers(second_admin)]
    for _ in range(6):
        school = world.add_school(world.company, modules={"tracks": True})
        url = live.url(world.url("/modules", school))
        bodies = [{"timetable": True}, {"tracks": False}]
        responses = parallel(2, lambda i, url=url, bodies=bodies: requests.put(
            url, json=bodies[i], headers=admins[i], timeout=30))
        assert [r.status_code for r in responses] == [200, 200]
        stored = School.objects.get(id=school.id).modules
        assert (stored.timetable, stored.tracks, stored.weekly_groups, stored.team_rosters) \
            == (True, False, False, False)
        events = AuditEvent.objects(school_id=school.id, action="set_modules")
        assert sorted(str(e.actor_id) for e in events) == sorted(
            [str(world.company_admin.id), str(second_admin.id)])
        assert {tuple(sorted(set(e.after.items()) - set(e.before.items()))) for e in events} \
            == {(("timetable", True),), (("tracks", False),)}

"""Calendar feed URLs: read without a bearer token, in the school's time zone (VTIMEZONE, TZID),
one weekly series per lesson and term (RRULE UNTIL the term's end, EXDATE for holidays),
stable UIDs, SEQUENCE raised by an edit; rotated and revoked URLs answer 404; rate limited."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import icalendar
import pytest
import requests

from documents.accounts import User
from documents.audit import AuditEvent
from tests.helpers import parallel
from tests.test_timetable import MONDAY, assign, make_periods
from tests.test_timetable_exports import fill_school

BERLIN = "Europe/Berlin"


def feed_path(client, world, who="staff") -> str:
    response = client.get("/api/v1/calendar/feed", headers=world.headers(who))
    assert response.status_code == 200, response.json
    assert response.json["url"].startswith("http")
    return urlparse(response.json["url"]).path


def read(client, path) -> icalendar.Calendar:
    response = client.get(path)  # no Authorization header: as a calendar app polls
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/calendar"
    return icalendar.Calendar.from_ical(response.data)


def events(calendar) -> dict:
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def next_monday(after: date) -> date:
    return after + timedelta(days=7 - after.weekday())


class Terms:
    """world.school in Berlin: this term (around today, a holiday on a Monday in it) and the
    next one; one Monday lesson of world.staff at 08:00."""

    def __init__(self, client, world):
        self.client, self.world = client, world
        admin = world.headers("admin")
        assert client.patch(f"/api/v1/schools/{world.school.id}", json={"timezone": BERLIN},
                            headers=admin).status_code == 200
        today = date.today()
        self.this_term = self.term("This term", today - timedelta(days=30),
                                   today + timedelta(days=60))
        self.next_term = self.term("Next term", today + timedelta(days=75),
                                   today + timedelta(days=150))
        self.holiday = next_monday(today) + timedelta(days=14)
        assert client.post(world.url("/holidays"), json={
            "date": self.holiday.isoformat(), "name": "Staff day"},
            headers=admin).status_code == 201
        self.periods = make_periods(client, world, count=2)
        self.lesson = assign(client, world, world.staff, self.periods[0], day=MONDAY).json

    def term(self, name, start, end) -> dict:
        response = self.client.post(self.world.url("/terms"), json={
            "name": name, "start_date": start.isoformat(), "end_date": end.isoformat()},
            headers=self.world.headers("admin"))
        assert response.status_code == 201, response.json
        return response.json

    def uid(self, term) -> str:
        return f"{self.lesson['id']}-{term['id']}@rota"


@pytest.fixture
def terms(client, world) -> Terms:
    return Terms(client, world)


def test_a_feed_read_without_a_bearer_is_in_the_schools_zone_one_series_per_term(
        client, world, terms):
    path = feed_path(client, world)
    assert feed_path(client, world) == path  # the same URL every time
    calendar = read(client, path)
    (zone,) = calendar.walk("VTIMEZONE")
    assert str(zone["TZID"]) == BERLIN
    assert zone.walk("STANDARD") and zone.walk("DAYLIGHT")
    found = events(calendar)
    assert set(found) == {terms.uid(terms.this_term), terms.uid(terms.next_term)}
    berlin = ZoneInfo(BERLIN)
    for term in (terms.this_term, terms.next_term):
        event = found[terms.uid(term)]
        assert event["DTSTART"].params["TZID"] == BERLIN
        assert event["DTEND"].params["TZID"] == BERLIN
        start = event.decoded("DTSTART")
        assert (start.weekday(), start.strftime("%H:%M")) == (0, "08:00")
        assert date.fromisoformat(term["start_date"]) <= start.date()
        (until,) = event["RRULE"]["UNTIL"]
        assert until.astimezone(berlin).date() == date.fromisoformat(term["end_date"])
        assert event["RRULE"]["FREQ"] == ["WEEKLY"] and event["RRULE"]["BYDAY"] == ["MO"]
        assert event["SEQUENCE"] == 0
    excluded = found[terms.uid(terms.this_term)]["EXDATE"]
    (holiday,) = excluded.dts
    assert holiday.dt == datetime(*terms.holiday.timetuple()[:3], 8, 0, tzinfo=berlin)
    assert excluded.params["TZID"] == BERLIN
    assert "EXDATE" not in found[terms.uid(terms.next_term)]
    assert set(events(read(client, path))) == set(found)  # stable UIDs


def test_polling_is_cheap_an_unchanged_feed_answers_304(client, world, terms):
    path = feed_path(client, world)
    first = client.get(path)
    assert first.headers["Cache-Control"] == "private, max-age=300"
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    client.patch(world.url(f"/timetable/assignments/{terms.lesson['id']}"),
                 json={"room_number": "Lab 2"}, headers=world.headers("admin"))
    assert client.get(path, headers={"If-None-Match": first.headers["ETag"]}
                      ).status_code == 200


def test_an_edit_of_the_lesson_raises_its_sequence_under_the_same_uid(client, world, terms):
    path = feed_path(client, world)
    before = events(read(client, path))[terms.uid(terms.this_term)]
    edited = client.patch(world.url(f"/timetable/assignments/{terms.lesson['id']}"),
                          json={"room_number": "Lab 2"}, headers=world.headers("admin"))
    assert edited.status_code == 200, edited.json
    after = events(read(client, path))[terms.uid(terms.this_term)]
    assert (before["SEQUENCE"], after["SEQUENCE"]) == (0, 1)
    assert (str(before["LOCATION"]), str(after["LOCATION"])) == ("Room 101", "Lab 2")


def test_a_cancelled_date_overrides_the_series_of_its_term(client, world, terms):
    day = next_monday(date.today()) + timedelta(days=7)
    cancelled = client.post(world.url("/timetable/cover"), json={
        "date": day.isoformat(), "assignment_id": terms.lesson["id"], "action": "cancel"},
        headers=world.headers("admin"))
    assert cancelled.status_code == 201, cancelled.json
    calendar = read(client, feed_path(client, world))
    (override,) = [e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" in e]
    assert str(override["UID"]) == terms.uid(terms.this_term)
    assert override["RECURRENCE-ID"].params["TZID"] == BERLIN
    assert override.decoded("RECURRENCE-ID") == datetime(
        day.year, day.month, day.day, 8, 0, tzinfo=ZoneInfo(BERLIN))
    assert str(override["STATUS"]) == "CANCELLED"


def test_the_authenticated_export_is_built_the_same_way(client, world, terms):
    response = client.get(world.url(f"/timetable/staff/{world.staff.id}/calendar.ics"),
                          headers=world.headers("staff"))
    assert response.status_code == 200
    calendar = icalendar.Calendar.from_ical(response.data)
    assert str(calendar.walk("VTIMEZONE")[0]["TZID"]) == BERLIN
    assert set(events(calendar)) == set(events(read(client, feed_path(client, world))))


def test_a_week_b_lesson_recurs_every_second_week_from_a_week_b_of_each_term(
        client, world, terms):
    week_a_starts = next_monday(date.today()) - timedelta(days=21)
    assert client.put(world.url("/calendar/settings"), json={
        "week_rotation": True, "week_a_starts": week_a_starts.isoformat()},
        headers=world.headers("admin")).status_code == 200
    lesson = client.post(world.url("/timetable/assignments"), json={
        "staff_id": str(world.staff.id), "period_id": terms.periods[1]["id"],
        "day_of_week": MONDAY, "week": "B", "classes": [{"class_id": "7-B", "subject": "Art"}]},
        headers=world.headers("admin")).json
    found = events(read(client, feed_path(client, world)))
    for term in (terms.this_term, terms.next_term):
        event = found[f"{lesson['id']}-{term['id']}@rota"]
        assert event["RRULE"]["INTERVAL"] == [2]
        weeks = (event.decoded("DTSTART").date() - week_a_starts).days // 7
        assert weeks % 2 == 1  # a week B


def test_without_terms_a_lesson_recurs_until_the_end_of_next_year(client, world):
    period = make_periods(client, world, count=1)[0]
    lesson = assign(client, world, world.staff, period).json
    calendar = read(client, feed_path(client, world))
    assert str(calendar.walk("VTIMEZONE")[0]["TZID"]) == "UTC"
    event = events(calendar)[f"{lesson['id']}@rota"]
    (until,) = event["RRULE"]["UNTIL"]
    assert until.date() == date(date.today().year + 1, 12, 31)


def test_rotating_makes_the_old_url_404_and_the_new_one_work(client, world, terms):
    old = feed_path(client, world)
    rotated = client.post("/api/v1/calendar/feed/rotate", headers=world.headers("staff"))
    assert rotated.status_code == 200, rotated.json
    new = urlparse(rotated.json["url"]).path
    assert new != old
    gone = client.get(old)
    assert gone.status_code == 404 and gone.json["error"]["code"] == "not_found"
    assert set(events(read(client, new))) == {terms.uid(terms.this_term),
                                              terms.uid(terms.next_term)}
    assert feed_path(client, world) == new
    trail = AuditEvent.objects(entity_type="calendar_feed", actor_id=world.staff.id)
    assert sorted(e.action for e in trail) == ["create", "rotate"]
    assert all(e.school_id == world.school.id for e in trail)


def test_a_revoked_feed_is_404_and_a_new_one_can_be_made(client, world):
    old = feed_path(client, world)
    assert client.delete("/api/v1/calendar/feed", headers=world.headers("staff")
                         ).status_code == 204
    assert client.get(old).status_code == 404
    assert client.delete("/api/v1/calendar/feed", headers=world.headers("staff")
                         ).status_code == 204  # nothing left to revoke: nothing audited
    new = feed_path(client, world)
    assert new != old
    read(client, new)
    trail = AuditEvent.objects(entity_type="calendar_feed", actor_id=world.staff.id)
    assert sorted(e.action for e in trail) == ["create", "create", "revoke"]


def test_unknown_tokens_and_people_who_left_get_404(client, world):
    assert client.get("/api/v1/calendar/not-a-token.ics").status_code == 404
    path = feed_path(client, world)
    User.objects(id=world.staff.id).update_one(set__is_active=False)
    assert client.get(path).status_code == 404


def test_a_feed_read_too_often_answers_429_with_retry_after(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "ROTA_CALENDAR_FEED_RATE_LIMIT", 2)
    path = feed_path(client, world)
    assert [client.get(path).status_code for _ in range(2)] == [200, 200]
    refused = client.get(path)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert read(client, feed_path(client, world, "staff2"))  # another feed counts apart


def test_the_feed_rate_limit_setting_is_checked(monkeypatch):
    from api import config

    monkeypatch.setenv("ROTA_CALENDAR_FEED_RATE_LIMIT", "30")
    assert config.load({"JWT_SECRET_KEY": "s" * 40})["ROTA_CALENDAR_FEED_RATE_LIMIT"] == 30
    for wrong in ("0", "-5", "lots"):
        monkeypatch.setenv("ROTA_CALENDAR_FEED_RATE_LIMIT", wrong)
        with pytest.raises(config.ConfigError, match="ROTA_CALENDAR_FEED_RATE_LIMIT"):
            config.validate()


def test_a_feed_shows_its_owner_and_school_only(client, world, terms):
    colleague = assign(client, world, world.staff2, terms.periods[1]).json
    outside_period = make_periods_in(client, world, world.other_school)
    theirs = client.post(world.url("/timetable/assignments", world.other_school), json={
        "staff_id": str(world.other_staff.id), "period_id": outside_period["id"],
        "day_of_week": 0,
        "classes": [{"class_id": "7-X", "subject": "Art"}]},
        headers=world.headers("other_admin"))
    assert theirs.status_code == 201, theirs.json
    mine = read(client, feed_path(client, world))
    assert all(uid.startswith(terms.lesson["id"]) for uid in events(mine))
    assert colleague["id"] not in mine.to_ical().decode()
    outsiders = read(client, feed_path(client, world, "other_staff"))
    assert [uid.split("@")[0] for uid in events(outsiders)] == [theirs.json["id"]]
    assert str(outsiders.walk("VTIMEZONE")[0]["TZID"]) == "UTC"  # their school's zone
    assert terms.lesson["id"] not in outsiders.to_ical().decode()


def make_periods_in(client, world, school) -> dict:
    response = client.post(world.url("/timetable/periods", school), json={
        "period_number": 1, "period_name": "First", "start_time": "09:00",
        "end_time": "09:45"}, headers=world.headers("other_admin"))
    assert response.status_code == 201, response.json
    return response.json


def test_a_students_feed_is_a_valid_calendar_without_events(client, world, terms):
    calendar = read(client, feed_path(client, world, "student"))
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar.walk("VTIMEZONE")[0]["TZID"]) == BERLIN
    assert calendar.walk("VEVENT") == []


def test_company_admins_have_no_feed(client, world):
    refused = client.get("/api/v1/calendar/feed", headers=world.headers("company_admin"))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "no_calendar_feed"
    assert client.get("/api/v1/calendar/feed").status_code == 401


def test_api_keys_have_no_feed(client, world):
    from tests.test_api_keys import bearer, make_account, make_key

    account, accounts_url = make_account(client, world)
    key = make_key(client, world, f"{accounts_url}/{account['id']}/keys")
    refused = client.get("/api/v1/calendar/feed", headers=bearer(key["key"]))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "no_calendar_feed"


def feed_round_trips(client, roundtrips, path, lessons: int) -> int:
    with roundtrips() as commands:
        response = client.get(path)
    assert response.status_code == 200
    assert len(icalendar.Calendar.from_ical(response.data).walk("VEVENT")) == lessons
    return len(commands)


def test_a_feed_is_a_constant_number_of_round_trips_whatever_the_size(
        client, world, roundtrips, backend):
    periods = make_periods(client, world, count=4)
    small = fill_school(world, periods, 2)
    today = date.today()
    client.post(world.url("/terms"), json={
        "name": "T", "start_date": (today - timedelta(days=30)).isoformat(),
        "end_date": (today + timedelta(days=200)).isoformat()}, headers=world.headers("admin"))
    small_path = feed_path(client, world, small[0])
    small_count = feed_round_trips(client, roundtrips, small_path, 24)
    large = fill_school(world, periods, 100 if backend == "mongomock" else 20)
    large_count = feed_round_trips(client, roundtrips, feed_path(client, world, large[-1]), 24)
    assert small_count == large_count <= 9


def test_a_new_server_key_moves_the_url_and_the_old_one_stops(app, client, world,
                                                                monkeypatch):
    old = feed_path(client, world)
    monkeypatch.setitem(app.config, "JWT_SECRET_KEY", "another-secret-" + "k" * 40)
    new = feed_path(client, world)
    assert new != old and client.get(old).status_code == 404
    read(client, new)
    assert feed_path(client, world) == new
    assert AuditEvent.objects(entity_type="calendar_feed", action="rekey").count() == 1


@pytest.mark.integration
def test_parallel_first_reads_and_rotations_leave_one_working_url(live):
    world = live.world
    headers = world.headers("staff")

    def show(_):
        return requests.get(live.url("/api/v1/calendar/feed"), headers=headers,
                            timeout=30).json()["url"]

    def rotate(_):
        response = requests.post(live.url("/api/v1/calendar/feed/rotate"), headers=headers,
                                 timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["url"]

    assert len(set(parallel(8, show))) == 1  # made once
    rotated = set(parallel(8, rotate))
    current = show(0)
    working = {url for url in rotated | {current}
               if requests.get(url, timeout=30).status_code == 200}
    assert working == {current}
    assert AuditEvent.objects(entity_type="calendar_feed", actor_id=world.staff.id,
                              action="create").count() == 1

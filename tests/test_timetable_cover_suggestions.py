"""Who is free to cover, ranked with reasons, and the fairness counter, over HTTP on a school
built so that each ranking rule decides one pair of neighbours."""

from __future__ import annotations

import pytest

from tests.test_timetable import assign, make_periods

MONDAY, EARLIER_MONDAY = "2026-09-14", "2026-09-07"


class CoverSchool:
    """Teacher Tom (Maths) is away on MONDAY; his Period 3 lesson of 10-A needs a cover.

    Ada    Maths, teaches 10-A on Tuesday, but already covers once that day (daily cap 1)
    Ben    Science, teaches 10-A on Tuesday
    Cleo   Maths
    Dev    Science
    Eve    Science, covered once earlier this term
    Finn   Science, covered once earlier this term, teaches periods 1, 2 and 4 on Mondays
    Gus    reported himself absent (pending): not free
    Hal    covers another lesson in period 3: not free
    Ivy    teaches in period 3 on Mondays: not free
    Uma    away too (confirmed): not free; Hal covers her period 3 lesson
    """

    def __init__(self, client, world):
        self.client, self.world = client, world
        self.periods = make_periods(client, world, count=4)
        add = world.add_user
        self.people = {name: add(world.school, "staff", department=department, name=name)
                       for name, department in [
                           ("Tom", "Maths"), ("Ada", "Maths"), ("Ben", "Science"),
                           ("Cleo", "Maths"), ("Dev", "Science"), ("Eve", "Science"),
                           ("Finn", "Science"), ("Gus", "Science"), ("Hal", "Science"),
                           ("Ivy", "Science"), ("Uma", "Art")]}
        # world.staff and world.staff2 are away all day too: only the people above are free
        for user in (world.staff, world.staff2):
            self.absent(user)
        self.post("/terms", {"name": "Autumn", "start_date": "2026-09-01",
                             "end_date": "2026-12-18"})
        self.client.put(world.url("/timetable/cover/settings"),
                        json={"daily_cover_cap": 1, "weekly_cover_cap": 5,
                              "max_consecutive_periods": 3}, headers=world.headers("admin"))
        p = self.person
        self.toms_first = self.lesson("Tom", 0, "9-B")
        self.toms_third = self.lesson("Tom", 2, "10-A")
        self.umas_third = self.lesson("Uma", 2, "11-C")
        self.lesson("Ada", 0, "10-A", day=1)
        self.lesson("Ben", 1, "10-A", day=1)
        for index, class_id in ((0, "7-A"), (1, "7-B"), (3, "7-C")):
            self.lesson("Finn", index, class_id)
        self.lesson("Ivy", 2, "8-A")
        self.absent(p("Tom"))
        self.absent(p("Uma"))
        self.absent(p("Gus"), who=p("Gus"))
        self.cover(self.toms_first, "Ada")
        self.cover(self.umas_third, "Hal")
        self.cover(self.toms_first, "Eve", EARLIER_MONDAY)
        self.cover(self.toms_third, "Finn", EARLIER_MONDAY)

    def person(self, name):
        return self.people[name]

    def post(self, path, body, who="admin"):
        response = self.client.post(self.world.url(path), json=body,
                                    headers=self.world.headers(who))
        assert response.status_code == 201, response.json
        return response.json

    def lesson(self, name, period_index, class_id, day=0) -> dict:
        room = f"R-{name}-{period_index}-{day}"
        response = assign(self.client, self.world, self.person(name), self.periods[period_index],
                          day=day, classes=[{"class_id": class_id, "subject": "Any",
                                             "room_number": room}])
        assert response.status_code == 201, response.json
        return response.json

    def absent(self, user, who="admin"):
        return self.post("/timetable/absences", {"staff_id": str(user.id), "start_date": MONDAY,
                                                 "end_date": MONDAY, "reason": "Away"}, who)

    def cover(self, lesson, name, date=MONDAY):
        return self.post("/timetable/cover", {"date": date, "assignment_id": lesson["id"],
                                              "action": "cover",
                                              "cover_staff_id": str(self.person(name).id)})

    def get(self, path, status=200):
        response = self.client.get(self.world.url(path), headers=self.world.headers("admin"))
        assert response.status_code == status, response.json
        return response.json


@pytest.fixture
def school(client, world):
    return CoverSchool(client, world)


def test_the_free_staff_are_ranked_rule_by_rule_with_their_reasons(school):
    found = school.get(f"/timetable/cover/suggestions?date={MONDAY}"
                       f"&assignment_id={school.toms_third['id']}")
    names = [item["name"] for item in found["items"]]
    # Ben > Cleo: teaches the class; Cleo > Dev: same department; Dev > Eve: fewer covers
    # this term; Eve > Finn: no run over 3 periods; Ada last: at the daily cover cap
    assert names == ["Ben", "Cleo", "Dev", "Eve", "Finn", "Ada"]
    scores = [item["score"] for item in found["items"]]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    reasons = {item["name"]: item["reasons"] for item in found["items"]}
    assert "already teaches this class" in reasons["Ben"]
    assert "already teaches this class" not in reasons["Cleo"]
    assert "same department" in reasons["Cleo"] and "same department" not in reasons["Dev"]
    assert "0 covers this term" in reasons["Dev"] and "1 cover this term" in reasons["Eve"]
    assert "would teach 4 periods in a row (more than 3)" in reasons["Finn"]
    assert "1 period in a row at most" in reasons["Eve"]
    assert "at the daily cover cap (1 of 1 today)" in reasons["Ada"]
    assert found["term"]["name"] == "Autumn"


def test_the_period_given_must_be_the_lessons_and_unknown_lessons_are_404(school):
    good = school.get(f"/timetable/cover/suggestions?date={MONDAY}&assignment_id="
                      f"{school.toms_third['id']}&period_id={school.periods[2]['id']}")
    assert good["total"] == 6
    school.get(f"/timetable/cover/suggestions?date={MONDAY}&assignment_id="
               f"{school.toms_third['id']}&period_id={school.periods[1]['id']}", status=422)
    school.get(f"/timetable/cover/suggestions?date={MONDAY}&assignment_id="
               f"{'0' * 24}", status=404)
    school.get(f"/timetable/cover/suggestions?date={MONDAY}", status=422)


def test_fairness_counts_covers_per_staff_member_in_the_term(school):
    term = school.get("/terms")["items"][0]
    fairness = school.get(f"/timetable/cover/fairness?term_id={term['id']}")
    counts = {item["name"]: item["covers"] for item in fairness["items"]}
    assert [item["name"] for item in fairness["items"][:4]] == ["Ada", "Eve", "Finn", "Hal"]
    assert {name: counts[name] for name in ("Ada", "Eve", "Finn", "Hal", "Ben", "Tom")} == \
        {"Ada": 1, "Eve": 1, "Finn": 1, "Hal": 1, "Ben": 0, "Tom": 0}
    assert fairness["total"] == 13  # every active staff member, world.staff and staff2 too
    later = school.post("/terms", {"name": "Spring", "start_date": "2027-01-04",
                                   "end_date": "2027-03-26"})
    spring = school.get(f"/timetable/cover/fairness?term_id={later['id']}")
    assert {item["covers"] for item in spring["items"]} == {0}
    school.get(f"/timetable/cover/fairness?term_id={'0' * 24}", status=422)


def test_fairness_and_suggestions_take_the_same_round_trips_at_any_size(
        client, world, roundtrips):
    school = CoverSchool(client, world)
    term = school.get("/terms")["items"][0]

    def count(path) -> int:
        with roundtrips() as commands:
            school.get(path)
        return len(commands)

    suggestions = (f"/timetable/cover/suggestions?date={MONDAY}"
                   f"&assignment_id={school.toms_third['id']}")
    fairness = f"/timetable/cover/fairness?term_id={term['id']}"
    before = count(suggestions), count(fairness)
    for index, monday in enumerate(("2026-10-05", "2026-10-12", "2026-10-19", "2026-10-26")):
        name = f"More {index}"
        school.people[name] = world.add_user(world.school, "staff", name=name)
        school.lesson(name, 1, f"M-{index}")
        school.cover(school.lesson(name, 3, f"N-{index}"), "Dev", monday)
    assert (count(suggestions), count(fairness)) == before

"""The school calendar: terms, holidays, the A/B rotation setting and the school time zone."""

from __future__ import annotations

from documents.audit import AuditEvent


def post(client, world, path, body, who="admin"):
    return client.post(world.url(path), json=body, headers=world.headers(who))


def audited(world, action, entity_type) -> int:
    return AuditEvent.objects(school_id=world.school.id, action=action,
                              entity_type=entity_type).count()


def test_admins_add_terms_and_everyone_reads_them_in_date_order(client, world):
    spring = post(client, world, "/terms", {"name": "Spring", "start_date": "2027-01-04",
                                            "end_date": "2027-03-26"})
    autumn = post(client, world, "/terms", {"name": "Autumn", "start_date": "2026-09-01",
                                            "end_date": "2026-12-18"})
    assert (spring.status_code, autumn.status_code) == (201, 201)
    assert spring.json["start_date"] == "2027-01-04" and spring.json["end_date"] == "2027-03-26"
    listed = client.get(world.url("/terms"), headers=world.headers("student")).json
    assert [t["name"] for t in listed["items"]] == ["Autumn", "Spring"]
    assert listed["total"] == 2
    assert post(client, world, "/terms", {"name": "X", "start_date": "2027-05-01",
                                          "end_date": "2027-06-01"}, "staff").status_code == 403
    assert audited(world, "create", "term") == 2


def test_a_term_ending_before_it_starts_is_422_and_overlapping_terms_409(client, world):
    backwards = post(client, world, "/terms", {"name": "Odd", "start_date": "2026-09-10",
                                               "end_date": "2026-09-01"})
    assert backwards.status_code == 422 and "end_date" in backwards.json["error"]["details"]
    missing = post(client, world, "/terms", {"name": "No dates"})
    assert missing.status_code == 422
    post(client, world, "/terms", {"name": "Autumn", "start_date": "2026-09-01",
                                   "end_date": "2026-12-18"})
    overlapping = post(client, world, "/terms", {"name": "Winter", "start_date": "2026-12-18",
                                                 "end_date": "2027-01-10"})
    assert overlapping.status_code == 409
    assert overlapping.json["error"]["code"] == "term_overlap"
    assert "Autumn" in overlapping.json["error"]["message"]
    next_day = post(client, world, "/terms", {"name": "Winter", "start_date": "2026-12-19",
                                              "end_date": "2027-01-10"})
    assert next_day.status_code == 201


def test_terms_are_changed_and_deleted_by_admins(client, world):
    admin = world.headers("admin")
    autumn = post(client, world, "/terms", {"name": "Autumn", "start_date": "2026-09-01",
                                            "end_date": "2026-12-18"}).json
    spring = post(client, world, "/terms", {"name": "Spring", "start_date": "2027-01-04",
                                            "end_date": "2027-03-26"}).json
    url = world.url(f"/terms/{autumn['id']}")
    into_spring = client.patch(url, json={"end_date": "2027-01-05"}, headers=admin)
    assert into_spring.status_code == 409
    renamed = client.patch(url, json={"name": "Michaelmas", "end_date": "2026-12-20"},
                           headers=admin)
    assert renamed.status_code == 200
    assert (renamed.json["name"], renamed.json["end_date"]) == ("Michaelmas", "2026-12-20")
    assert client.delete(url, headers=world.headers("staff")).status_code == 403
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404
    left = client.get(world.url("/terms"), headers=admin).json["items"]
    assert [t["id"] for t in left] == [spring["id"]]
    assert audited(world, "delete", "term") == 1


def test_holidays_are_one_per_date_and_listed_by_range(client, world):
    admin = world.headers("admin")
    first = post(client, world, "/holidays", {"date": "2026-12-25", "name": "Christmas"})
    assert first.status_code == 201 and first.json["date"] == "2026-12-25"
    again = post(client, world, "/holidays", {"date": "2026-12-25", "name": "Again"})
    assert again.status_code == 409 and again.json["error"]["code"] == "duplicate"
    post(client, world, "/holidays", {"date": "2027-01-01", "name": "New Year"})
    assert post(client, world, "/holidays", {"date": "2027-13-01", "name": "Bad"}
                ).status_code == 422
    assert post(client, world, "/holidays", {"date": "2027-02-01", "name": "X"},
                "staff").status_code == 403
    january = client.get(world.url("/holidays?from=2027-01-01&to=2027-01-31"),
                         headers=world.headers("staff")).json
    assert [h["name"] for h in january["items"]] == ["New Year"]
    everything = client.get(world.url("/holidays"), headers=admin).json
    assert [h["date"] for h in everything["items"]] == ["2026-12-25", "2027-01-01"]
    gone = client.delete(world.url(f"/holidays/{first.json['id']}"), headers=admin)
    assert gone.status_code == 204
    assert client.get(world.url("/holidays"), headers=admin).json["total"] == 1
    other = client.get(world.url("/holidays", world.other_school),
                       headers=world.headers("other_admin")).json
    assert other["total"] == 0


def test_the_ab_rotation_needs_a_monday_to_start_from(client, world):
    url, admin = world.url("/calendar/settings"), world.headers("admin")
    assert client.get(url, headers=world.headers("staff")).json["week_rotation"] is False
    no_start = client.put(url, json={"week_rotation": True}, headers=admin)
    assert no_start.status_code == 422 and "week_a_starts" in no_start.json["error"]["details"]
    tuesday = client.put(url, json={"week_rotation": True, "week_a_starts": "2026-09-08"},
                         headers=admin)
    assert tuesday.status_code == 422
    on = client.put(url, json={"week_rotation": True, "week_a_starts": "2026-09-07"},
                    headers=admin)
    assert on.status_code == 200
    assert (on.json["week_rotation"], on.json["week_a_starts"]) == (True, "2026-09-07")
    assert client.put(url, json={"week_rotation": False}, headers=world.headers("staff")
                      ).status_code == 403
    assert audited(world, "update_calendar", "school_calendar") == 1


def test_admins_set_the_school_time_zone_and_unknown_zones_are_422(client, world):
    url = f"/api/v1/schools/{world.school.id}"
    assert client.get(url, headers=world.headers("admin")).json["timezone"] == "UTC"
    unknown = client.patch(url, json={"timezone": "Mars/Olympus_Mons"},
                           headers=world.headers("admin"))
    assert unknown.status_code == 422 and "timezone" in unknown.json["error"]["details"]
    by_school_admin = client.patch(url, json={"timezone": "Europe/Berlin"},
                                   headers=world.headers("admin"))
    assert by_school_admin.status_code == 200
    assert by_school_admin.json["timezone"] == "Europe/Berlin"
    by_company_admin = client.patch(url, json={"name": "Renamed", "timezone": "Asia/Tokyo"},
                                    headers=world.headers("company_admin"))
    assert by_company_admin.status_code == 200
    assert (by_company_admin.json["name"], by_company_admin.json["timezone"]) == \
        ("Renamed", "Asia/Tokyo")
    assert client.patch(url, json={"timezone": "UTC"}, headers=world.headers("staff")
                        ).status_code == 403
    assert client.patch(url, json={"timezone": "UTC"}, headers=world.headers("other_admin")
                        ).status_code == 404
    assert client.get(url, headers=world.headers("admin")).json["timezone"] == "Asia/Tokyo"
    assert AuditEvent.objects(school_id=world.school.id, action="update",
                              entity_type="school").count() == 2

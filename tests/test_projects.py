"""Projects and sub-projects: slugs, one level, updates, cascade delete, team guard."""

from __future__ import annotations

import pytest

from documents.projects import Project
from documents.tracks import Track, TrackCourse


def create_project(client, world, role="admin", **body):
    body.setdefault("name", "Enterprise Training")
    return client.post(world.url("/projects"), json=body, headers=world.headers(role))


def test_admin_creates_a_project_with_a_slug(client, world):
    response = create_project(client, world, name="2025 Enterprise Training!",
                              description="Yearly", start_date="2025-01-06",
                              end_date="2025-06-30")
    assert response.status_code == 201
    assert response.json["slug"] == "2025-enterprise-training"
    assert response.json["auto_balance_students"] is False
    assert response.json["start_date"] == "2025-01-06"
    assert response.json["parent_id"] is None


def test_taken_slugs_get_a_suffix_per_school(client, world):
    slugs = [create_project(client, world, name="Data Track").json["slug"] for _ in range(3)]
    assert slugs == ["data-track", "data-track-2", "data-track-3"]
    other = client.post(world.url("/projects", world.other_school), json={"name": "Data Track"},
                        headers=world.headers("other_admin"))
    assert other.json["slug"] == "data-track"


@pytest.mark.parametrize("role", ["staff", "student"])
def test_only_admins_create_projects(client, world, role):
    assert create_project(client, world, role=role).status_code == 403


def test_staff_read_projects_students_do_not(client, world):
    create_project(client, world, name="Alpha")
    listed = client.get(world.url("/projects"), headers=world.headers("staff"))
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json["items"]] == ["Alpha"]
    assert client.get(world.url("/projects"), headers=world.headers("student")).status_code \
        == 403


def test_end_before_start_is_422(client, world):
    response = create_project(client, world, start_date="2025-05-01", end_date="2025-04-01")
    assert response.status_code == 422
    assert "end_date" in response.json["error"]["details"]


def test_sub_projects_are_one_level_deep(client, world):
    headers = world.headers("admin")
    project = create_project(client, world, auto_balance_students=True).json
    sub = client.post(world.url(f"/projects/{project['id']}/sub-projects"),
                      json={"name": "Q1 Development"}, headers=headers)
    assert sub.status_code == 201
    assert sub.json["parent_id"] == project["id"]
    assert sub.json["auto_balance_students"] is True  # inherited by default
    nested = client.post(world.url(f"/projects/{sub.json['id']}/sub-projects"),
                         json={"name": "Too deep"}, headers=headers)
    assert nested.status_code == 422
    listed = client.get(world.url(f"/projects/{project['id']}/sub-projects"), headers=headers)
    assert [s["name"] for s in listed.json["items"]] == ["Q1 Development"]
    top = client.get(world.url("/projects"), headers=headers).json
    assert [p["id"] for p in top["items"]] == [project["id"]]


def test_patch_updates_fields_and_keeps_the_slug(client, world):
    project = create_project(client, world, name="Old name").json
    response = client.patch(world.url(f"/projects/{project['id']}"),
                            json={"name": "New name", "auto_balance_students": True,
                                  "end_date": "2026-01-31"},
                            headers=world.headers("admin"))
    assert response.status_code == 200
    assert response.json["name"] == "New name"
    assert response.json["slug"] == "old-name"
    assert response.json["auto_balance_students"] is True
    assert response.json["end_date"] == "2026-01-31"
    bad = client.patch(world.url(f"/projects/{project['id']}"), json={"start_date": "2026-02-01"},
                       headers=world.headers("admin"))
    assert bad.status_code == 422


def test_foreign_project_is_404(client, world):
    foreign = client.post(world.url("/projects", world.other_school), json={"name": "Theirs"},
                          headers=world.headers("other_admin")).json
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(world.url(f"/projects/{foreign['id']}"), json={},
                                           headers=world.headers("admin"))
        assert response.status_code == 404, method


def _populated_project(client, world):
    headers = world.headers("admin")
    project = create_project(client, world).json
    sub = client.post(world.url(f"/projects/{project['id']}/sub-projects"), json={"name": "Q1"},
                      headers=headers).json
    taught = {"instructors": [{"user_id": str(world.staff.id)}]}
    tracks = [client.post(world.url("/tracks"), json={**taught, **body}, headers=headers).json
              for body in ({"name": "Direct", "project_id": project["id"]},
                           {"name": "Under sub", "sub_project_id": sub["id"]})]
    for track in tracks:
        client.post(world.url(f"/tracks/{track['id']}/students"),
                    json={"student_ids": [str(world.student.id)]}, headers=headers)
        client.post(world.url(f"/tracks/{track['id']}/courses"),
                    json={"title": "Intro", "modules": [{"title": "Hello", "kind": "content"}]},
                    headers=headers)
    return project, sub, tracks


def test_delete_removes_sub_projects_tracks_and_what_hangs_on_them(client, world):
    project, sub, tracks = _populated_project(client, world)
    kept = create_project(client, world, name="Kept").json
    response = client.delete(world.url(f"/projects/{project['id']}"),
                             headers=world.headers("admin"))
    assert response.status_code == 204
    for track in tracks:
        assert client.get(world.url(f"/tracks/{track['id']}"),
                          headers=world.headers("admin")).status_code == 404
    assert client.get(world.url(f"/projects/{sub['id']}"),
                      headers=world.headers("admin")).status_code == 404
    assert Track.objects(school_id=world.school.id).count() == 0
    assert TrackCourse.objects(school_id=world.school.id).count() == 0
    assert Project.objects(id=kept["id"]).count() == 1
    trail = client.get(world.url(f"/audit?entity_type=project&entity_id={project['id']}"),
                       headers=world.headers("admin")).json["items"]
    assert trail[0]["action"] == "delete"
    removed = trail[0]["after"]
    assert {k: removed[k] for k in ("enrolments", "instructors", "courses", "tracks",
                                    "sub_projects")} == {"enrolments": 2, "instructors": 2,
                                                         "courses": 2, "tracks": 2,
                                                         "sub_projects": 1}


def test_delete_is_refused_while_project_teams_exist(client, world):
    project, sub, _ = _populated_project(client, world)
    Project._get_db()["project_teams"].insert_one(
        {"school_id": world.school.id, "project_id": Project.objects.get(id=sub["id"]).id})
    response = client.delete(world.url(f"/projects/{project['id']}"),
                             headers=world.headers("admin"))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "project_has_teams"
    assert Project.objects(id=project["id"]).count() == 1


def test_teams_of_another_school_do_not_block(client, world):
    project = create_project(client, world).json
    project_id = Project.objects.get(id=project["id"]).id
    Project._get_db()["project_teams"].insert_one(
        {"school_id": world.other_school.id, "project_id": project_id})
    response = client.delete(world.url(f"/projects/{project['id']}"),
                             headers=world.headers("admin"))
    assert response.status_code == 204


def test_module_switched_off_is_403(client, world):
    world.set_modules(world.school, tracks=False)
    response = create_project(client, world)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "module_disabled"

"""Projects and sub-projects: slugs, one level, updates, cascade delete, team guard."""

from __future__ import annotations

from pymongo.errors import AutoReconnect

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


def test_students_do_not_create_projects(client, world):
    assert create_project(client, world, role="student").status_code == 403


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


def test_projects_need_tracks_or_team_rosters(client, world):
    world.set_modules(world.school, tracks=False, team_rosters=False)
    response = create_project(client, world)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "module_disabled"
    assert client.get(world.url("/projects"), headers=world.headers("admin")).status_code == 403
    world.set_modules(world.school, tracks=False, team_rosters=True)  # rosters only
    created = create_project(client, world)
    assert created.status_code == 201
    project = created.json
    assert client.post(world.url(f"/projects/{project['id']}/sub-projects"), json={"name": "Q1"},
                       headers=world.headers("admin")).status_code == 201
    track = client.post(world.url("/tracks"), json={
        "name": "T", "project_id": project["id"],
        "instructors": [{"user_id": str(world.staff.id)}]}, headers=world.headers("admin"))
    assert track.json["error"]["code"] == "module_disabled"  # tracks stay the tracks module's


# ---- staff, status, archiving ----

def patch_project(client, world, project, role="admin", **body):
    return client.patch(world.url(f"/projects/{project['id']}"), json=body,
                        headers=world.headers(role))


def test_staff_create_projects_and_edit_only_their_own(client, world):
    mine = create_project(client, world, role="staff", name="Mine", target_roles=[
        "Backend Developer"], objectives="Ship an API").json
    assert (mine["created_by"], mine["status"]) == (str(world.staff.id), "draft")
    assert (mine["target_roles"], mine["objectives"]) == (["Backend Developer"], "Ship an API")
    sub = client.post(world.url(f"/projects/{mine['id']}/sub-projects"),
                      json={"name": "Q1", "target_roles": ["Data Analyst"]},
                      headers=world.headers("staff"))
    assert sub.status_code == 201 and sub.json["target_roles"] == ["Data Analyst"]
    assert patch_project(client, world, mine, "staff", name="Mine, renamed").json["name"] == \
        "Mine, renamed"
    theirs = create_project(client, world, name="Theirs").json
    refused = patch_project(client, world, theirs, "staff", name="Taken over")
    assert refused.status_code == 403
    assert patch_project(client, world, theirs, "staff", status="archived").status_code == 403
    assert patch_project(client, world, mine, "admin", objectives="More").status_code == 200
    other_staff = world.add_user(world.school, "staff")
    assert patch_project(client, world, mine, other_staff, name="X").status_code == 403


def test_status_moves_forward_and_each_move_is_audited(client, world):
    project = create_project(client, world).json
    assert patch_project(client, world, project, status="active").json["status"] == "active"
    back = patch_project(client, world, project, status="draft")
    assert back.status_code == 409 and back.json["error"]["code"] == "invalid_status"
    assert patch_project(client, world, project, status="archived").json["status"] == "archived"
    trail = client.get(world.url(f"/audit?entity_type=project&entity_id={project['id']}"
                                 "&action=status"), headers=world.headers("admin")).json["items"]
    assert sorted((e["before"]["status"], e["after"]["status"]) for e in trail) == [
        ("active", "archived"), ("draft", "active")]
    listed = client.get(world.url("/projects?status=archived"),
                        headers=world.headers("admin")).json["items"]
    assert [p["id"] for p in listed] == [project["id"]]


def test_an_archived_project_refuses_writes_to_it_its_sub_projects_and_tracks(client, world):
    project, sub, tracks = _populated_project(client, world)
    admin = world.headers("admin")
    assert patch_project(client, world, project, status="archived").status_code == 200
    taught = {"instructors": [{"user_id": str(world.staff.id)}]}
    refused = [
        patch_project(client, world, project, name="New name"),
        patch_project(client, world, sub, description="New"),
        client.post(world.url(f"/projects/{project['id']}/sub-projects"), json={"name": "Q2"},
                    headers=admin),
        client.post(world.url("/tracks"), json={**taught, "name": "T",
                                                "project_id": project["id"]}, headers=admin),
        client.post(world.url("/tracks"), json={**taught, "name": "T",
                                                "sub_project_id": sub["id"]}, headers=admin),
    ]
    for track in tracks:
        base = f"/tracks/{track['id']}"
        refused += [
            client.post(world.url(f"{base}/students"), headers=admin,
                        json={"student_ids": [str(world.add_user(world.school, "student").id)]}),
            client.delete(world.url(f"{base}/students/{world.student.id}"), headers=admin),
            client.post(world.url(f"{base}/instructors"), json={"user_id": str(world.staff2.id)},
                        headers=admin),
            client.post(world.url(f"{base}/courses"), json={"title": "X"}, headers=admin),
            client.patch(world.url(base), json={"name": "X"}, headers=admin)]
    for response in refused:
        assert response.status_code == 409, response.json
        assert response.json["error"]["code"] == "project_archived"
    assert client.get(world.url(f"/projects/{sub['id']}"), headers=admin).json["status"] == \
        "archived"
    again = patch_project(client, world, project, status="archived")
    assert again.status_code == 200
    detail = client.get(world.url(f"/tracks/{tracks[0]['id']}"), headers=admin).json
    assert detail["archived"] is True and detail["students_count"] == 1


def test_archiving_again_finishes_an_interrupted_archive(client, world):
    project, sub, tracks = _populated_project(client, world)
    Project.objects(id=project["id"]).update_one(set__status="archived")  # crashed after step 1
    assert Track.objects(id=tracks[1]["id"]).get().archived is False
    assert patch_project(client, world, project, status="archived").status_code == 200
    assert Track.objects(school_id=world.school.id, archived=True).count() == 2
    assert Project.objects(id=sub["id"]).get().status == "archived"


# ---- the wizard ----

def wizard(client, world, role="admin", **body):
    return client.post(world.url("/projects/wizard"), json=body, headers=world.headers(role))


WIZARD = {"project": {"name": "2026 Enterprise Training", "target_roles": ["Backend Developer"],
                      "objectives": "Job-ready developers", "start_date": "2026-01-05",
                      "end_date": "2026-12-18"},
          "sub_projects": [{"name": "Q1 Development", "target_roles": ["Backend Developer",
                                                                      "Frontend Developer"],
                            "start_date": "2026-01-05", "end_date": "2026-03-27"},
                           {"name": "Q2 Data"}]}


def test_the_wizard_generates_a_track_per_sub_project_and_target_role(client, world):
    response = wizard(client, world, **WIZARD, generate_tracks=True,
                      instructors=[{"user_id": str(world.staff.id)}],
                      tracks=[{"name": "Onboarding",
                               "instructors": [{"user_id": str(world.staff2.id)}]}])
    assert response.status_code == 201, response.json
    body = response.json
    assert body["project"]["target_roles"] == ["Backend Developer"]
    assert [s["parent_id"] for s in body["sub_projects"]] == [body["project"]["id"]] * 2
    q1, q2 = (s["id"] for s in body["sub_projects"])
    assert [(t["name"], t["project_id"], t["sub_project_id"], t["instructor_ids"])
            for t in body["tracks"]] == [
        ("Onboarding", body["project"]["id"], None, [str(world.staff2.id)]),
        ("Q1 Development: Backend Developer", None, q1, [str(world.staff.id)]),
        ("Q1 Development: Frontend Developer", None, q1, [str(world.staff.id)]),
        ("Q2 Data: Backend Developer", None, q2, [str(world.staff.id)])]  # the project's role
    listed = client.get(world.url(f"/tracks?project_id={body['project']['id']}"),
                        headers=world.headers("admin")).json
    assert listed["total"] == 4
    created = client.get(world.url("/audit?action=create"),
                         headers=world.headers("admin")).json["items"]
    assert sorted(e["entity_type"] for e in created) == ["project", "sub_project",
                                                         "sub_project"] + ["track"] * 4


def test_a_wizard_dry_run_previews_and_writes_nothing(client, world):
    response = wizard(client, world, **WIZARD, generate_tracks=True, dry_run=True,
                      instructors=[{"user_id": str(world.staff.id)}])
    assert response.status_code == 200
    assert response.json["dry_run"] is True
    assert response.json["project"]["id"] is None
    assert [(t["name"], t["sub_project_index"]) for t in response.json["tracks"]] == [
        ("Q1 Development: Backend Developer", 0), ("Q1 Development: Frontend Developer", 0),
        ("Q2 Data: Backend Developer", 1)]
    assert Project.objects(school_id=world.school.id).count() == 0
    assert Track.objects(school_id=world.school.id).count() == 0


def test_the_wizard_is_all_or_nothing_and_names_the_failing_parts(client, world):
    bad_shape = wizard(client, world, project={"name": "P"},
                       sub_projects=[{"name": "Q1"}, {"description": "no name"}])
    assert bad_shape.status_code == 422
    assert "sub_projects.1.name" in bad_shape.json["error"]["details"]
    bad_rules = wizard(client, world, **{**WIZARD, "sub_projects": [
        WIZARD["sub_projects"][0], {"name": "Q2", "start_date": "2026-06-01",
                                    "end_date": "2026-04-01"}]},
        tracks=[{"name": "T", "sub_project": 5},
                {"name": "U", "instructors": [{"user_id": str(world.student.id)}]}],
        generate_tracks=True)
    assert bad_rules.status_code == 422
    assert set(bad_rules.json["error"]["details"]) - {"request_id"} == {
        "sub_projects.1.end_date", "tracks.0.sub_project", "tracks.0.instructors",
        "tracks.1.instructors.0.user_id", "instructors"}
    assert Project.objects(school_id=world.school.id).count() == 0


def test_a_wizard_that_fails_midway_removes_what_it_wrote(client, world, monkeypatch):
    collection_type = type(Track._get_collection())
    insert_many = collection_type.insert_many

    def lost_on_tracks(self, *args, **kwargs):
        if self.name == "tracks":  # after the project and its sub-projects are written
            raise AutoReconnect("connection lost")
        return insert_many(self, *args, **kwargs)

    monkeypatch.setattr(collection_type, "insert_many", lost_on_tracks)
    response = wizard(client, world, **WIZARD, generate_tracks=True,
                      instructors=[{"user_id": str(world.staff.id)}])
    assert response.status_code == 503
    assert Project.objects(school_id=world.school.id).count() == 0


def test_staff_run_the_wizard_without_tracks(client, world):
    assert wizard(client, world, "staff", **WIZARD).status_code == 201
    with_tracks = wizard(client, world, "staff", **WIZARD, generate_tracks=True,
                         instructors=[{"user_id": str(world.staff.id)}])
    assert with_tracks.status_code == 403
    assert Project.objects(school_id=world.school.id, parent_id=None).count() == 1

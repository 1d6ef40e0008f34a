"""`rota import` / `rota export` of course groups and project teams (service/
team_rosters_import.py) through the import framework, as the CLI and HTTP jobs run them."""

from __future__ import annotations

import pytest

from documents.audit import AuditEvent
from documents.projects import Project
from documents.team_rosters import CourseGroup, ProjectTeam
from service.context import SYSTEM
from service.team_rosters import ProjectTeams
from service.team_rosters_records import Evaluations
from service.tenancy import school_context
from tests.test_import_support import export, run, snapshot, write_csv


@pytest.fixture
def pupils(world):
    """Four students; the odd ones carry an external_id (files name them by it)."""
    people = [world.add_user(world.school, "student", name=f"Pupil {i}") for i in range(4)]
    for person in people[1::2]:
        person.external_id = f"EXT-{person.id}"
        person.save()
    return people


def key(user) -> str:
    return user.external_id or user.email


@pytest.fixture
def project(world):
    return Project(school_id=world.school.id, name="Fair", slug="fair").save()


def groups(world) -> dict[str, list]:
    return {g.name: g.member_ids for g in CourseGroup.objects(school_id=world.school.id)}


def test_course_groups_import_export_and_reimport_changes_nothing(world, pupils, tmp_path):
    rows = [("Blue", key(pupils[0]).upper()), ("Blue", key(pupils[1])), ("Red", ""),
            ("Green", key(pupils[2])), ("Green", "nobody@nowhere.test")]
    path = write_csv(tmp_path / "groups.csv", ("group", "member"), rows)
    outcome = run("course-groups", path, world.school)
    assert (outcome.code, outcome.count("created"), outcome.count("rejected")) == (1, 3, 2)
    assert outcome.reasons()[5].startswith("unknown member(s): nobody@nowhere.test")
    assert set(outcome.reasons()) == {5, 6}  # both rows of Green: all or nothing
    assert groups(world) == {"Blue": [pupils[0].id, pupils[1].id], "Red": []}

    exported = export("course-groups", world.school, tmp_path / "out.csv")
    assert [(r["group"], r["member"]) for r in exported] == [
        ("Blue", key(pupils[0])), ("Blue", key(pupils[1])), ("Red", "")]
    before = snapshot(CourseGroup, world.school.id)
    events = AuditEvent.objects(school_id=world.school.id).count()
    again = run("course-groups", tmp_path / "out.csv", world.school)
    assert (again.code, again.count("unchanged"), again.count("created"),
            again.count("updated")) == (0, 3, 0, 0)
    assert snapshot(CourseGroup, world.school.id) == before
    assert AuditEvent.objects(school_id=world.school.id).count() == events

    changed = write_csv(tmp_path / "changed.csv", ("group", "member"),
                        [("Blue", key(pupils[3]))])
    assert run("course-groups", changed, world.school).count("updated") == 1
    assert groups(world)["Blue"] == [pupils[3].id]


def test_project_teams_round_trip_changes_nothing_and_locked_teams_get_a_version(
        world, pupils, project, tmp_path):
    header = ("project", "team", "member", "role")
    rows = [("fair", "Crew", key(pupils[0]), "Lead"), ("fair", "Crew", key(pupils[1]), ""),
            ("fair", "Solo", "", ""), ("nope", "Crew", key(pupils[2]), "")]
    path = write_csv(tmp_path / "teams.csv", header, rows)
    outcome = run("project-teams", path, world.school)
    assert (outcome.count("created"), outcome.count("rejected")) == (3, 1)
    assert outcome.reasons()[5] == "unknown project 'nope'"
    crew = ProjectTeam.objects.get(project_id=project.id, display_name_at_time="Crew")
    assert [(m.user_id, m.role) for m in crew.members] == [(pupils[0].id, "Lead"),
                                                           (pupils[1].id, None)]

    exported = export("project-teams", world.school, tmp_path / "out.csv")
    assert [(r["team"], r["member"], r["role"]) for r in exported] == [
        ("Crew", key(pupils[0]), "Lead"), ("Crew", key(pupils[1]), ""), ("Solo", "", "")]
    before = snapshot(ProjectTeam, world.school.id)
    again = run("project-teams", tmp_path / "out.csv", world.school)
    assert (again.code, again.count("unchanged")) == (0, 3)
    assert snapshot(ProjectTeam, world.school.id) == before

    # an unlocked team is edited in place; a locked one gets the next version
    ctx = school_context(SYSTEM, world.school.id)
    Evaluations(ctx).create(project.id, crew.id, "Review")
    changed = write_csv(tmp_path / "changed.csv", header,
                        [("fair", "Crew", key(pupils[2]), "Lead"),
                         ("fair", "Solo", key(pupils[3]), "")])
    result = run("project-teams", changed, world.school)
    assert (result.code, result.count("updated")) == (0, 2)
    versions = {t.team_version: t for t in ProjectTeam.objects(
        project_id=project.id, display_name_at_time="Crew")}
    assert versions[1].member_ids == [pupils[0].id, pupils[1].id] and versions[1].superseded
    assert versions[2].member_ids == [pupils[2].id] and not versions[2].locked
    solo = ProjectTeam.objects(project_id=project.id, display_name_at_time="Solo")
    assert [(t.team_version, t.member_ids) for t in solo] == [(1, [pupils[3].id])]
    assert run("project-teams", changed, world.school).count("unchanged") == 2
    assert ProjectTeams(ctx).list(project.id, latest=True).total == 2


def test_a_dry_run_writes_nothing(world, pupils, project, tmp_path):
    path = write_csv(tmp_path / "teams.csv", ("project", "team", "member"),
                     [("fair", "Crew", key(pupils[0]))])
    outcome = run("project-teams", path, world.school, dry_run=True)
    assert outcome.count("created") == 1
    assert ProjectTeam.objects(school_id=world.school.id).count() == 0


def test_an_archived_projects_teams_import_unchanged_and_refuse_changes(world, pupils,
                                                                        project, tmp_path):
    header = ("project", "team", "member", "role")
    path = write_csv(tmp_path / "teams.csv", header, [("fair", "Bots", key(pupils[0]), "")])
    assert run("project-teams", path, world.school).count("created") == 1
    Project.objects(id=project.id).update(set__status="archived")  # teams not flagged yet
    before = snapshot(ProjectTeam, world.school.id)
    again = run("project-teams", path, world.school)
    assert (again.code, again.count("unchanged")) == (0, 1)
    changed = write_csv(tmp_path / "changed.csv", header, [
        ("fair", "Bots", key(pupils[1]), ""), ("fair", "New", key(pupils[2]), "")])
    refused = run("project-teams", changed, world.school)
    assert (refused.code, refused.count("rejected")) == (1, 2)
    assert set(refused.reasons().values()) == {
        "the project is archived: its teams are read-only"}
    assert snapshot(ProjectTeam, world.school.id) == before


def test_a_team_imported_while_its_project_is_archived_goes_again(world, pupils, project,
                                                                  tmp_path, monkeypatch):
    """The project was open when the batch read it and archived before the insert: the
    check after the insert removes the new team and rejects its rows."""
    from service import team_rosters_import

    original = team_rosters_import.TeamsPlan.write

    def archive_first(plan):
        Project.objects(id=project.id).update(set__status="archived")
        original(plan)

    monkeypatch.setattr(team_rosters_import.TeamsPlan, "write", archive_first)
    path = write_csv(tmp_path / "teams.csv", ("project", "team", "member"),
                     [("fair", "Bots", key(pupils[0]))])
    outcome = run("project-teams", path, world.school)
    assert (outcome.code, outcome.count("rejected")) == (1, 1)
    assert outcome.reasons()[2] == "the project is archived: its teams are read-only"
    assert ProjectTeam.objects(school_id=world.school.id).count() == 0

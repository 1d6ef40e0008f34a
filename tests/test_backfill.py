"""`rota backfill-project-teams` on a prepared legacy data set (tests/data/legacy_rosters.json):
teams from group members or inferred from participants, linked records, the report, dry run,
re-runs that change nothing, and convergence after a crash midway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bson import ObjectId

from documents.base import utcnow
from documents.projects import Project
from documents.team_rosters import (
    CourseGroup,
    Evaluation,
    NoteContext,
    ProjectAssessment,
    ProjectTeam,
)
from scripts.backfill import run_backfill
from service.team_rosters_backfill import TeamBackfill
from tests.helpers import unique

DATA = json.loads((Path(__file__).parent / "data" / "legacy_rosters.json").read_text())
EXPECTED = DATA["expected"]
KINDS = {"evaluations": Evaluation, "project_assessments": ProjectAssessment,
         "note_contexts": NoteContext}


class Legacy:
    """The data set loaded into one school, with its placeholder names resolved."""

    def __init__(self, world, school):
        self.school = school
        self.users = {name: world.add_user(school, "student", name=name.title())
                      for name in DATA["students"]}
        self.projects = {name: Project(school_id=school.id, name=name, slug=unique(name)).save()
                         for name in DATA["projects"]}
        self.groups = {name: CourseGroup(school_id=school.id, name=spec["name"], member_ids=[
            self.users[m].id for m in spec["members"]]).save().id
            for name, spec in DATA["groups"].items()}
        self.groups.update({name: ObjectId() for name in DATA["deleted_groups"]})
        for kind, model in KINDS.items():
            model._get_collection().insert_many([self.raw(row) for row in DATA[kind]])

    def raw(self, row: dict) -> dict:
        """A record as the old system stored it: no project team fields at all."""
        doc = {"school_id": self.school.id, "project_id": self.projects[row["project"]].id,
               "title": row["title"], "status": "draft", "created_at": utcnow()}
        if "group" in row:
            doc["group_id"] = self.groups[row["group"]]
        if "participants" in row:
            doc["participant_ids"] = [self.users[p].id for p in row["participants"]]
        return doc

    def ids(self, names) -> set[str]:
        return {str(self.users[name].id) for name in names}


@pytest.fixture
def legacy(world):
    return Legacy(world, world.school)


def backfill(dry_run=False, school_code=None) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run_backfill(dry_run=dry_run, school_code=school_code, echo=lines.append)
    return code, "\n".join(lines).splitlines()


def snapshot(school) -> dict:
    """Everything the backfill may write in the school, to compare runs."""
    collections = [ProjectTeam, *KINDS.values()]
    return {model.__name__: sorted(model._get_collection().find({"school_id": school.id}),
                                   key=lambda d: d["_id"]) for model in collections}


def team_of(legacy, key: str) -> ProjectTeam:
    project, group = key.split("/")
    return ProjectTeam.objects.get(school_id=legacy.school.id,
                                   project_id=legacy.projects[project].id,
                                   team_id=legacy.groups[group])


def test_backfill_creates_infers_links_and_reports_each_step(legacy):
    code, report = backfill()
    assert code == 0
    steps = [line for line in report if line.startswith("[")]
    assert [s[:5] for s in steps] == ["[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"]
    assert f"  Found {EXPECTED['evaluation_combinations']} evaluation-group combinations" \
        in report
    assert f"  Found {EXPECTED['assessment_combinations']} assessment-group combinations" \
        in report
    assert f"  Found {EXPECTED['unique_combinations']} unique project-group combinations" \
        in report
    assert f"  Created {EXPECTED['unique_combinations']} project_team records" in report
    assert f"  Added {EXPECTED['member_records']} team member records" in report
    assert f"  Used inference for {EXPECTED['inferred_teams']} teams (no group_members found)" \
        in report
    assert any("?backfill_source=inferred" in line for line in report)
    assert f"  Linked {EXPECTED['linked_evaluations']} evaluations" in report
    assert f"  Linked {EXPECTED['linked_assessments']} project assessments" in report
    assert f"  Linked {EXPECTED['linked_note_contexts']} project notes contexts" in report
    assert report[-2] == "BACKFILL COMPLETE"

    for key, spec in EXPECTED["teams"].items():
        team = team_of(legacy, key)
        assert team.backfill_source == spec["source"], key
        assert {str(u) for u in team.member_ids} == legacy.ids(spec["members"]), key
        assert team.display_name_at_time == spec.get("name", f"Group {team.team_id}")
        assert team.locked and team.team_version == 1
    assert ProjectTeam.objects(school_id=legacy.school.id).count() == len(EXPECTED["teams"])

    for model in KINDS.values():
        for record in model.objects(school_id=legacy.school.id, group_id__ne=None):
            team = ProjectTeam.objects.get(school_id=legacy.school.id, id=record.project_team_id)
            assert (team.project_id, team.team_id) == (record.project_id, record.group_id)
            assert record.member_ids == team.member_ids
    ungrouped = Evaluation.objects.get(school_id=legacy.school.id, title="Alpha kickoff (no group)")
    assert ungrouped.project_team_id is None


def test_a_second_run_changes_nothing(legacy):
    backfill()
    before = snapshot(legacy.school)
    code, report = backfill()
    assert code == 0
    assert "  Created 0 project_team records" in report
    assert "  Linked 0 evaluations" in report and "  Linked 0 project assessments" in report
    assert snapshot(legacy.school) == before


def test_dry_run_reports_and_writes_nothing(legacy):
    before = snapshot(legacy.school)
    code, report = backfill(dry_run=True)
    assert code == 0
    assert f"  Would create {EXPECTED['unique_combinations']} project_team records" in report
    assert f"  Would link {EXPECTED['linked_evaluations']} evaluations" in report
    assert report[-2] == "DRY RUN COMPLETE"
    assert snapshot(legacy.school) == before


def test_a_run_that_crashed_midway_converges(legacy, monkeypatch):
    def crash(self, model, teams):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(TeamBackfill, "link", crash)
        with pytest.raises(RuntimeError):
            backfill()
    assert ProjectTeam.objects(school_id=legacy.school.id).count() == len(EXPECTED["teams"])
    code, report = backfill()
    assert code == 0
    assert "  Created 0 project_team records (6 existed already)" in report
    assert f"  Linked {EXPECTED['linked_evaluations']} evaluations" in report
    assert ProjectTeam.objects(school_id=legacy.school.id).count() == len(EXPECTED["teams"])
    assert Evaluation.objects(school_id=legacy.school.id, group_id__ne=None,
                              project_team_id=None).count() == 0


def test_school_filter_and_unknown_school(world, legacy):
    other = Legacy(world, world.other_school)
    code, _ = backfill(school_code=world.other_school.code)
    assert code == 0
    assert ProjectTeam.objects(school_id=other.school.id).count() == len(EXPECTED["teams"])
    assert ProjectTeam.objects(school_id=legacy.school.id).count() == 0
    code, report = backfill(school_code="NO-SUCH-SCHOOL")
    assert code == 2 and "NO-SUCH-SCHOOL" in report[0]


def test_backfilled_teams_are_locked_for_the_api(client, world, legacy):
    backfill()
    team = team_of(legacy, "alpha/red")
    url = world.url(f"/project-teams/{team.id}/members")
    response = client.post(url, json={"members": [{"user_id": str(legacy.users["gus"].id)}]},
                           headers=world.headers("staff"))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "team_locked"
    shown = client.get(world.url(f"/project-teams/{team.id}"),
                       headers=world.headers("staff")).json
    assert shown["backfill_source"] == "backfill" and shown["member_count"] == 3
    trail = client.get(world.url("/audit?action=backfill"), headers=world.headers("admin")).json
    assert trail["total"] == len(EXPECTED["teams"])

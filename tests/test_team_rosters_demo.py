"""The demo seed of the team rosters module runs through the managers and shows each rule."""

from __future__ import annotations

from documents.team_rosters import CourseGroup, Evaluation, ProjectTeam
from scripts.demo_team_rosters import seed
from service.context import Actor, SchoolContext


def test_demo_seed_shows_a_locked_team_a_new_version_and_a_clone(world):
    admin = world.admin
    ctx = SchoolContext(actor=Actor(admin.id, admin.role, world.company.id, world.school.id),
                        school_id=world.school.id, company_id=world.company.id,
                        modules=frozenset({"team_rosters", "tracks"}))
    students = [world.add_user(world.school, "student") for _ in range(5)]
    seed(ctx, {"admin": admin, "staff": [world.staff], "students": students})

    teams = ProjectTeam.objects(school_id=world.school.id)
    red = {t.team_version: t for t in teams if t.display_name_at_time == "Red Team"
           and not t.lineage.startswith("clone:")}
    assert red[1].locked and not red[2].locked
    assert set(red[2].member_ids) - set(red[1].member_ids) == {students[-1].id}
    evaluation = Evaluation.objects.get(school_id=world.school.id)
    assert evaluation.status == "closed" and evaluation.member_ids == red[1].member_ids
    clones = [t for t in teams if t.lineage.startswith("clone:")]
    assert len(clones) == 3 and not any(t.locked for t in clones)
    halves = CourseGroup.objects(school_id=world.school.id,
                                 name__in=["Blue Team team 1", "Blue Team team 2"])
    assert sorted(len(g.member_ids) for g in halves) == [1, 2]

"""Demo data for the team rosters module: course groups, project teams made from them and a
custom one, an evaluation that locks a team, a new version, a clone into the next project,
and a course group split into two teams."""

from __future__ import annotations

from service.context import SchoolContext
from service.projects import Projects
from service.team_rosters import CourseGroups, ProjectTeams
from service.team_rosters_records import Evaluations, ProjectAssessments
from service.team_rosters_split import GroupSplits


def seed(ctx: SchoolContext, people: dict) -> None:
    students = people["students"]
    half = max(1, len(students) // 2)
    groups = CourseGroups(ctx)
    red = groups.create("Red Team", [s.id for s in students[:half]])
    blue = groups.create("Blue Team", [s.id for s in students[half:]])

    projects = Projects(ctx)
    fair = projects.create("Science Fair (team rosters demo)")
    next_fair = projects.create("Science Fair follow-up (team rosters demo)")

    teams = ProjectTeams(ctx)
    red_team = teams.create(fair.id, team_id=red.id)
    teams.create(fair.id, team_id=blue.id)
    crew = teams.create(fair.id, team_name="Research crew")
    teams.add_members(crew["id"], [{"user_id": s.id, "role": role}
                                   for s, role in zip(students[:2], ("Lead researcher",
                                                                     "Analyst"), strict=False)])

    review = Evaluations(ctx).create(fair.id, red_team["id"], "Mid-project review")
    Evaluations(ctx).close(review["id"])
    ProjectAssessments(ctx).create(fair.id, crew["id"], "Research plan assessment")
    second = teams.new_version(red_team["id"])
    if len(students) > half + 1:
        teams.add_members(second["id"], [{"user_id": students[-1].id, "role": "Joined late"}])

    teams.clone(next_fair.id, fair.id)
    if len(blue.member_ids) >= 2:
        GroupSplits(ctx).split(blue.id, teams=2, seed=2026)

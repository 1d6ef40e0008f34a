"""Reading a team's history: what changed between two versions, and which team version a
student was in for each evaluation. Reads only, each a constant number of round trips."""

from __future__ import annotations

from documents.accounts import User
from documents.team_rosters import Evaluation, ProjectTeam
from service.errors import NotFound, ValidationFailed
from service.ids import object_id
from service.team_rosters import RosterService


def people(user_ids, roles: dict, names: dict) -> list[dict]:
    return [{"user_id": uid, "name": names.get(uid), "role": roles.get(uid)} for uid in user_ids]


class TeamHistory(RosterService):
    """Version diffs and a student's teams per evaluation."""

    def diff(self, team_id, other_id) -> dict:
        """From version `team_id` to version `other_id` of one team: who was added, who was
        removed, whose role changed. Two teams that are not versions of one team (another
        lineage or project) are a 422 `not_same_team`: the request names a pair that has no
        diff."""
        team, other = self.team(team_id), self.team(other_id)
        if (team.project_id, team.lineage) != (other.project_id, other.lineage):
            raise ValidationFailed(
                "These are not two versions of the same team.",
                {"other_id": [f"Not a version of team '{team.display_name_at_time}'."]},
                code="not_same_team")
        before = {m.user_id: m.role for m in team.members}
        after = {m.user_id: m.role for m in other.members}
        names = self.names_of([*before, *after])
        changed = [uid for uid in after if uid in before and before[uid] != after[uid]]
        return {"project_team_id": team.id, "other_id": other.id,
                "from_version": team.team_version, "to_version": other.team_version,
                "added": people([u for u in after if u not in before], after, names),
                "removed": people([u for u in before if u not in after], before, names),
                "role_changed": [{"user_id": uid, "name": names.get(uid),
                                  "role_before": before[uid], "role": after[uid]}
                                 for uid in changed]}

    def student_teams(self, user_id) -> list[dict]:
        """For each evaluation whose locked roster includes the student, newest first: the
        team version it linked and that version's members. Then each team the student is in
        now (the newest version of its team) that no listed evaluation links, without
        `evaluation_id`. Students may ask only about themselves. Five reads in all."""
        uid = object_id(user_id, "student")
        if self.is_student and uid != self.actor.user_id:
            raise NotFound(f"No student with id {user_id!r}.")
        if not User.objects.for_school(self.school_id).filter(id=uid).count():
            raise NotFound(f"No student with id {user_id!r}.")
        evaluations = list(Evaluation.objects.for_school(self.school_id).filter(
            member_ids=uid, project_team_id__ne=None).order_by("-created_at", "-id").only(
            "id", "title", "status", "project_id", "project_team_id", "team_version",
            "member_ids").batch_size(10000))
        teams = {team.id: team for team in ProjectTeam.objects.for_school(self.school_id)
                 .filter(member_ids=uid).batch_size(10000)}
        current = self._current_without_evaluation(teams, {e.project_team_id
                                                           for e in evaluations})
        names = self.names_of([*(u for e in evaluations for u in e.member_ids),
                               *(u for t in current for u in t.member_ids)])
        items = [self._evaluation_item(e, teams.get(e.project_team_id), names)
                 for e in evaluations]
        return items + [self._team_item(team, names) for team in current]

    def _current_without_evaluation(self, teams: dict, linked: set) -> list[ProjectTeam]:
        """The student's teams that are the newest version of their team and that none of
        the student's evaluations links."""
        if not teams:
            return []
        versions = ProjectTeam.objects.for_school(self.school_id).filter(
            project_id__in=list({t.project_id for t in teams.values()}),
            lineage__in=list({t.lineage for t in teams.values()})).only(
            "project_id", "lineage", "team_version").batch_size(10000)
        newest: dict[tuple, int] = {}
        for team in versions:
            key = (team.project_id, team.lineage)
            newest[key] = max(newest.get(key, 0), team.team_version)
        return sorted((team for team in teams.values() if team.id not in linked
                       and newest.get((team.project_id, team.lineage)) == team.team_version),
                      key=lambda t: (t.display_name_at_time, t.lineage))

    @staticmethod
    def _evaluation_item(evaluation: Evaluation, team: ProjectTeam | None,
                         names: dict) -> dict:
        roles = {m.user_id: m.role for m in team.members} if team else {}
        return {"evaluation_id": evaluation.id, "evaluation_title": evaluation.title,
                "evaluation_status": evaluation.status, "project_id": evaluation.project_id,
                "project_team_id": evaluation.project_team_id,
                "version": evaluation.team_version,
                "team_name": team.display_name_at_time if team else None,
                "members": people(evaluation.member_ids, roles, names)}

    @staticmethod
    def _team_item(team: ProjectTeam, names: dict) -> dict:
        return {"project_id": team.project_id, "project_team_id": team.id,
                "version": team.team_version, "team_name": team.display_name_at_time,
                "members": people(team.member_ids, {m.user_id: m.role for m in team.members},
                                  names)}

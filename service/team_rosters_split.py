"""Splitting a course group into N teams (or teams of about K), each a new course group.

The plan is a pure function of the members, the number of teams, the seed and the attribute
to balance by (`plan_split`), so a preview (`dry_run`) with a seed is exactly what the same
request without `dry_run` writes. Members are dealt round-robin: team sizes differ by at most
one; balanced by an attribute, each attribute value's people are dealt consecutively, so each
value's count also differs by at most one between teams.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence

from bson import ObjectId

from documents.accounts import User
from documents.base import utcnow
from documents.team_rosters import CourseGroup
from service import audit
from service.context import STAFF_ROLES
from service.errors import ValidationFailed
from service.team_rosters import RosterService

BALANCE_ATTRIBUTES = ("department", "role")
MAX_SEED = 2**31 - 1


def plan_split(members: Sequence[tuple[Hashable, str | None]], teams: int, seed: int,
               balance: bool = False) -> list[list[Hashable]]:
    """`members` as (id, attribute value) in a stable order; answers `teams` lists of ids.
    Shuffled by `seed`; with `balance`, grouped by attribute value (shuffled within each)
    before dealing, so each value is spread evenly too."""
    order = list(members)
    random.Random(seed).shuffle(order)
    if balance:
        order.sort(key=lambda member: (member[1] is None, member[1] or ""))
    dealt: list[list[Hashable]] = [[] for _ in range(teams)]
    for position, (member_id, _) in enumerate(order):
        dealt[position % teams].append(member_id)
    return dealt


def team_count(members: int, teams: int | None, size: int | None) -> int:
    """N teams as asked, or as many as teams of `size` need (sizes then differ by at most one,
    so some teams have one less than `size`). 422 for both, neither, or more teams than
    members."""
    if (teams is None) == (size is None):
        raise ValidationFailed("Give either teams or size.",
                               {"teams": ["Give teams or size, not both."],
                                "size": ["Give teams or size, not both."]})
    count = teams if teams is not None else math.ceil(members / size)
    if members == 0 or count > members:
        raise ValidationFailed(f"The group has {members} members: too few for {count} teams.",
                               {"teams" if teams is not None else "size":
                                [f"The group has {members} members."]})
    return count


class GroupSplits(RosterService):
    """`POST S/groups/{id}/split`."""

    def split(self, group_id, teams: int | None = None, size: int | None = None,
              seed: int | None = None, balance_by: str | None = None,
              dry_run: bool = False) -> dict:
        """New course groups "<name> team 1..N" from the group's active members; the group
        itself stays. Without a seed, one is drawn and answered, so a preview can be
        committed as shown by sending it back."""
        self.require_role(STAFF_ROLES)
        group = self.get(CourseGroup, group_id, "group")
        users = {user.id: user for user in User.objects.for_school(self.school_id).filter(
            id__in=group.member_ids, is_active=True).only("id", "name", *BALANCE_ATTRIBUTES)}
        members = [(uid, getattr(users[uid], balance_by) if balance_by else None)
                   for uid in sorted(users)]
        count = team_count(len(members), teams, size)
        seed = random.randint(0, MAX_SEED) if seed is None else seed
        plan = plan_split(members, count, seed, balance=balance_by is not None)
        now = utcnow()
        made = [CourseGroup(id=None if dry_run else ObjectId(), school_id=self.school_id,
                            name=f"{group.name} team {number}", member_ids=ids,
                            created_at=now, updated_at=now)
                for number, ids in enumerate(plan, start=1)]
        if not dry_run:
            CourseGroup.objects.insert(made, load_bulk=False)
            audit.record_many([audit.audit_event(
                self.actor, self.school_id, "split", "course_group", new.id,
                after={"from_group_id": group.id, "name": new.name, "member_ids": new.member_ids,
                       "seed": seed, "balance_by": balance_by}) for new in made])
        return {"source_group_id": group.id, "seed": seed, "balance_by": balance_by,
                "dry_run": dry_run,
                "teams": [{"id": new.id, "name": new.name, "member_ids": new.member_ids,
                           "members": [{"user_id": uid, "name": users[uid].name,
                                        "value": getattr(users[uid], balance_by)
                                        if balance_by else None}
                                       for uid in new.member_ids]}
                          for new in made]}

"""The `course-groups` and `project-teams` kinds of `rota import` / `rota export` (see
service/imports.py). One row per member; a group or team without members is one row with an
empty `member`. `member` is a user's external_id or email (exported as external_id when the
user has one). A group's (team's) rows always share a batch (`group_by`), and the group (team)
is written whole or not at all: one unknown member rejects every row of it.

Idempotent: a group (team) whose members (and roles) equal the file's is UNCHANGED and
nothing is written, so export -> import reports every row unchanged.

- course groups are found by name (two groups of one name: their rows are rejected); a
  changed group's members are replaced by the file's;
- project teams by (project slug, team display name), the newest version of that team. A
  changed team that is still unlocked gets the file's members in one update whose filter says
  `locked: False`; a locked one (records link it) gets a new version with them instead, under
  the unique version index (a parallel import's twin is refused: re-run the file).

A team of an archived project (or sub-project) is read-only: its unit is rejected unless it
is unchanged. Edits match only `archived: {$ne: True}`, and new teams and versions check the
projects again after their insert and go again if one got archived meanwhile, as
service/team_rosters.py does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne

from documents.accounts import User
from documents.base import utcnow
from documents.connection import insert_unique
from documents.projects import Project
from documents.team_rosters import CourseGroup, ProjectTeam
from service import audit
from service.context import SchoolContext
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row, RowResult

ARCHIVED = "the project is archived: its teams are read-only"

# ------------------------------------------------------------------------- shared


def people_by_key(ctx: SchoolContext, rows: list[Row]) -> dict[str, ObjectId]:
    """external_id or (lower case) email -> user id, for the members the rows name: one read."""
    keys = {row.values["member"] for row in rows if "member" in row.values}
    if not keys:
        return {}
    users = User.objects.for_school(ctx.school_id).filter(
        __raw__={"$or": [{"external_id": {"$in": list(keys)}},
                         {"email": {"$in": [k.lower() for k in keys]}}]},
        is_active=True).only("id", "email", "external_id")
    found = {}
    for user in users:
        found[user.email] = user.id
        if user.external_id:
            found[user.external_id] = user.id
    return found


def member_key(user: dict) -> str:
    return user.get("external_id") or user["email"]


def school_member_keys(ctx: SchoolContext, user_ids) -> dict[ObjectId, str]:
    users = User.objects.for_school(ctx.school_id).filter(id__in=list(set(user_ids))).only(
        "id", "email", "external_id").as_pymongo().batch_size(10000)
    return {user["_id"]: member_key(user) for user in users}


def resolve(rows: list[Row], people: dict) -> tuple[list[tuple], str | None]:
    """The unit's (user id, role) in file order, or the reason it is rejected."""
    unknown = [row.values["member"] for row in rows if "member" in row.values
               and people.get(row.values["member"],
                              people.get(row.values["member"].lower())) is None]
    if unknown:
        return [], f"unknown member(s): {', '.join(unknown)} (rows of this unit not imported)"
    members = []
    for row in rows:
        if "member" in row.values:
            key = row.values["member"]
            members.append((people.get(key, people.get(key.lower())), row.values.get("role")))
    return members, None


def results_for(rows: list[Row], status: str, key: str, reason: str | None = None):
    return [RowResult(row.line, status, reason, key) for row in rows]


def units(rows: list[Row], *columns: str) -> dict[tuple, list[Row]]:
    grouped: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[tuple(row.values[c] for c in columns)].append(row)
    return grouped


# ------------------------------------------------------------------------- course groups


def import_course_groups(ctx: SchoolContext, rows: list[Row], dry_run: bool) -> list[RowResult]:
    """Three reads (people, groups) and up to three writes (insert, update, audit) a batch."""
    people = people_by_key(ctx, rows)
    wanted = units(rows, "group")
    stored: dict[str, list] = defaultdict(list)
    for group in CourseGroup.objects.for_school(ctx.school_id).filter(
            name__in=[name for (name,) in wanted]).only("id", "name", "member_ids"):
        stored[group.name].append(group)
    results, inserts, updates, events = [], [], [], []
    now = utcnow()
    for (name,), unit in wanted.items():
        members, reason = resolve(unit, people)
        if reason is None and len(stored[name]) > 1:
            reason = f"several groups are named {name!r}"
        if reason:
            results += results_for(unit, REJECTED, name, reason)
            continue
        ids = list(dict.fromkeys(uid for uid, _ in members))
        if not stored[name]:
            doc = {"_id": ObjectId(), "school_id": ctx.school_id, "name": name,
                   "member_ids": ids, "created_at": now, "updated_at": now}
            inserts.append(doc)
            events.append(audit.audit_event(ctx.actor, ctx.school_id, "import_create",
                                            "course_group", doc["_id"],
                                            after={"name": name, "member_ids": ids}))
            results += results_for(unit, CREATED, name)
        elif set(stored[name][0].member_ids) == set(ids):
            results += results_for(unit, UNCHANGED, name)
        else:
            group = stored[name][0]
            updates.append(UpdateOne({"_id": group.id, "school_id": ctx.school_id},
                                     {"$set": {"member_ids": ids, "updated_at": now}}))
            events.append(audit.audit_event(ctx.actor, ctx.school_id, "import_update",
                                            "course_group", group.id,
                                            before={"member_ids": group.member_ids},
                                            after={"member_ids": ids}))
            results += results_for(unit, UPDATED, name)
    if not dry_run:
        insert_unique(CourseGroup._get_collection(), inserts)
        if updates:
            CourseGroup._get_collection().bulk_write(updates, ordered=False)
        audit.record_many(events)
    return results


def export_course_groups(ctx: SchoolContext) -> Iterator[dict[str, str]]:
    groups = list(CourseGroup.objects.for_school(ctx.school_id).order_by("name", "id").only(
        "name", "member_ids").batch_size(10000))
    keys = school_member_keys(ctx, [uid for g in groups for uid in g.member_ids])
    for group in groups:
        members = [keys[uid] for uid in group.member_ids if uid in keys]
        yield from ({"group": group.name, "member": key} for key in members or [""])


# ------------------------------------------------------------------------- project teams


def import_project_teams(ctx: SchoolContext, rows: list[Row], dry_run: bool) -> list[RowResult]:
    """Four reads (people, projects, teams) and up to five writes a batch."""
    people = people_by_key(ctx, rows)
    wanted = units(rows, "project", "team")
    found_projects = list(Project.objects.for_school(ctx.school_id).filter(
        slug__in=list({slug for slug, _ in wanted})).only("id", "slug", "status"))
    projects = {p.slug: p.id for p in found_projects}
    archived = {p.slug for p in found_projects if p.status == "archived"}
    newest = _newest_teams(ctx, list(projects.values()))
    plan = TeamsPlan(ctx)
    for (slug, name), unit in wanted.items():
        key = f"{slug}/{name}"
        members, reason = resolve(unit, people)
        if reason is None and slug not in projects:
            reason = f"unknown project {slug!r}"
        found = newest.get((projects.get(slug), name), [])
        if reason is None and len(found) > 1:
            reason = f"several teams of project {slug!r} are named {name!r}"
        if reason:
            plan.results += results_for(unit, REJECTED, key, reason)
            continue
        plan.add(unit, key, projects[slug], name, members, found[0] if found else None,
                 archived=slug in archived)
    if not dry_run:
        plan.write()
    return plan.results


def _newest_teams(ctx: SchoolContext, project_ids: list) -> dict[tuple, list[ProjectTeam]]:
    """(project id, display name) -> the newest version of each team of that name."""
    latest: dict[tuple, ProjectTeam] = {}
    for team in ProjectTeam.objects.for_school(ctx.school_id).filter(
            project_id__in=project_ids).order_by("team_version").batch_size(10000):
        latest[(team.project_id, team.lineage)] = team
    named: dict[tuple, list[ProjectTeam]] = defaultdict(list)
    for team in latest.values():
        named[(team.project_id, team.display_name_at_time)].append(team)
    return named


class TeamsPlan:
    """What a batch of project-team units writes: new teams, roster replacements of unlocked
    teams, new versions of locked ones."""

    def __init__(self, ctx: SchoolContext):
        self.ctx = ctx
        self.now = utcnow()
        self.results: list[RowResult] = []
        self.inserts: list[tuple[list[Row], str, dict]] = []  # unit, key, team document
        self.edits: list[tuple[list[Row], str, ProjectTeam, dict]] = []
        self.events: list[tuple[str, object]] = []  # unit key, audit event

    def add(self, unit, key, project_id, name, members, team: ProjectTeam | None,
            archived: bool = False) -> None:
        roster = [{"user_id": uid, "role": role, "added_at": self.now}
                  for uid, role in dict(members).items()]
        unchanged = team is not None and {(m.user_id, m.role) for m in team.members} == {
            (m["user_id"], m["role"]) for m in roster}
        if not unchanged and (archived or (team is not None and team.archived)):
            self.results += results_for(unit, REJECTED, key, ARCHIVED)
        elif team is None:
            oid = ObjectId()
            self.inserts.append((unit, key, self._team(oid, project_id, str(oid), 1, name,
                                                       None, roster)))
            self._event(key, "import_create", oid, None, roster)
            self.results += results_for(unit, CREATED, key)
        elif unchanged:
            self.results += results_for(unit, UNCHANGED, key)
        elif team.locked:
            oid = ObjectId()
            self.inserts.append((unit, key, self._team(
                oid, project_id, team.lineage, team.team_version + 1, name, team.team_id,
                roster)))
            self._event(key, "import_update", oid, team, roster)
            self.results += results_for(unit, UPDATED, key)
        else:
            self.edits.append((unit, key, team, roster))
            self._event(key, "import_update", team.id, team, roster)
            self.results += results_for(unit, UPDATED, key)

    def _team(self, oid, project_id, lineage, number, name, group_id, roster) -> dict:
        return {"_id": oid, "school_id": self.ctx.school_id, "project_id": project_id,
                "lineage": lineage, "team_version": number, "team_id": group_id,
                "display_name_at_time": name, "members": roster,
                "member_ids": [m["user_id"] for m in roster], "members_version": 0,
                "locked": False, "superseded": False, "created_at": self.now,
                "updated_at": self.now, "version": 0}

    def _event(self, key, action, team_id, before: ProjectTeam | None, roster) -> None:
        self.events.append((key, audit.audit_event(
            self.ctx.actor, self.ctx.school_id, action, "project_team", team_id,
            before={"member_ids": before.member_ids, "version": before.team_version}
            if before else None,
            after={"member_ids": [m["user_id"] for m in roster]})))

    def write(self) -> None:
        collection = ProjectTeam._get_collection()
        refused = insert_unique(collection, [doc for _, _, doc in self.inserts])
        lost = [(unit, key) for index, (unit, key, _) in enumerate(self.inserts)
                if index in refused]
        archived = self._inserted_while_archived(refused)
        gone = {key for _, key in archived}
        newer = [doc for index, (_, key, doc) in enumerate(self.inserts)
                 if index not in refused and key not in gone and doc["team_version"] > 1]
        if newer:
            collection.bulk_write([UpdateMany(
                {"school_id": self.ctx.school_id, "project_id": doc["project_id"],
                 "lineage": doc["lineage"], "team_version": {"$lt": doc["team_version"]}},
                {"$set": {"superseded": True}, "$inc": {"version": 1}}) for doc in newer])
        if self.edits:
            result = collection.bulk_write([UpdateOne(
                {"_id": team.id, "school_id": self.ctx.school_id, "locked": False,
                 "archived": {"$ne": True}, "members_version": team.members_version},
                {"$set": {"members": roster, "member_ids": [m["user_id"] for m in roster],
                          "updated_at": self.now},
                 "$inc": {"members_version": 1, "version": 1}})
                for _, _, team, roster in self.edits], ordered=False)
            if result.modified_count < len(self.edits):
                lost += self._edits_lost()
        lost_keys = {key for _, key in lost + archived}
        audit.record_many([event for key, event in self.events if key not in lost_keys])
        self._reject_lost(lost)
        self._reject_lost(archived, ARCHIVED)

    def _inserted_while_archived(self, refused) -> list[tuple]:
        """The inserted teams whose project got archived meanwhile, removed again (inserted
        before the archive flagged its teams, they would be flagged; this read sees it)."""
        inserted = [(unit, key, doc) for index, (unit, key, doc) in enumerate(self.inserts)
                    if index not in refused]
        if not inserted:
            return []
        project_ids = list({doc["project_id"] for _, _, doc in inserted})
        closed = set(Project.objects.for_school(self.ctx.school_id).filter(
            id__in=project_ids, status="archived").scalar("id"))
        gone = [(unit, key, doc) for unit, key, doc in inserted if doc["project_id"] in closed]
        if gone:
            ProjectTeam._get_collection().delete_many(
                {"_id": {"$in": [d["_id"] for *_, d in gone]}, "school_id": self.ctx.school_id})
        return [(unit, key) for unit, key, _ in gone]

    def _edits_lost(self) -> list[tuple]:
        """The edits whose team was locked or changed by someone else meanwhile."""
        landed = {(team["_id"], team["members_version"]) for team in ProjectTeam._get_collection()
                  .find({"school_id": self.ctx.school_id,
                         "_id": {"$in": [team.id for _, _, team, _ in self.edits]}},
                        {"members_version": 1})}
        return [(unit, key) for unit, key, team, _ in self.edits
                if (team.id, team.members_version + 1) not in landed]

    def _reject_lost(self, lost: list[tuple],
                     reason: str = "the team changed while this ran; re-run the file") -> None:
        lines = {row.line: key for unit, key in lost for row in unit}
        self.results = [RowResult(r.line, REJECTED, reason, r.key) if r.line in lines else r
                        for r in self.results]


def export_project_teams(ctx: SchoolContext) -> Iterator[dict[str, str]]:
    """The newest version of every team, by project slug and team name."""
    slugs = {p.id: p.slug for p in Project.objects.for_school(ctx.school_id).only("id", "slug")}
    named = _newest_teams(ctx, list(slugs))
    teams = sorted((team for found in named.values() for team in found),
                   key=lambda t: (slugs[t.project_id], t.display_name_at_time, t.lineage))
    keys = school_member_keys(ctx, [uid for t in teams for uid in t.member_ids])
    for team in teams:
        rows = [{"project": slugs[team.project_id], "team": team.display_name_at_time,
                 "member": keys[m.user_id], "role": m.role or ""}
                for m in team.members if m.user_id in keys]
        yield from rows or [{"project": slugs[team.project_id],
                             "team": team.display_name_at_time, "member": "", "role": ""}]

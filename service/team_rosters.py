"""Course groups and project teams (frozen rosters: locking, versions, cloning). Beside this:
the records that link a team (service/team_rosters_records.py), deleting teams (_deletion),
version diffs and a student's teams (_history), corrections and late joiners (_changes),
splitting a group (_split), import and export (_import), the backfill (_backfill).

A team version is one aggregate (documents/team_rosters.py) and every change to it is one
conditional update whose filter states the rule (service/aggregates.update_where): a roster
edit matches only `locked: False` (and, to add people, a team none of them is in yet; to
remove someone, a team they are in); a link matches only `locked: False`, sets `locked: True`
and answers the roster it froze. Whichever lands first wins, so a linked record always names
a roster that can no longer change, and no edit lands after the lock.

Linking writes two documents, the team first (lock), then the record with the locked roster.
A crash in between leaves a locked team that nothing links to: harmless, its roster is a
valid snapshot and POST .../versions makes an unlocked copy, so `rota repair` leaves it
(after a while it can be deleted: service/team_rosters_deletion.py).

Versions of one team share a `lineage`; a new version is inserted as latest + 1 under the
unique (project, lineage, team_version) index (a parallel twin retries with the next number),
then the older versions are marked `superseded`. A link matches only `superseded: False` and
also checks for a newer version (a crash before the mark leaves it unset), so new records
always take the newest version; records linked before keep theirs.

An archived project's teams are read-only (409 `project_archived`): archiving flags every
version `archived` (service/projects.py, after the tracks), and every edit, lock and delete
filters on `archived: {$ne: True}`, so none lands after the flag. A version being inserted
(a new team, a new version, a correction, a late joiner, a clone) checks the project again
after its insert and removes itself if it got archived meanwhile: it was either inserted
before the archive flagged the teams (then flagged too), or it sees the archive.
"""

from __future__ import annotations

from bson import ObjectId
from mongoengine.errors import NotUniqueError

from documents.accounts import User
from documents.audit import Notification
from documents.base import utcnow
from documents.connection import insert_unique
from documents.projects import Project
from documents.team_rosters import (
    CourseGroup,
    ProjectTeam,
    TeamMember,
)
from service import audit, notifications, preconditions, webhooks
from service.aggregates import ATTEMPTS, update_where
from service.base import SchoolService
from service.context import STAFF_ROLES
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import field_object_id, object_id, unique_ids
from service.pagination import Page, paginate, paginate_list
from service.team_rosters_deletion import ProjectTeamsDeletion, project_archived

VERSION_ATTEMPTS = 10
# The API's names for the stored `backfill_source` values (documents/team_rosters.py).
BACKFILL_FILTERS = {"group": "backfill", "inferred": "inference"}


def member_dict(member: TeamMember, names: dict) -> dict:
    return {"user_id": member.user_id, "name": names.get(member.user_id), "role": member.role,
            "added_at": member.added_at}


def team_dict(team: ProjectTeam, names: dict) -> dict:
    """A team as the API shows it: the document plus its members' names."""
    return {"id": team.id, "project_id": team.project_id, "lineage": team.lineage,
            "version": team.team_version, "team_id": team.team_id,
            "display_name_at_time": team.display_name_at_time,
            "members": [member_dict(m, names) for m in team.members],
            "member_count": len(team.members), "members_version": team.members_version,
            "locked": team.locked, "locked_at": team.locked_at,
            "locked_reason": team.locked_reason, "backfill_source": team.backfill_source,
            "superseded": team.superseded, "archived": bool(team.archived),
            "created_at": team.created_at, "updated_at": team.updated_at}


class RosterService(SchoolService):
    """Lookups the team roster managers share."""

    def project(self, project_id) -> Project:
        return self.get(Project, project_id, "project")

    def body_project(self, project_id, field: str = "project_id") -> Project:
        """A project named in a request body: unknown (or another school's) is a 422."""
        project = Project.objects.for_school(self.school_id).filter(
            id=field_object_id(project_id, field)).first()
        if project is None:
            raise ValidationFailed(f"{field} is not a project of this school.",
                                   {field: ["Not a project of this school."]})
        return project

    def project_is_archived(self, project_id) -> bool:
        """Whether the project, or for a sub-project its project, is archived: one read, two
        for a sub-project."""
        project = Project.objects.for_school(self.school_id).filter(id=project_id).only(
            "status", "parent_id").first()
        if project is None or project.status == "archived":
            return project is not None
        return project.parent_id is not None and Project.objects.for_school(
            self.school_id).filter(id=project.parent_id, status="archived").count() > 0

    def refuse_if_archived(self, project_id) -> None:
        if self.project_is_archived(project_id):
            raise project_archived(project_id)

    def school_users(self, ids: list[ObjectId], field: str) -> dict[ObjectId, User]:
        """The named users of this school in one query; 422 naming any that are not."""
        found = {user.id: user for user in User.objects.for_school(self.school_id).filter(
            id__in=ids, is_active=True).only("id", "name")}
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise ValidationFailed(f"{field} names people who are not users of this school.",
                                   {field: [f"Not a user of this school: {', '.join(missing)}."]})
        return found

    def names_of(self, user_ids) -> dict[ObjectId, str]:
        ids = list(set(user_ids))
        if not ids:
            return {}
        users = User.objects.for_school(self.school_id).filter(id__in=ids).only(
            "id", "name").batch_size(10000)
        return {user.id: user.name for user in users}

    @property
    def is_student(self) -> bool:
        return self.actor.role == "student"

    def visible_teams(self):
        """Students see only the teams they are in; staff and admins see every team."""
        teams = ProjectTeam.objects.for_school(self.school_id)
        if self.is_student:
            teams = teams.filter(member_ids=self.actor.user_id)
        return teams

    def team(self, team_id) -> ProjectTeam:
        team = self.visible_teams().filter(id=object_id(team_id, "project team")).first()
        if team is None:
            raise NotFound(f"No project team with id {team_id!r}.")
        return team


class CourseGroups(RosterService):
    """Mutable course groups: the source project teams copy their members from."""

    def create(self, name: str, member_ids: list) -> CourseGroup:
        self.require_role(STAFF_ROLES)
        ids = unique_ids(member_ids, "member_ids")
        self.school_users(ids, "member_ids")
        group = CourseGroup(school_id=self.school_id, name=name, member_ids=ids).save()
        self.audit("create", "course_group", group.id,
                   after={"name": name, "member_ids": ids})
        return group

    def list(self, page: int = 1, page_size: int = 50) -> Page:
        self.require_role(STAFF_ROLES)
        groups = CourseGroup.objects.for_school(self.school_id).order_by("name", "id")
        return paginate(groups, page, page_size)

    def detail(self, group_id) -> CourseGroup:
        self.require_role(STAFF_ROLES)
        return self.get(CourseGroup, group_id, "group")

    def replace_members(self, group_id, member_ids: list) -> CourseGroup:
        self.require_role(STAFF_ROLES)
        group = self.get(CourseGroup, group_id, "group")
        ids = unique_ids(member_ids, "member_ids")
        self.school_users(ids, "member_ids")
        before = self._group_where(group).modify(set__member_ids=ids, set__updated_at=utcnow(),
                                                 inc__version=1)
        if before is None:
            self._refused(group, group_id)
        preconditions.written(group.id)
        self.audit("replace_members", "course_group", group.id,
                   before={"member_ids": before.member_ids}, after={"member_ids": ids})
        return self.get(CourseGroup, group.id, "group")

    def _group_where(self, group: CourseGroup):
        """The group, at the version If-Match names when the request sent one."""
        return CourseGroup.objects.for_school(self.school_id).filter(
            id=group.id, __raw__=preconditions.guard(group.id))

    def _refused(self, group: CourseGroup, group_id) -> None:
        current = CourseGroup.objects.for_school(self.school_id).filter(id=group.id) \
            .only("version").first()
        if current is not None:
            preconditions.check(group.id, current.version)  # If-Match: 412
        raise NotFound(f"No group with id {group_id!r}.")

    def delete(self, group_id) -> None:
        """Project teams made from the group keep their members and their `team_id`."""
        self.require_role(STAFF_ROLES)
        group = self.get(CourseGroup, group_id, "group")
        if not self._group_where(group).delete():
            self._refused(group, group_id)
        self.audit("delete", "course_group", group.id,
                   before={"name": group.name, "member_ids": group.member_ids})


class ProjectTeams(RosterService):
    """Project teams: snapshots of a roster per project, locked once anything links to them."""

    def create(self, project_id, team_id=None, team_name: str | None = None) -> dict:
        """A new team, or, from a group that already has a team in this project, the next
        version of that team (never a second version 1)."""
        self.require_role(STAFF_ROLES)
        project = self.project(project_id)
        if team_id is None and not team_name:
            raise ValidationFailed("Give team_id (a course group) or team_name.",
                                   {"team_id": ["Give team_id or team_name."],
                                    "team_name": ["Give team_id or team_name."]})
        group = self._source_group(team_id) if team_id is not None else None
        now = utcnow()
        members = [TeamMember(user_id=uid, added_at=now) for uid in (group.member_ids
                                                                      if group else [])]

        def make(lineage: str, team_version: int, oid: ObjectId) -> ProjectTeam:
            return ProjectTeam(
                id=oid, school_id=self.school_id, project_id=project.id, lineage=lineage,
                team_version=team_version, team_id=group.id if group else None,
                display_name_at_time=team_name or group.name, members=members,
                member_ids=[m.user_id for m in members], created_at=now, updated_at=now)

        team = self.insert_version(project.id, self._group_lineage(project.id, group), make)
        self._take_back_if_project_closing(team)
        self.audit("create", "project_team", team.id,
                   after={"project_id": project.id, "team_id": team.team_id,
                          "version": team.team_version,
                          "display_name_at_time": team.display_name_at_time,
                          "member_ids": team.member_ids})
        return self._present(team)

    def _group_lineage(self, project_id, group: CourseGroup | None) -> str | None:
        """The lineage of the newest team made from `group` in the project (backfilled and
        cloned teams count), else "group:<id>": parallel first creates share it, so the
        unique version index makes them v1 and v2. None: a custom team's own new lineage."""
        if group is None:
            return None
        newest = ProjectTeam.objects.for_school(self.school_id).filter(
            project_id=project_id, team_id=group.id).order_by(
            "-team_version", "-created_at").only("lineage").first()
        return newest.lineage if newest else f"group:{group.id}"

    def _take_back_if_project_closing(self, team: ProjectTeam) -> None:
        """A team inserted while its project is being deleted goes again (a team the project's
        delete did not see would outlive the project)."""
        if not ProjectTeamsDeletion(self.ctx).gone_or_closing(team.project_id):
            return
        ProjectTeam.objects.for_school(self.school_id).filter(id=team.id, locked=False).delete()
        raise Conflict("The project is being deleted; no teams can be added to it.",
                       code="project_deleting", details={"project_id": str(team.project_id)})

    def insert_version(self, project_id, lineage: str | None, make) -> ProjectTeam:
        """Insert `make(lineage, latest version + 1, new id)` (a new lineage when None: the
        team's own id), then mark the lineage's older versions superseded. A parallel twin
        that took the same number makes the unique (project, lineage, team_version) index
        refuse this insert, which then takes the next number. Under an archived project: 409
        `project_archived`, also when it is archived while this inserts (checked again after
        the insert, which is then removed)."""
        self.refuse_if_archived(project_id)
        for _ in range(VERSION_ATTEMPTS):
            oid = ObjectId()
            latest = None if lineage is None else ProjectTeam.objects.for_school(
                self.school_id).filter(project_id=project_id, lineage=lineage).order_by(
                "-team_version").only("team_version").first()
            team = make(lineage or str(oid), latest.team_version + 1 if latest else 1, oid)
            try:
                team.save(force_insert=True)
                break
            except NotUniqueError:
                continue
        else:
            raise Conflict("Others are making versions of this team right now; try again.",
                           code="version_busy")
        if self.project_is_archived(project_id):
            ProjectTeam.objects.for_school(self.school_id).filter(id=team.id).delete()
            raise project_archived(project_id)
        if team.team_version > 1:
            # A crash before this leaves older versions unmarked; linking also checks for a
            # newer version (`_refuse_superseded`), so nothing depends on the mark alone.
            ProjectTeam._get_collection().update_many(
                {"school_id": self.school_id, "project_id": project_id,
                 "lineage": team.lineage, "team_version": {"$lt": team.team_version},
                 "superseded": {"$ne": True}},
                {"$set": {"superseded": True}, "$inc": {"version": 1}})
        return team

    def _source_group(self, team_id) -> CourseGroup:
        group = CourseGroup.objects.for_school(self.school_id).filter(
            id=field_object_id(team_id, "team_id")).first()
        if group is None:
            raise ValidationFailed("team_id is not a group of this school.",
                                   {"team_id": ["Not a group of this school."]})
        return group

    def list(self, project_id, latest: bool = False, backfill_source: str | None = None,
             page: int = 1, page_size: int = 50) -> Page:
        """A project's teams with their members' names: one query for the names of every
        member of the page, whatever the number of teams. `latest`: only the newest version
        of each team, the one future evaluations use. `backfill_source` (`group` or
        `inferred`): only the backfilled teams whose members came from that source, for
        review. The project is read only for an empty page, to tell an unknown project (404)
        from one without teams: a project's teams go before it (service.projects.delete), so
        teams found mean the project exists."""
        project_oid = object_id(project_id, "project")
        teams = self.visible_teams().filter(project_id=project_oid)
        if backfill_source:
            teams = teams.filter(backfill_source=BACKFILL_FILTERS[backfill_source])
        teams = teams.order_by("display_name_at_time", "lineage", "team_version").batch_size(
            10000)
        if latest:
            newest = {team.lineage: team for team in teams}
            found = paginate_list([t for t in teams if newest[t.lineage] is t], page, page_size)
        else:
            found = paginate(teams, page, page_size)
        if not found.items:
            self.project(project_id)
        names = self.names_of(uid for team in found.items for uid in team.member_ids)
        found.items = [team_dict(team, names) for team in found.items]
        return found

    def detail(self, team_id) -> dict:
        team = self.team(team_id)
        # write_version: the document's write counter, the team's ETag (api/etags.py)
        return {**self._present(team), "write_version": team.version}

    def members(self, team_id, page: int = 1, page_size: int = 50) -> Page:
        team = self.team(team_id)
        names = self.names_of(team.member_ids)
        return paginate_list([member_dict(m, names) for m in team.members], page, page_size)

    def add_members(self, team_id, members: list[dict]) -> dict:
        self.require_role(STAFF_ROLES)
        ids = unique_ids([m["user_id"] for m in members], "members")
        if len(ids) != len(members):
            raise ValidationFailed("members names someone twice.",
                                   {"members": ["Each user_id only once."]})
        self.school_users(ids, "members")
        now = utcnow()
        additions = [TeamMember(user_id=uid, role=m.get("role"), added_at=now)
                     for uid, m in zip(ids, members, strict=True)]

        def refuse(team: ProjectTeam) -> None:
            already = set(team.member_ids) & set(ids)
            if already:
                raise Conflict("Some of these people are already in the team.",
                               code="already_member",
                               details={"user_ids": sorted(str(u) for u in already)})

        team = self._edit_roster(
            team_id, {"member_ids": {"$nin": ids}},
            {"$push": {"members": {"$each": [a.to_mongo().to_dict() for a in additions]},
                       "member_ids": {"$each": ids}}}, refuse)
        self.audit("add_members", "project_team", team.id,
                   after={"members": [{"user_id": a.user_id, "role": a.role}
                                      for a in additions]})
        return self._present(team)

    def remove_member(self, team_id, user_id) -> None:
        self.require_role(STAFF_ROLES)
        uid = object_id(user_id, "member")

        def refuse(team: ProjectTeam) -> None:
            if uid not in team.member_ids:
                raise NotFound(f"{user_id!r} is not a member of this team.")

        team = self._edit_roster(
            team_id, {"member_ids": uid},
            {"$pull": {"members": {"user_id": uid}, "member_ids": uid}}, refuse)
        self.audit("remove_member", "project_team", team.id, before={"user_id": uid})

    def _edit_roster(self, team_id, precondition: dict, edit: dict, refuse) -> ProjectTeam:
        """Apply `edit` to the members in one update that matches only while the team is
        unlocked, not archived and `precondition` holds. When it matches nothing, the team as
        it is now says why: archived (409 `project_archived`), locked (final, nothing unlocks
        a version: 409 `team_locked`), or `refuse` raises the rule's error. If none, a
        parallel edit changed the team in between (say, removed the person we add), so the
        update is tried again."""
        oid = object_id(team_id, "project team")
        update = {**edit, "$inc": {"members_version": 1}, "$set": {"updated_at": utcnow()}}
        for _ in range(ATTEMPTS):
            after = update_where(ProjectTeam._get_collection(), self.school_id,
                                 {"_id": oid, "locked": False, "archived": {"$ne": True},
                                  **precondition}, update)
            if after is not None:
                return ProjectTeam._from_son(after)
            team = ProjectTeam.objects.for_school(self.school_id).filter(id=oid).first()
            if team is None:
                raise NotFound(f"No project team with id {team_id!r}.")
            if team.archived:
                raise project_archived(team.project_id)
            if team.locked:
                raise self._locked(team)
            refuse(team)
        raise Conflict("The team changed while you were changing it; try again.",
                       code="roster_busy")

    def _locked(self, team: ProjectTeam) -> Conflict:
        path = f"/api/v1/schools/{self.school_id}/project-teams/{team.id}/versions"
        return Conflict(
            f"Team '{team.display_name_at_time}' (version {team.team_version}) is locked: "
            f"{team.locked_reason or 'a record links to it'}. Its members can no longer change; "
            f"POST {path} to make a new version with the same members and change that one.",
            code="team_locked",
            details={"project_team_id": str(team.id), "version": team.team_version,
                     "new_version_url": path})

    def new_version(self, team_id) -> dict:
        """Version max+1 of the team's lineage with this version's members, unlocked."""
        self.require_role(STAFF_ROLES)
        source = self.team(team_id)
        team = self.insert_version(
            source.project_id, source.lineage,
            lambda lineage, number, oid: self._copy(source, source.project_id, lineage,
                                                    number, oid))
        self.audit("create_version", "project_team", team.id,
                   before={"project_team_id": source.id, "version": source.team_version},
                   after={"version": team.team_version, "member_ids": team.member_ids})
        self._notify_members(team, "project_team_version",
                             f"A new version ({team.team_version}) of team "
                             f"'{team.display_name_at_time}' was made.")
        return self._present(team)

    def _copy(self, source: ProjectTeam, project_id, lineage: str,
              team_version: int, oid: ObjectId | None = None) -> ProjectTeam:
        now = utcnow()
        members = [TeamMember(user_id=m.user_id, role=m.role, added_at=now)
                   for m in source.members]
        return ProjectTeam(
            id=oid or ObjectId(), school_id=self.school_id, project_id=project_id, lineage=lineage,
            team_version=team_version, team_id=source.team_id,
            display_name_at_time=source.display_name_at_time, members=members,
            member_ids=[m.user_id for m in members], created_at=now, updated_at=now)

    def clone(self, target_project_id, source_project_id) -> dict:
        """Copy the latest version of every team of `source` into `target`, unlocked, in one
        bulk insert. Each copy's lineage names its origin, so cloning the same teams into the
        same project again (a retry, a double click) adds nothing twice. An archived target:
        409 `project_archived` (checked again after the insert, whose copies then go)."""
        self.require_role(STAFF_ROLES)
        target = self.project(target_project_id)
        source = self.project(source_project_id)
        if target.id == source.id:
            raise ValidationFailed("A project cannot clone its own teams.",
                                   {"source": ["Must differ from the target project."]})
        self.refuse_if_archived(target.id)
        copies = [self._copy(team, target.id, "clone:" + team.lineage.removeprefix("clone:"), 1)
                  for team in self._latest_versions(source.id)]
        inserted = self._insert_new(copies)
        if inserted and self.project_is_archived(target.id):
            ProjectTeam.objects.for_school(self.school_id).filter(
                id__in=[team.id for team in inserted]).delete()
            raise project_archived(target.id)
        audit.record_many([audit.audit_event(
            self.actor, self.school_id, "clone", "project_team", team.id,
            after={"from_project_id": source.id, "project_id": target.id,
                   "member_ids": team.member_ids}) for team in inserted])
        return {"teams_cloned": len(inserted),
                "members_cloned": sum(len(team.members) for team in inserted),
                "project_team_ids": [team.id for team in inserted]}

    def _latest_versions(self, project_id) -> list[ProjectTeam]:
        teams = ProjectTeam.objects.for_school(self.school_id).filter(
            project_id=project_id).order_by("lineage", "team_version").batch_size(10000)
        latest = {team.lineage: team for team in teams}
        return sorted(latest.values(), key=lambda t: (t.display_name_at_time, t.lineage))

    def _insert_new(self, teams: list[ProjectTeam]) -> list[ProjectTeam]:
        """Insert all, skipping those whose (project, lineage, team_version) exists."""
        if not teams:
            return []
        skipped = insert_unique(ProjectTeam._get_collection(),
                                [team.to_mongo() for team in teams])
        return [team for i, team in enumerate(teams) if i not in skipped]

    def _present(self, team: ProjectTeam) -> dict:
        return team_dict(team, self.names_of(team.member_ids))

    def _notify_members(self, team: ProjectTeam, kind: str, message: str) -> None:
        notifications.notify_many([
            Notification(user_id=uid, school_id=self.school_id, kind=kind, message=message,
                         data={"project_team_id": str(team.id),
                               "version": team.team_version})
            for uid in team.member_ids])

    def lock(self, team: ProjectTeam, reason: str) -> ProjectTeam:
        """Lock the team for a record about to link to it and return the team as locked: its
        roster is final from the moment this returns. 409 `superseded` when a newer version
        of the team exists: new records take the newest. 409 `project_archived` when the
        project is archived (the record, written after, checks the project again)."""
        self.refuse_superseded(team)
        now = utcnow()
        locked = update_where(ProjectTeam._get_collection(), self.school_id,
                              {"_id": team.id, "locked": False, "superseded": {"$ne": True},
                               "archived": {"$ne": True}},
                              {"$set": {"locked": True, "locked_at": now,
                                        "locked_reason": reason, "updated_at": now}})
        if locked is None:
            # Locked already (nothing ever unlocks a version), so this read is final too;
            # or superseded in between, or deleted (nothing can lock it then).
            current = ProjectTeam.objects.for_school(self.school_id).filter(id=team.id).first()
            if current is None:
                raise NotFound(f"No project team with id {team.id}.")
            if current.archived:
                raise project_archived(current.project_id)
            self.refuse_superseded(current)
            return current
        locked = ProjectTeam._from_son(locked)
        self.audit("lock", "project_team", locked.id,
                   after={"locked_reason": reason, "members_version": locked.members_version,
                          "member_ids": locked.member_ids})
        webhooks.emit(self.ctx, "team.locked", {
            "team_id": locked.id, "project_id": locked.project_id, "reason": reason,
            "members_version": locked.members_version, "member_ids": locked.member_ids})
        self._notify_members(locked, "project_team_locked",
                             f"Team '{locked.display_name_at_time}' is now locked: {reason}.")
        return locked

    def refuse_superseded(self, team: ProjectTeam) -> None:
        newest = ProjectTeam.objects.for_school(self.school_id).filter(
            project_id=team.project_id, lineage=team.lineage).order_by(
            "-team_version").only("id", "team_version").first()
        if team.superseded or (newest and newest.team_version > team.team_version):
            raise Conflict(
                f"Version {team.team_version} of team '{team.display_name_at_time}' is "
                f"superseded by version {newest.team_version}; link that one.",
                code="superseded",
                details={"project_team_id": str(team.id), "version": team.team_version,
                         "newest_project_team_id": str(newest.id),
                         "newest_version": newest.team_version})

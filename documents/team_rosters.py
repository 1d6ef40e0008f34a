"""Course groups, frozen project teams, and the records that lock a team by linking to it."""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned, utcnow

BACKFILL_SOURCES = ("backfill", "inference")
LINKED_STATUSES = ("draft", "closed")


class CourseGroup(SchoolOwned):
    """A mutable course-level group of users; project teams copy it, never follow it."""

    meta = {"collection": "course_groups", "indexes": [["school_id", "name"]]}

    name = StringField(required=True)
    member_ids = ListField(ObjectIdField())
    updated_at = DateTimeField(default=utcnow)
    version = IntField(default=0)  # +1 on each change of the members: the ETag (api/etags.py)


class TeamMember(EmbeddedDocument):
    user_id = ObjectIdField(required=True)
    role = StringField()
    added_at = DateTimeField(default=utcnow)


class ProjectTeam(SchoolOwned):
    """One version of a project team, and the aggregate that keeps its roster frozen once a
    record links to it: `members`, `member_ids` (their ids, for "teams I am in" queries),
    `members_version` and `locked` change together, each change one conditional update whose
    filter states `locked: False` (service/team_rosters.py). Every version is its own
    document, so a locked version never changes; versions of the same team share a `lineage`.

    `team_version` is the number the API shows as the team's `version` (1, 2, ... within the
    lineage); `version` is the document's write counter (service/aggregates.py).
    """

    meta = {"collection": "project_teams",
            "indexes": [
                {"fields": ["school_id", "project_id", "lineage", "team_version"],
                 "unique": True},
                ["school_id", "project_id", "display_name_at_time", "lineage", "team_version"],
                ["school_id", "member_ids"],
            ]}

    project_id = ObjectIdField(required=True)
    # Shared by every version of one team: a new team's own id as text, or for backfilled
    # teams the deterministic "backfill:<group id>" natural key.
    lineage = StringField(required=True)
    team_version = IntField(required=True, default=1, min_value=1)
    team_id = ObjectIdField()  # the source course group; kept after the group is deleted
    display_name_at_time = StringField(required=True)
    members = ListField(EmbeddedDocumentField(TeamMember))
    member_ids = ListField(ObjectIdField())
    members_version = IntField(default=0)
    locked = BooleanField(default=False)
    locked_at = DateTimeField()
    locked_reason = StringField()
    backfill_source = StringField(choices=BACKFILL_SOURCES)
    # Set once a newer version of the lineage exists; linking matches only `superseded: False`
    # (service/team_rosters.py), so a new record never takes an old version.
    superseded = BooleanField(default=False)
    # Set by archiving the project (service/projects.py, after its tracks): every edit, lock
    # and delete matches only `archived: {$ne: True}`, so none lands after it.
    archived = BooleanField(default=False)
    updated_at = DateTimeField(default=utcnow)
    version = IntField(default=0)


class ProjectTeamsClosing(SchoolOwned):
    """A project (or sub-project) whose teams are being deleted with it: present from the
    start of the project's deletion to its end. A team created for the project checks it after
    its insert and takes itself back (service/team_rosters_deletion.py)."""

    meta = {"collection": "project_teams_closing",
            "indexes": [{"fields": ["school_id", "project_id"], "unique": True}]}

    project_id = ObjectIdField(required=True)


class TeamLinked(SchoolOwned):
    """What evaluations, project assessments and note contexts share: a link to one project
    team version, and the roster that version had when the link locked it.

    `group_id` and `participant_ids` are legacy fields of records made before project teams
    existed; the backfill reads them.
    """

    meta = {"abstract": True}

    project_id = ObjectIdField(required=True)
    project_team_id = ObjectIdField()
    title = StringField(required=True)
    status = StringField(default="draft", choices=LINKED_STATUSES)
    closed_at = DateTimeField()
    team_version = IntField()
    team_name = StringField()
    members_version = IntField()
    member_ids = ListField(ObjectIdField())
    group_id = ObjectIdField()
    participant_ids = ListField(ObjectIdField())
    version = IntField(default=0)  # write counter (service/aggregates.py)


class Evaluation(TeamLinked):
    meta = {"collection": "evaluations",
            "indexes": [["school_id", "project_id", "status"],
                        ["school_id", "project_team_id", "status"],
                        ["school_id", "member_ids"]]}


class ProjectAssessment(TeamLinked):
    meta = {"collection": "project_assessments",
            "indexes": [["school_id", "project_id", "status"],
                        ["school_id", "project_team_id", "status"],
                        ["school_id", "member_ids"]]}


class NoteContext(TeamLinked):
    meta = {"collection": "project_note_contexts",
            "indexes": [["school_id", "project_id", "status"],
                        ["school_id", "project_team_id", "status"],
                        ["school_id", "member_ids"]]}

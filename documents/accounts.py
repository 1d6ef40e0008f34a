"""Companies, schools, users and revoked tokens."""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolQuerySet, utcnow


class Company(Document):
    meta = {"collection": "companies", "auto_create_index": False,
            "indexes": [{"fields": ["name"], "unique": True}]}

    name = StringField(required=True)
    created_at = DateTimeField(default=utcnow)


class ModuleSwitches(EmbeddedDocument):
    timetable = BooleanField(default=False)
    weekly_groups = BooleanField(default=False)
    tracks = BooleanField(default=False)
    team_rosters = BooleanField(default=False)


class School(Document):
    meta = {"collection": "schools", "auto_create_index": False,
            "indexes": [{"fields": ["code"], "unique": True}, ["company_id", "name"]]}

    company_id = ObjectIdField(required=True)
    name = StringField(required=True)
    code = StringField(required=True)
    modules = EmbeddedDocumentField(ModuleSwitches, default=ModuleSwitches)
    # IANA zone: where "today" is for the school's timetable by date
    timezone = StringField(default="UTC")
    created_at = DateTimeField(default=utcnow)
    # +1 on every change through the API (name, time zone, modules): the ETag (api/etags.py)
    version = IntField(default=0)


class User(Document):
    """Every person: admins, staff and students. Company admins have no `school_id`."""

    meta = {"collection": "users", "auto_create_index": False, "queryset_class": SchoolQuerySet,
            "indexes": [{"fields": ["email"], "unique": True},
                        ["school_id", "role", "name"],
                        ["school_id", "department"],
                        ["school_id", "external_id"]]}

    email = StringField(required=True)
    name = StringField(required=True)
    password_hash = StringField()
    role = StringField(required=True)
    company_id = ObjectIdField(required=True)
    school_id = ObjectIdField()
    department = StringField()
    external_id = StringField()
    is_active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)


class RevokedToken(Document):
    """A logged-out token. Expired rows are pruned by TTL where the server has it."""

    meta = {"collection": "revoked_tokens", "auto_create_index": False,
            "indexes": [{"fields": ["jti"], "unique": True},
                        {"fields": ["expires_at"], "expireAfterSeconds": 0}]}

    jti = StringField(required=True)
    expires_at = DateTimeField(required=True)


class LoginFailure(Document):
    """One failed login. Counted per email and client address over a window (so a stranger
    elsewhere cannot lock an account out): one insert each, where a shared counter would lose
    increments under parallel attempts on a server without atomic updates."""

    meta = {"collection": "login_failures", "auto_create_index": False,
            "indexes": [["email", "address", "-created_at"],
                        {"fields": ["created_at"], "expireAfterSeconds": 86400}]}

    email = StringField(required=True)
    address = StringField()
    created_at = DateTimeField(default=utcnow)

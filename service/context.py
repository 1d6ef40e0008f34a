"""Who is acting, and in which school: what every manager is built from."""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId

ROLES = ("company_admin", "school_admin", "staff", "student")
ADMIN_ROLES = frozenset({"company_admin", "school_admin"})
STAFF_ROLES = frozenset({"company_admin", "school_admin", "staff"})
MODULES = ("timetable", "weekly_groups", "tracks", "team_rosters")
SERVICE_ACCOUNT = "service_account"  # the actor role an API key's calls are audited under


@dataclass(frozen=True)
class Actor:
    """The caller: taken from the access token, or the system for imports and commands."""

    user_id: ObjectId | None
    role: str
    company_id: ObjectId | None = None
    school_id: ObjectId | None = None
    # The name of the service account whose API key made the call (`user_id` is its id).
    service_account: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES or self.role == "system"

    @property
    def spans_company(self) -> bool:
        """Company admins and company-wide service accounts reach every school of their
        company (the accounts as school admins: see service/service_accounts.py)."""
        return self.role == "company_admin" or (
            self.service_account is not None and self.school_id is None)

    @property
    def audit_role(self) -> str:
        return SERVICE_ACCOUNT if self.service_account is not None else self.role

    @property
    def label(self) -> str:
        return str(self.user_id) if self.user_id else self.role


SYSTEM = Actor(user_id=None, role="system")


@dataclass(frozen=True)
class SchoolContext:
    """An actor already checked against one school: the tenant every query is filtered by."""

    actor: Actor
    school_id: ObjectId
    company_id: ObjectId
    modules: frozenset[str]
    # The school's webhook subscriptions as (id, events) of the enabled ones, when read with
    # the school at the start of a writing request (service.webhooks.emit then reads nothing);
    # None: not read.
    webhooks: tuple | None = None

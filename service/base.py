"""What every school-scoped manager shares: the context, lookups, audit and notifications."""

from __future__ import annotations

from collections.abc import Iterable

from documents.accounts import User
from service import audit, notifications
from service.context import SchoolContext
from service.errors import Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id


class SchoolService:
    """Base of the per-area managers. Every query starts from `Model.objects.for_school`."""

    def __init__(self, ctx: SchoolContext):
        self.ctx = ctx

    @property
    def school_id(self):
        return self.ctx.school_id

    @property
    def actor(self):
        return self.ctx.actor

    def require_admin(self) -> None:
        if not self.actor.is_admin:
            raise Forbidden("Only school or company admins may do this.")

    def require_role(self, roles: Iterable[str]) -> None:
        if self.actor.role not in roles and self.actor.role != "system":
            raise Forbidden("Your role may not do this here.", details={"role": self.actor.role})

    def get(self, model, entity_id, what: str):
        """One object of this school, or 404 (also for another school's id)."""
        found = model.objects.for_school(self.school_id).filter(
            id=object_id(entity_id, what)).first()
        if found is None:
            raise NotFound(f"No {what} with id {entity_id!r}.")
        return found

    def member(self, user_id, field: str = "user_id", roles: Iterable[str] | None = None) -> User:
        """A user of this school named in a request body (422 when not, per the contract)."""
        user = User.objects.for_school(self.school_id).filter(
            id=field_object_id(user_id, field), is_active=True).first()
        if user is None:
            raise ValidationFailed(f"{field} is not a user of this school.",
                                   {field: ["Not a user of this school."]})
        if roles is not None and user.role not in roles:
            raise ValidationFailed(f"{field} must be one of: {', '.join(sorted(roles))}.",
                                   {field: [f"Has role {user.role}."]})
        return user

    def audit(self, action: str, entity_type: str, entity_id=None, before=None, after=None):
        return audit.record(self.actor, self.school_id, action, entity_type, entity_id,
                            before, after)

    def notify(self, user_id, kind: str, message: str, data: dict | None = None):
        return notifications.notify(user_id, kind, message, school_id=self.school_id, data=data)

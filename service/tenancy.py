"""The one check every school-scoped request goes through."""

from __future__ import annotations

from collections.abc import Iterable

from documents.accounts import School
from service.context import MODULES, Actor, SchoolContext
from service.errors import Forbidden, ModuleDisabled, NotFound
from service.ids import object_id


def in_scope(actor: Actor, school: School) -> bool:
    if actor.role == "system":
        return True
    if actor.spans_company:
        return school.company_id == actor.company_id
    return school.id == actor.school_id


UNREAD = object()


def school_context(actor: Actor, school_id, module: str | None = None,
                   roles: Iterable[str] | None = None, school=UNREAD,
                   webhooks: tuple | None = None) -> SchoolContext:
    """Resolve a school for this actor: 404 outside their scope (never reveal it exists),
    403 for a role that may not, 403 `module_disabled` for a module switched off. `school` is
    the school (or None: no such school) when already read with the token check, `webhooks`
    its enabled webhook subscriptions read along (`SchoolContext.webhooks`)."""
    if school is UNREAD:
        school = School.objects(id=object_id(school_id, "school")).only(
            "id", "company_id", "modules").first()
    if school is None or not in_scope(actor, school):
        raise NotFound(f"No school with id {school_id!r}.")
    if roles is not None and actor.role not in roles and actor.role != "system":
        raise Forbidden("Your role may not do this here.", details={"role": actor.role})
    enabled = frozenset(name for name in MODULES if getattr(school.modules, name))
    if module is not None and module not in enabled:
        raise ModuleDisabled(module)
    return SchoolContext(actor=actor, school_id=school.id, company_id=school.company_id,
                         modules=enabled, webhooks=webhooks)

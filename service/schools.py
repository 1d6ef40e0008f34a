"""Companies, schools, module switches and the people of a school."""

from __future__ import annotations

from mongoengine.errors import NotUniqueError
from pymongo import ReturnDocument

from documents.accounts import Company, School, User
from service import audit, preconditions
from service.base import SchoolService
from service.context import ADMIN_ROLES, MODULES, SYSTEM, Actor, SchoolContext
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import object_id
from service.pagination import Page, paginate
from service.passwords import hash_password
from service.tenancy import in_scope

SCHOOL_ROLES = ("school_admin", "staff", "student")


def create_company_admin(company_name: str, email: str, password: str, name: str) -> User:
    """Bootstrap: the company (found or created) and its first admin."""
    company = Company.objects(name=company_name).first()
    if company is None:
        try:
            company = Company(name=company_name).save()
        except NotUniqueError:
            company = Company.objects.get(name=company_name)
    try:
        user = User(email=email.strip().lower(), name=name, role="company_admin",
                    company_id=company.id, password_hash=hash_password(password)).save()
    except NotUniqueError:
        raise Conflict(f"A user with email {email} already exists.", code="duplicate") from None
    audit.record(Actor(user.id, "company_admin", company.id), None, "create", "user", user.id,
                 after={"email": user.email, "role": user.role})
    return user


def create_school_user(school_code: str, email: str, password: str, name: str, role: str,
                       department: str | None = None) -> User:
    """A user of one school, from the command line (acts as the system)."""
    school = School.objects(code=school_code).first()
    if school is None:
        raise NotFound(f"No school with code {school_code!r}.")
    ctx = SchoolContext(actor=SYSTEM, school_id=school.id, company_id=school.company_id,
                        modules=frozenset())
    return SchoolUsers(ctx).create(email=email, name=name, role=role, department=department,
                                   password=password)


class Schools:
    """Schools of the caller's company (company admins) or the caller's own school."""

    def __init__(self, actor: Actor):
        self.actor = actor

    def create(self, name: str, code: str) -> School:
        if self.actor.role != "company_admin":
            raise Forbidden("Only company admins create schools.")
        try:
            school = School(company_id=self.actor.company_id, name=name, code=code).save()
        except NotUniqueError:
            raise Conflict(f"School code {code!r} is taken.", code="duplicate",
                           details={"code": code}) from None
        audit.record(self.actor, school.id, "create", "school", school.id,
                     after={"name": name, "code": code})
        return school

    def list(self, page: int = 1, page_size: int = 50) -> Page:
        if self.actor.spans_company:
            schools = School.objects(company_id=self.actor.company_id)
        else:
            schools = School.objects(id=self.actor.school_id)
        return paginate(schools.order_by("name"), page, page_size)

    def get(self, school_id) -> School:
        school = School.objects(id=object_id(school_id, "school")).first()
        if school is None or not in_scope(self.actor, school):
            raise NotFound(f"No school with id {school_id!r}.")
        return school

    def update(self, school_id, **changes) -> School:
        """Rename the school or set its time zone (IANA, checked by the API schema): company
        admins for their schools, school admins for their own."""
        school = self.get(school_id)
        if self.actor.role not in ADMIN_ROLES:
            raise Forbidden("Only admins change a school.")
        if not changes:
            preconditions.check(school.id, school.version)  # If-Match on a request of nothing
            return school
        previous = _changed_school(school, {"$set": changes}, {name: 1 for name in changes})
        audit.record(self.actor, school.id, "update", "school", school.id,
                     before={name: previous.get(name) for name in changes}, after=changes)
        school.reload()
        return school

    def set_modules(self, school_id, switches: dict[str, bool]) -> School:
        """`$set` of only the switches given, in one atomic update: two admins switching
        different modules at the same time both land. The audit shows every switch as it was
        right before this update and right after it."""
        school = self.get(school_id)
        if self.actor.role != "company_admin":
            raise Forbidden("Only company admins switch modules.")
        changes = {name: switches[name] for name in MODULES if name in switches}
        preconditions.check(school.id, school.version)  # If-Match; the write states it too
        before = self._switch(school, changes)
        audit.record(self.actor, school.id, "set_modules", "school", school.id,
                     before=before, after={**before, **changes})
        school.reload()
        return school

    @staticmethod
    def _switch(school: School, changes: dict[str, bool]) -> dict[str, bool]:
        """Apply `changes`; answer every switch as it was just before."""
        if not changes:
            return {name: getattr(school.modules, name) for name in MODULES}
        previous = _changed_school(
            school, {"$set": {f"modules.{name}": on for name, on in changes.items()}},
            {"modules": 1})
        modules = previous.get("modules") or {}
        return {name: bool(modules.get(name, False)) for name in MODULES}


def _changed_school(school: School, update: dict, projection: dict) -> dict:
    """One update of the school counting its `version`, conditional on the request's
    If-Match (412 when the school is at another version): the school as it was before."""
    previous = School._get_collection().find_one_and_update(
        {"_id": school.id, **preconditions.guard(school.id)},
        {**update, "$inc": {"version": 1}}, projection=projection,
        return_document=ReturnDocument.BEFORE)
    if previous is None:
        current = School._get_collection().find_one({"_id": school.id}, {"version": 1})
        if current is None:
            raise NotFound(f"No school with id {str(school.id)!r}.")
        preconditions.check(school.id, current.get("version"))
        raise Conflict("The school changed while this request ran; try again.",
                       code="concurrent_update")
    preconditions.written(school.id)
    return previous


class SchoolUsers(SchoolService):
    """The people of one school."""

    def create(self, email: str, name: str, role: str, department: str | None = None,
               password: str | None = None, external_id: str | None = None) -> User:
        self.require_admin()
        if role not in SCHOOL_ROLES:
            raise ValidationFailed("role must be school_admin, staff or student.",
                                   {"role": [f"Must be one of {', '.join(SCHOOL_ROLES)}."]})
        user = User(email=email.strip().lower(), name=name, role=role, department=department,
                    external_id=external_id, company_id=self.ctx.company_id,
                    school_id=self.school_id,
                    password_hash=hash_password(password) if password else None)
        try:
            user.save()
        except NotUniqueError:
            raise Conflict(f"A user with email {user.email} already exists.", code="duplicate",
                           details={"email": user.email}) from None
        self.audit("create", "user", user.id,
                   after={"email": user.email, "role": role, "department": department})
        return user

    def list(self, role: str | None = None, department: str | None = None, page: int = 1,
             page_size: int = 50) -> Page:
        self.require_role(ADMIN_ROLES | {"staff"})
        users = User.objects.for_school(self.school_id)
        if role:
            users = users.filter(role=role)
        if department:
            users = users.filter(department=department)
        return paginate(users.order_by("name", "id"), page, page_size)

    def get_user(self, user_id) -> User:
        return self.get(User, user_id, "user")

    def departments(self) -> list[dict]:
        """Departments with their number of people: one aggregation."""
        rows = User.objects.for_school(self.school_id).filter(department__ne=None).aggregate([
            {"$group": {"_id": "$department", "people": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
        ])
        return [{"name": row["_id"], "people": row["people"]} for row in rows if row["_id"]]

"""Test helpers: a populated world with tokens per role, a live server, parallel requests."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bson import ObjectId

from documents.accounts import Company, ModuleSwitches, School, User
from scripts.live import LiveServer, start_live_server  # noqa: F401  (re-exported for tests)

ALL_MODULES = dict(timetable=True, weekly_groups=True, tracks=True, team_rosters=True)
PASSWORD = "correct-horse-battery"

# Every school-scoped request with an access token spends this many round trips before the
# manager runs: the revocation check of the token and the school lookup of the tenancy check,
# read together (api/security.token_revoked). An API key costs one more (key and school
# together, then its rate-limit counter).
REQUEST_OVERHEAD = 1


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class World:
    """Two companies. `school` (all modules on) and `other_school` belong to `company`;
    `foreign_school` belongs to `foreign_company`. People per role are attributes."""

    app: object
    company: Company = None
    school: School = None
    other_school: School = None
    foreign_company: Company = None
    foreign_school: School = None
    people: dict = field(default_factory=dict)

    @classmethod
    def build(cls, app) -> World:
        world = cls(app)
        world.company = Company(name=unique("Acme")).save()
        world.foreign_company = Company(name=unique("Globex")).save()
        world.school = world.add_school(world.company)
        world.other_school = world.add_school(world.company)
        world.foreign_school = world.add_school(world.foreign_company)
        world.people = {
            "company_admin": world.add_user(None, "company_admin", company=world.company),
            "admin": world.add_user(world.school, "school_admin"),
            "staff": world.add_user(world.school, "staff", department="Mathematics"),
            "staff2": world.add_user(world.school, "staff", department="Science"),
            "student": world.add_user(world.school, "student"),
            "other_admin": world.add_user(world.other_school, "school_admin"),
            "other_staff": world.add_user(world.other_school, "staff", department="Mathematics"),
            "foreign_company_admin": world.add_user(None, "company_admin",
                                                    company=world.foreign_company),
            "foreign_admin": world.add_user(world.foreign_school, "school_admin"),
        }
        return world

    def __getattr__(self, name):
        people = self.__dict__.get("people") or {}
        if name in people:
            return people[name]
        raise AttributeError(name)

    def add_school(self, company: Company, modules: dict | None = None) -> School:
        switches = ModuleSwitches(**(ALL_MODULES if modules is None else modules))
        return School(company_id=company.id, name=unique("School"), code=unique("S"),
                      modules=switches).save()

    def add_user(self, school: School | None, role: str, department: str | None = None,
                 name: str | None = None, company: Company | None = None,
                 password: str | None = None) -> User:
        from service.passwords import hash_password

        company_id = company.id if company else school.company_id
        return User(email=f"{unique(role)}@example.test", name=name or unique(role.title()),
                    role=role, department=department, company_id=company_id,
                    school_id=school.id if school else None,
                    password_hash=hash_password(password) if password else None).save()

    def token(self, user: User) -> str:
        from api.security import issue_tokens

        with self.app.app_context():
            return issue_tokens(user)["access_token"]

    def headers(self, user: User | str) -> dict:
        if isinstance(user, str):
            user = self.people[user]
        return {"Authorization": f"Bearer {self.token(user)}"}

    def url(self, path: str = "", school: School | None = None) -> str:
        """`/api/v1/schools/<id>` + path, for the main school unless another is given."""
        return f"/api/v1/schools/{(school or self.school).id}{path}"

    def set_modules(self, school: School, **switches) -> None:
        current = school.modules.to_mongo().to_dict()
        current.update(switches)
        School.objects(id=school.id).update_one(set__modules=ModuleSwitches(**current))


def oid() -> str:
    return str(ObjectId())


def parallel(count: int, call) -> list:
    """Run `call(i)` for i in range(count) on `count` threads released at the same instant;
    return the results in order. For firing real concurrent requests at the live server."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))

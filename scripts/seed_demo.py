"""`rota seed-demo`: a demo company with two schools, people, and sample data per module.

Each module contributes its sample data through `scripts/demo_<module>.py:seed(ctx, people)`.
Safe to run twice: an existing demo company is left as it is.
"""

from __future__ import annotations

import importlib

from documents.accounts import Company, ModuleSwitches, School, User
from service.context import MODULES, Actor, SchoolContext
from service.passwords import hash_password

COMPANY = "Demo Company"
PASSWORD = "demo-password"
SCHOOLS = (("North Demo School", "DEMO-NORTH"), ("South Demo School", "DEMO-SOUTH"))
DEPARTMENTS = ("Mathematics", "Science", "Languages", "Library")
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jon",
               "Kai", "Lena", "Milo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tess")


def seed(log=print) -> list[tuple[str, str]]:
    """Create the demo data; return (role, email) of the logins to print."""
    if Company.objects(name=COMPANY).first():
        log(f"{COMPANY} exists already; nothing added.")
        return _logins()
    company = Company(name=COMPANY).save()
    password_hash = hash_password(PASSWORD)
    _user(company, None, "company_admin", "Casey Company", "company.admin@demo.test",
          password_hash)
    for name, code in SCHOOLS:
        school = School(company_id=company.id, name=name, code=code,
                        modules=ModuleSwitches(**{m: True for m in MODULES})).save()
        people = _people(company, school, password_hash)
        log(f"{name} ({code}): {len(people['staff'])} staff, {len(people['students'])} students")
        ctx = SchoolContext(Actor(people["admin"].id, "school_admin", company.id, school.id),
                            school.id, company.id, frozenset(MODULES))
        for module in MODULES:
            _seed_module(module, ctx, people, log)
    return _logins()


def _people(company, school, password_hash) -> dict:
    slug = school.code.lower()
    admin = _user(company, school, "school_admin", f"{school.name} Admin",
                  f"admin@{slug}.demo.test", password_hash)
    staff = [_user(company, school, "staff", f"{FIRST_NAMES[i]} Teacher",
                   f"staff{i + 1}@{slug}.demo.test", password_hash,
                   department=DEPARTMENTS[i % len(DEPARTMENTS)]) for i in range(8)]
    students = [_user(company, school, "student", f"{FIRST_NAMES[i % 20]} Student {i + 1}",
                      f"student{i + 1}@{slug}.demo.test", password_hash) for i in range(24)]
    return {"admin": admin, "staff": staff, "students": students}


def _user(company, school, role, name, email, password_hash, department=None) -> User:
    return User(email=email, name=name, role=role, company_id=company.id,
                school_id=school.id if school else None, department=department,
                password_hash=password_hash).save()


def _seed_module(module: str, ctx, people, log) -> None:
    try:
        demo = importlib.import_module(f"scripts.demo_{module}")
    except ModuleNotFoundError:
        return
    demo.seed(ctx, people)
    log(f"  {module}: sample data added")


def _logins() -> list[tuple[str, str]]:
    first = SCHOOLS[0][1].lower()
    return [("company_admin", "company.admin@demo.test"),
            ("school_admin", f"admin@{first}.demo.test"),
            ("staff", f"staff1@{first}.demo.test"),
            ("student", f"student1@{first}.demo.test")]

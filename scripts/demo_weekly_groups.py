"""Demo data for weekly groups: a ski week program, its students grouped by level and age,
instructors per group, week 2 copied from week 1 with a renamed group and one student
moved up a level, a late joiner from week 2 waiting for a seat in the full advanced group,
and a staff note."""

from __future__ import annotations

from datetime import date

from service.context import SchoolContext
from service.weekly_groups import WeeklyGroups
from service.weekly_groups_moves import WeekMoves
from service.weekly_groups_notes import StudentNotes

STUDENTS = [
    ("Mia Keller", "Beginner", 7), ("Noah Frei", "Beginner", 8), ("Lea Brunner", "Beginner", 6),
    ("Elias Meier", "Beginner", 9), ("Lina Huber", "Beginner", 7), ("Luca Graf", "Beginner", 10),
    ("Emma Vogel", "Intermediate", 11), ("Leon Roth", "Intermediate", 12),
    ("Sofia Baumann", "Intermediate", 10), ("Jonas Weber", "Intermediate", 13),
    ("Lara Fischer", "Advanced", 14), ("Finn Schmid", "Advanced", 15),
    ("Nina Steiner", "Advanced", 13), ("Tim Zimmermann", "Advanced", 16),
]


def seed(ctx: SchoolContext, people: dict) -> None:
    groups, moves = WeeklyGroups(ctx), WeekMoves(ctx)
    today = date.today()
    program = groups.create_program(name="Winter Ski Week", max_weeks=4,
                                    start_date=date(today.year, 1, 6),
                                    end_date=date(today.year, 2, 2))
    students = [groups.add_student(program.id, name, level,
                                   birth_date=date(today.year - age, 3, 1),
                                   customer_id=f"SKI-{index:03d}")
                for index, (name, level, age) in enumerate(STUDENTS, start=1)]
    for student_user in people.get("students", [])[:1]:
        groups.add_student(program.id, student_user.name, "Intermediate",
                           email=student_user.email)
    week_one = moves.generate_groups(program.id, max_group_size=4, week_number=1)
    staff = people.get("staff", [])
    for index, group in enumerate(week_one["groups"]):
        if staff:
            groups.set_instructor(program.id, 1, group["group_id"],
                                  staff[index % len(staff)].id)
    moves.copy_week(program.id, 2, 1)
    week_two = groups.week_view(program.id, 2)["groups"]
    advanced = next(g for g in week_two if g["ability_level"] == "Advanced")
    groups.rename_group(program.id, 2, advanced["group_id"], "Black Run Crew")
    roomy = next((g for g in week_two if g["ability_level"] == "Intermediate"
                  and len(g["students"]) < g["max_size"]), None)
    if roomy is not None:  # the oldest beginner moves up a level in week 2
        moves.move_students(program.id, 2, [students[5]["id"]], roomy["group_id"])
    late = groups.add_student(program.id, "Mara Gerber", "Advanced",
                              birth_date=date(today.year - 14, 5, 1), first_week=2)
    full = next(g for g in week_two if g["ability_level"] == "Advanced")
    moves.move_students(program.id, 2, [late["id"]], full["group_id"], waitlist=True)
    StudentNotes(ctx).add_note(program.id, students[0]["id"],
                               "Nervous on the chairlift: ride with her the first morning.")

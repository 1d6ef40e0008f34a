"""Demo data for the tracks module: a project with a sub-project, tracks created with their
instructors (links, a cap), balanced enrolments, one reassignment (pinned) and course
navigation."""

from __future__ import annotations

from service.context import SchoolContext
from service.projects import Projects
from service.tracks import Tracks
from service.tracks_courses import TrackCourses
from service.tracks_students import TrackStudents

COURSES = (
    ("Python foundations", [("Welcome and setup", "content"), ("Variables and types", "content"),
                            ("First script", "lab"), ("Basics check", "quiz")]),
    ("Web services", [("HTTP in a nutshell", "content"), ("Build a JSON API", "lab"),
                      ("API quiz", "quiz")]),
)


def seed(ctx: SchoolContext, people: dict) -> None:
    projects, tracks, enrolments = Projects(ctx), Tracks(ctx), TrackStudents(ctx)
    staff, students = people["staff"], people["students"]
    program = projects.create("Enterprise Training", description="A year of applied software "
                              "training.", auto_balance_students=True)
    quarter = projects.create_sub_project(program.id, "Q1 Development",
                                          description="First quarter: building applications.")
    app_dev = tracks.create("Application Development", sub_project_id=quarter.id, instructors=[
        {"user_id": teacher.id, "zoom_link": f"https://zoom.us/j/10000{index}",
         "slack_links": [f"https://demo.slack.com/archives/C0APP{index}"]}
        for index, teacher in enumerate(staff[:3])])
    data = tracks.create("Data Analysis", project_id=program.id, instructors=[
        {"user_id": people["admin"].id,
         "teams_link": "https://teams.microsoft.com/l/meetup-join/demo-data"},
        {"user_id": staff[3].id, "zoom_link": "https://zoom.us/j/200001", "max_students": 12}])
    enrolments.enrol(app_dev.id, [s.id for s in students[:15]])
    enrolments.enrol(data.id, [s.id for s in students[15:]])
    enrolments.reassign(app_dev.id, students[0].id, staff[2].id)
    courses = TrackCourses(ctx)
    for title, modules in COURSES:
        courses.add(app_dev.id, title, [{"title": name, "kind": kind}
                                        for name, kind in modules])
    courses.add(data.id, "Spreadsheets to pandas",
                [{"title": "Tabular data", "kind": "content"},
                 {"title": "Clean a dataset", "kind": "lab"}])

"""The demo data of the tracks module goes in through the managers and reads back."""

from __future__ import annotations

from scripts.demo_tracks import seed
from service.context import MODULES, Actor, SchoolContext


def test_demo_seed_creates_browsable_tracks(client, world):
    people = {"admin": world.admin,
              "staff": [world.add_user(world.school, "staff") for _ in range(4)],
              "students": [world.add_user(world.school, "student") for _ in range(20)]}
    ctx = SchoolContext(Actor(world.admin.id, "school_admin", world.company.id, world.school.id),
                        world.school.id, world.company.id, frozenset(MODULES))
    seed(ctx, people)
    headers = world.headers("admin")
    listed = client.get(world.url("/tracks"), headers=headers).json
    assert [t["name"] for t in listed["items"]] == ["Application Development", "Data Analysis"]
    detail = client.get(world.url(f"/tracks/{listed['items'][0]['id']}"), headers=headers).json
    assert detail["students_count"] == 15 and len(detail["instructors"]) == 3
    assert [c["title"] for c in detail["courses"]] == ["Python foundations", "Web services"]

"""Group generation: the preview, age bands, pairs kept together or apart, regeneration, and
properties of the pure algorithm."""

from __future__ import annotations

from datetime import date, timedelta

from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from service.weekly_groups_generation import generation_order, generation_plan
from tests.test_weekly_groups import birth, manager, move, names_in, new_group, new_program, view

TODAY = date(2026, 6, 15)


def generate(client, world, program, **body):
    response = client.post(world.url(f"/programs/{program.id}/groups/generate"), json=body,
                           headers=world.headers("admin"))
    assert response.status_code == 200, response.json
    return response.json


def grouping(week_view) -> dict:
    return {g["name"]: [s["id"] for s in g["students"]] for g in week_view["groups"]
            if g["students"]}


def test_a_preview_writes_nothing_and_equals_the_committed_result(client, world):
    program = new_program(world)
    wg = manager(world)
    for index in range(7):
        wg.add_student(program.id, f"Kid {index}", ("Red", "Blue")[index % 2],
                       birth_date=birth(6 + index))
    wg.add_student(program.id, "Later", "Red", first_week=2)
    preview = generate(client, world, program, max_group_size=2, dry_run=True)
    assert preview["dry_run"] is True
    assert [s["name"] for s in preview["not_yet_enrolled_students"]] == ["Later"]
    week = view(client, world, program, 1)
    assert week["groups"] == [] and len(week["unassigned_students"]) == 7
    assert client.get(world.url(f"/programs/{program.id}/changes"),
                      headers=world.headers("admin")).json["items"] == []

    committed = generate(client, world, program, max_group_size=2)
    assert grouping(preview) == grouping(committed)
    assert list(grouping(preview)) == ["Blue Group 1", "Blue Group 2", "Red Group 1",
                                       "Red Group 2"]
    again = generate(client, world, program, max_group_size=2, dry_run=True)
    assert [g["group_id"] for g in again["groups"]] == \
        [g["group_id"] for g in committed["groups"]]  # a rerun reuses the groups


def test_age_bands_split_a_level_and_pairs_are_kept_together_or_apart(client, world):
    program = new_program(world)
    wg = manager(world)
    kids = {name: wg.add_student(program.id, name, "Red", birth_date=birth(age))
            for name, age in (("Ann", 6), ("Ben", 7), ("Cal", 7), ("Dan", 9), ("Eve", 10))}
    banded = generate(client, world, program, max_group_size=4, age_band_years=3,
                      dry_run=True)
    assert {g["name"]: names_in(g) for g in banded["groups"]} == {
        "Red Group 1": ["Ann", "Ben", "Cal"], "Red Group 2": ["Dan", "Eve"]}

    result = generate(client, world, program, max_group_size=2, together=[
        [str(kids["Ann"]["id"]), str(kids["Eve"]["id"])]], apart=[
        [str(kids["Ben"]["id"]), str(kids["Cal"]["id"])]], dry_run=True)
    groups = [set(names_in(g)) for g in result["groups"]]
    assert {"Ann", "Eve"} in groups
    assert not any({"Ben", "Cal"} <= g for g in groups)
    assert all(len(g) <= 2 for g in groups)

    other = new_program(world, name="Other")
    stranger = wg.add_student(other.id, "Stranger")
    refused = client.post(world.url(f"/programs/{program.id}/groups/generate"), json={
        "together": [[str(kids["Ann"]["id"]), str(stranger["id"])]]},
        headers=world.headers("admin"))
    assert refused.status_code == 422


def test_regenerating_removes_the_generated_groups_it_left_empty_and_no_others(client,
                                                                                world):
    program = new_program(world, max_weeks=2)
    wg = manager(world)
    kids = [wg.add_student(program.id, f"Kid {i}", "Red") for i in range(4)]
    generate(client, world, program, max_group_size=1, week_number=2)  # Red Group 1-4
    manual = new_group(world, program, "Manual")
    generate(client, world, program, max_group_size=1)
    move(client, world, program, 2, kids[:1], manual)  # week 2: Red Group 1 freed
    regenerated = generate(client, world, program, max_group_size=2)
    # week 1 uses groups 1-2; groups 3-4 still hold members in week 2: all kept
    assert [g["name"] for g in view(client, world, program, 2)["groups"]] == [
        "Manual", "Red Group 1", "Red Group 2", "Red Group 3", "Red Group 4"]
    generate(client, world, program, max_group_size=4, week_number=2)
    generate(client, world, program, max_group_size=4)
    # now groups 2-4 are empty in every week: removed; the manual group stays
    names = ["Manual", "Red Group 1"]
    assert [g["name"] for g in view(client, world, program, 1)["groups"]] == names
    assert [g["name"] for g in view(client, world, program, 2)["groups"]] == names
    assert regenerated["groups"]


# ------------------------------------------------------------------------- the algorithm

students_strategy = st.lists(st.tuples(
    st.sampled_from(["Red", "Blue", None]), st.integers(min_value=0, max_value=3000),
    st.booleans()), min_size=0, max_size=40)


def as_students(rows) -> list[dict]:
    return [{"_id": ObjectId(f"{index:024x}"), "name": f"S{index}", "ability_level": level,
             "birth_date": TODAY - timedelta(days=1000 + days) if born else None}
            for index, (level, days, born) in enumerate(rows)]


@settings(max_examples=60, deadline=None)
@given(students_strategy, st.integers(min_value=1, max_value=6))
def test_without_pairs_generation_is_chunking_the_ordered_students(rows, size):
    students = as_students(rows)
    plan = generation_plan(students, size, TODAY)
    for level in {s["ability_level"] or "Unknown" for s in students}:
        ordered = generation_order([s for s in students
                                    if (s["ability_level"] or "Unknown") == level], TODAY)
        chunks = [ordered[i:i + size] for i in range(0, len(ordered), size)]
        assert [plan[f"{level} Group {n + 1}"] for n in range(len(chunks))] == chunks


@settings(max_examples=60, deadline=None)
@given(students_strategy, st.integers(min_value=2, max_value=6), st.randoms(), st.data())
def test_pairs_sizes_and_order_independence(rows, size, random, data):
    students = as_students(rows)
    ids = [s["_id"] for s in students]
    pairs = st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=6) \
        if ids else st.just([])
    together = [(a, b) for a, b in data.draw(pairs) if a != b][:1]
    apart = [(a, b) for a, b in data.draw(pairs) if a != b and {a, b} != set(together[0]
                                                                              if together
                                                                              else ())]
    plan = generation_plan(students, size, TODAY, together=together, apart=apart)
    group_of = {s["_id"]: name for name, members in plan.items() for s in members}
    assert sorted(group_of, key=str) == sorted(ids, key=str)  # everyone once
    assert sum(len(m) for m in plan.values()) == len(ids)
    assert all(0 < len(members) <= size for members in plan.values())
    level = {s["_id"]: s["ability_level"] for s in students}
    for a, b in together:
        if level[a] == level[b]:
            assert group_of[a] == group_of[b]
    for a, b in apart:
        linked = {a, b} <= {x for pair in together for x in pair}
        if not linked:
            assert group_of[a] != group_of[b]
    shuffled = list(students)
    random.shuffle(shuffled)
    assert generation_plan(shuffled, size, TODAY, together=together, apart=apart) == plan


def test_a_generation_drops_the_weeks_waitlists_so_the_preview_holds(client, world):
    program = new_program(world)
    wg = manager(world)
    kids = [wg.add_student(program.id, f"Kid {i}", "Red", birth_date=birth(8 + i))
            for i in range(3)]
    full = new_group(world, program, "Full", max_size=1)
    move(client, world, program, 1, kids[:1], full)
    queued = client.post(world.url(f"/programs/{program.id}/weeks/1/moves"), json={
        "student_ids": [str(kids[1]["id"])], "group_id": str(full.id), "waitlist": True},
        headers=world.headers("admin"))
    assert queued.status_code == 202
    preview = generate(client, world, program, max_group_size=2, dry_run=True)
    committed = generate(client, world, program, max_group_size=2)
    assert grouping(committed) == grouping(preview)
    waiting = client.get(world.url(f"/programs/{program.id}/weeks/1/groups/{full.id}"
                                   f"/waitlist"), headers=world.headers("admin")).json
    assert waiting["students"] == []

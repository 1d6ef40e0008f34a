"""The performance report (make bench).

1. Database round trips of every main read endpoint at two data sizes: the demo school, then
   the same school grown several times over. A read whose count grows with the data makes a
   query per item somewhere; the two columns must be equal.
2. The nightly import against raw PyMongo `insert_many` (scripts/bench_import.py).
3. The load test's throughput (scripts/loadtest.py, shorter run).

Everything runs on throwaway embedded SecantusDB servers. The figures are printed as a table and
written to var/bench.json.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

SMALL, LARGE = "demo school", "grown school"


def read_endpoints(client, headers) -> dict[str, str]:
    """The reads to measure, with ids taken from the demo data."""
    def first(path, **match):
        items = client.get(path, headers=headers).json["items"]
        return next(i for i in items if all(i.get(k) == v for k, v in match.items()))

    staff = first("/users?role=staff")["id"]
    program = first("/programs")["id"]
    student = client.get(f"/programs/{program}/students", headers=headers).json["items"][0]["id"]
    track = first("/tracks")["id"]
    projects = [p["id"] for p in client.get("/projects", headers=headers).json["items"]]
    teams_project = next(p for p in projects
                         if client.get(f"/projects/{p}/teams", headers=headers).json["total"])
    return {
        "staff grid": f"/timetable/staff/{staff}",
        "assignments": "/timetable/assignments",
        "conflicts": "/timetable/conflicts",
        "week view": f"/programs/{program}/weeks/1",
        "student history": f"/programs/{program}/students/{student}/history",
        "track detail": f"/tracks/{track}",
        "instructor loads": f"/tracks/{track}/instructor-loads",
        "project teams": f"/projects/{teams_project}/teams",
        "users": "/users",
        "departments": "/departments",
        "audit": "/audit",
    }


def round_trips(client, headers, endpoints: dict[str, str]) -> dict[str, int]:
    from documents.connection import ROUND_TRIPS

    counts = {}
    for name, path in endpoints.items():
        with ROUND_TRIPS.record() as commands:
            response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{name}: GET {path} answered {response.status_code}")
        counts[name] = len(commands)
    return counts


def grow(client, headers, factor: int, log) -> None:
    """Add `factor` times more staff with timetables, program students, track enrolments and
    project teams to the demo school, through the API."""
    def post(path, body):
        response = client.post(path, json=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.json}")
        return response.json

    periods = client.get("/timetable/periods", headers=headers).json["items"]
    staff_ids, student_ids = [], []
    for i in range(8 * factor):
        staff = post("/users", {"email": f"bench-staff{i}@bench.test", "name": f"Bench {i}",
                                "role": "staff", "department": "Mathematics"})
        staff_ids.append(staff["id"])
        for day in range(5):
            post("/timetable/assignments", {
                "staff_id": staff["id"], "period_id": periods[(i + day) % len(periods)]["id"],
                "day_of_week": day, "classes": [{"class_id": f"B{i}-{day}", "subject": "Maths",
                                                 "room_number": f"B{i}"}]})
    log(f"  +{len(staff_ids)} staff with 5 assignments each")
    program = client.get("/programs", headers=headers).json["items"][0]["id"]
    for i in range(30 * factor):
        post(f"/programs/{program}/students", {
            "name": f"Bench pupil {i}", "ability_level": ("Beginner", "Advanced")[i % 2],
            "birth_date": f"201{i % 8}-0{1 + i % 9}-1{i % 9}", "customer_id": f"BENCH-{i}"})
    post(f"/programs/{program}/groups/generate", {"max_group_size": 8, "week_number": 1})
    log(f"  +{30 * factor} program students, week 1 regenerated")
    for i in range(30 * factor):
        student_ids.append(post("/users", {"email": f"bench-student{i}@bench.test",
                                           "name": f"Bench student {i}",
                                           "role": "student"})["id"])
    track = client.get("/tracks", headers=headers).json["items"][0]["id"]
    post(f"/tracks/{track}/students", {"student_ids": student_ids})
    log(f"  +{len(student_ids)} track enrolments")
    projects = [p["id"] for p in client.get("/projects", headers=headers).json["items"]]
    project = next(p for p in projects
                   if client.get(f"/projects/{p}/teams", headers=headers).json["total"])
    for i in range(4 * factor):
        team = post(f"/projects/{project}/teams", {"team_name": f"Bench team {i}"})
        post(f"/project-teams/{team['id']}/members",
             {"members": [{"user_id": s} for s in student_ids[i * 3:(i + 1) * 3]]})
    log(f"  +{4 * factor} project teams")


def measure_reads(factor: int, log) -> dict:
    from api import create_app
    from api.security import issue_tokens
    from documents.accounts import School, User
    from scripts import embedded
    from scripts.seed_demo import SCHOOLS, seed

    work = Path(tempfile.mkdtemp(prefix="rota-bench-"))
    server = embedded.start(work / "db")
    try:
        app = create_app({"MONGODB_URI": server.uri + "rota_bench",
                          "JWT_SECRET_KEY": secrets.token_urlsafe(32)})
        with app.app_context():
            seed(log=lambda line: None)
            school = School.objects.get(code=SCHOOLS[0][1])
            admin = User.objects.get(school_id=school.id, role="school_admin")
            headers = {"Authorization": f"Bearer {issue_tokens(admin)['access_token']}"}
            client = app.test_client()
            prefix = f"/api/v1/schools/{school.id}"

            class Scoped:
                def get(self, path, **kw):
                    return client.get(prefix + path, **kw)

                def post(self, path, **kw):
                    return client.post(prefix + path, **kw)

            scoped = Scoped()
            endpoints = read_endpoints(scoped, headers)
            small = round_trips(scoped, headers, endpoints)
            log(f"growing the school x{factor}...")
            grow(scoped, headers, factor, log)
            large = round_trips(scoped, headers, endpoints)
        return {name: {SMALL: small[name], LARGE: large[name]} for name in endpoints}
    finally:
        server.stop()


def measure_import(rows: int) -> dict:
    from scripts import bench_import

    return bench_import.measure(rows, log=print)


def measure_load(seconds: float) -> dict:
    from scripts import loadtest

    return loadtest.measure(seconds)


def print_report(report: dict) -> None:
    print(f"\n{'read endpoint':<20}{SMALL:>14}{LARGE:>14}  round trips")
    for name, counts in report["round_trips"].items():
        same = "equal" if counts[SMALL] == counts[LARGE] else "GROWS"
        print(f"{name:<20}{counts[SMALL]:>14}{counts[LARGE]:>14}  {same}")
    if "import" in report:
        figures = report["import"]
        print(f"\nimport of {figures['rows']:,} assignment rows: "
              f"{figures['import_seconds']:.1f} s; raw insert_many of the same documents "
              f"{figures['raw_same_seconds']:.1f} s: ratio {figures['ratio']:.2f} "
              f"(target <= 2.0); to the assignments alone {figures['ratio_assignments']:.2f}")
    if "load" in report:
        figures = report["load"]
        print(f"load: {figures['requests']} requests in {figures['seconds']:.0f} s = "
              f"{figures['throughput']:.1f}/s, p50 {figures['p50_ms']:.0f} ms, "
              f"p95 {figures['p95_ms']:.0f} ms, invariants "
              f"{'ok' if figures['invariants_ok'] else 'BROKEN'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=int, default=4, help="how much larger the grown school")
    parser.add_argument("--import-rows", type=int, default=20_000, help="0 skips the import")
    parser.add_argument("--load-seconds", type=float, default=20, help="0 skips the load test")
    args = parser.parse_args(argv)
    from api.config import var_dir

    started = time.monotonic()
    report = {"round_trips": measure_reads(args.factor, print)}
    if args.import_rows:
        report["import"] = measure_import(args.import_rows)
    if args.load_seconds:
        report["load"] = measure_load(args.load_seconds)
    print_report(report)
    out = var_dir() / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out} ({time.monotonic() - started:.0f} s)")
    grows = [n for n, c in report["round_trips"].items() if c[SMALL] != c[LARGE]]
    return 1 if grows or not report.get("load", {}).get("invariants_ok", True) else 0


if __name__ == "__main__":
    sys.exit(main())

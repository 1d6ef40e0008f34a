"""The performance report (make bench).

1. Database round trips of every main read endpoint at two data sizes: the demo school, then
   the same school grown several times over. A read whose count grows with the data makes a
   query per item somewhere; the two columns must be equal, and at most MAX_ROUND_TRIPS
   (the token and tenancy checks included).
2. The nightly imports (scripts/bench_import.py): students rows/s, and 20,000 assignment rows
   against a raw PyMongo `insert_many` of the same documents.
3. The mixed load (scripts/loadtest.py: 16 users, 4 workers), then `GET /health` under the
   same 16 users in the same run: the ceiling of this stack on this machine. The figure is the
   ratio of the two throughputs, which holds still across noisy machines far better than
   either alone.

Everything runs on throwaway embedded SecantusDB servers. The figures are printed and written
to var/bench.json.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

SMALL, LARGE = "small", "large"
MAX_ROUND_TRIPS = 4
TARGET_LOAD_TO_HEALTH = 0.35
STUDENTS_TARGET_ROWS_PER_S = 1000
ASSIGNMENTS_TARGET_RATIO = 2.0


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
        # WARNING: no access line per measured request among the report's own lines.
        app = create_app({"MONGODB_URI": server.uri + "rota_bench",
                          "JWT_SECRET_KEY": secrets.token_urlsafe(32),
                          "ROTA_LOG_LEVEL": "WARNING"})
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


def measure_import(assignment_rows: int, student_rows: int) -> dict:
    from scripts import bench_import

    assignments = bench_import.measure(assignment_rows, log=print)
    return {"students_rows_per_s": bench_import.measure_students(student_rows, log=print),
            "assignments_ratio": assignments["assignments_ratio"],
            "assignments_ratio_same_documents": assignments["ratio_same_documents"]}


def measure_load(seconds: float) -> dict:
    from scripts import loadtest

    figures = loadtest.measure(seconds, users=16, workers=4, health_seconds=seconds / 2)
    health = figures.pop("health")
    ratio = figures.pop("load_to_health_ratio")
    return {"load": figures, "health": health, "load_to_health_ratio": ratio}


def print_report(report: dict) -> None:
    print(f"\n{'read endpoint':<20}{'demo school':>14}{'grown school':>14}  round trips "
          f"(at most {MAX_ROUND_TRIPS}, equal)")
    for name, counts in report["round_trips"].items():
        verdict = "ok" if _read_ok(counts) else "FAIL"
        print(f"{name:<20}{counts[SMALL]:>14}{counts[LARGE]:>14}  {verdict}")
    if "import" in report:
        figures = report["import"]
        print(f"\nstudents import: {figures['students_rows_per_s']:,.0f} rows/s "
              f"(target >= {STUDENTS_TARGET_ROWS_PER_S:,})")
        print(f"assignments import / raw insert_many of its slot documents: "
              f"{figures['assignments_ratio']:.2f} (target <= {ASSIGNMENTS_TARGET_RATIO}); "
              f"/ raw insert_many of every document it writes (slots and audit events): "
              f"{figures['assignments_ratio_same_documents']:.2f}")
    if "load" in report:
        load, health = report["load"], report["health"]
        print(f"\nmixed load: {load['requests_per_s']:.1f} requests/s, p50 "
              f"{load['p50_ms']:.0f} ms, p95 {load['p95_ms']:.0f} ms, invariants "
              f"{'ok' if load['invariants_ok'] else 'BROKEN'}")
        print(f"GET /health: {health['requests_per_s']:.1f} requests/s, p50 "
              f"{health['p50_ms']:.0f} ms, p95 {health['p95_ms']:.0f} ms")
        print(f"mixed / health: {report['load_to_health_ratio']:.2f} "
              f"(aim >= {TARGET_LOAD_TO_HEALTH})")


def _read_ok(counts: dict) -> bool:
    return counts[SMALL] == counts[LARGE] <= MAX_ROUND_TRIPS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=int, default=4, help="how much larger the grown school")
    parser.add_argument("--import-rows", type=int, default=20_000,
                        help="assignment rows to import; 0 skips the imports")
    parser.add_argument("--student-rows", type=int, default=5_000)
    parser.add_argument("--load-seconds", type=float, default=30, help="0 skips the load test")
    args = parser.parse_args(argv)
    from api.config import var_dir

    started = time.monotonic()
    report = {"round_trips": measure_reads(args.factor, print)}
    if args.import_rows:
        report["import"] = measure_import(args.import_rows, args.student_rows)
    if args.load_seconds:
        report.update(measure_load(args.load_seconds))
    print_report(report)
    out = var_dir() / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out} ({time.monotonic() - started:.0f} s)")
    reads_ok = all(_read_ok(counts) for counts in report["round_trips"].values())
    return 0 if reads_ok and report.get("load", {}).get("invariants_ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Mixed load against the real service, then the invariant checker.

    python -m scripts.loadtest --seconds 60            (make loadtest)
    python -m scripts.loadtest --seconds 30 --fault db-stop
    python -m scripts.loadtest --seconds 30 --fault kill-worker

Starts a throwaway SecantusDB and gunicorn with 4 workers on loopback, arranges a school (staff
with timetables, a program with full-ish groups), then many users at once read grids, move
students, request swaps and accept them until the time is up. Afterwards it prints requests
served, errors by status, p50/p95 latency and throughput, reads the database and checks: no
staff, class or room double booked, no group over capacity, no student in two groups in one
week, every accepted swap executed exactly once, every successful mutation audited.

Loopback only, bounded in time and in requests; it stops by itself.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

STAFF = 24
PERIODS = 6
DAYS = (0, 1, 2, 3, 4)
STUDENTS = 120
GROUP_SIZE = 8
MAX_REQUESTS = 200_000


@dataclass
class Stats:
    statuses: Counter = field(default_factory=Counter)
    latencies: list = field(default_factory=list)
    mutations_ok: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, action: str, response: requests.Response | None, seconds: float):
        status = response.status_code if response is not None else "connection-error"
        with self.lock:
            self.statuses[(action, status)] += 1
            self.latencies.append(seconds)
            if action != "grid" and isinstance(status, int) and 200 <= status < 300 \
                    and changed_something(action, response):
                self.mutations_ok[action] += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


def changed_something(action: str, response: requests.Response) -> bool:
    """A move of a student into the group they are already in answers 200 and changes (and
    audits) nothing."""
    return action != "move" or bool(response.json().get("moved_student_ids"))


class Scenario:
    """The arranged school and what the virtual users do in it."""

    def __init__(self, base_url: str, school_id: str, tokens: dict, staff_ids: list[str],
                 admin_id: str):
        self.base = f"{base_url}/api/v1/schools/{school_id}"
        self.tokens = tokens
        self.staff_ids = staff_ids
        self.admin_id = admin_id
        self.program_id = None
        self.group_ids: list[str] = []
        self.student_ids: list[str] = []
        self.pending: list[tuple[str, str]] = []  # (request id, target staff id)
        self.pending_lock = threading.Lock()
        self.session = threading.local()

    def http(self) -> requests.Session:
        if not hasattr(self.session, "value"):
            self.session.value = requests.Session()
        return self.session.value

    def call(self, method, path, user_id, **kwargs):
        headers = {"Authorization": f"Bearer {self.tokens[user_id]}"}
        return self.http().request(method, self.base + path, headers=headers, timeout=15,
                                   **kwargs)

    def arrange(self, log) -> None:
        admin = self.admin_id
        self.call("PUT", "/timetable/settings", admin, json={
            "working_days": list(DAYS), "default_period_duration": 45,
            "allow_overlapping_assignments": False}).raise_for_status()
        periods = []
        for number in range(1, PERIODS + 1):
            start = 8 * 60 + (number - 1) * 50
            response = self.call("POST", "/timetable/periods", admin, json={
                "period_number": number, "period_name": f"Period {number}",
                "start_time": f"{start // 60:02d}:{start % 60:02d}",
                "end_time": f"{(start + 45) // 60:02d}:{(start + 45) % 60:02d}"})
            response.raise_for_status()
            periods.append(response.json()["id"])
        rng = random.Random(7)
        for index, staff_id in enumerate(self.staff_ids):
            for day in DAYS:
                for period_id in rng.sample(periods, 3):
                    self.call("POST", "/timetable/assignments", admin, json={
                        "staff_id": staff_id, "period_id": period_id, "day_of_week": day,
                        "classes": [{"class_id": f"C{index}-{day}", "subject": "Maths",
                                     "room_number": f"R{index}"}]})
        log(f"  timetable: {len(self.staff_ids)} staff x {len(DAYS)} days x 3 periods")
        program = self.call("POST", "/programs", admin, json={"name": "Load program",
                                                              "max_weeks": 4})
        program.raise_for_status()
        self.program_id = program.json()["id"]
        for i in range(STUDENTS):
            response = self.call("POST", f"/programs/{self.program_id}/students", admin, json={
                "name": f"Student {i}", "ability_level": ("Beginner", "Advanced")[i % 2],
                "birth_date": f"20{10 + i % 8:02d}-0{1 + i % 9}-1{i % 9}",
                "customer_id": f"LOAD-{i}"})
            response.raise_for_status()
            self.student_ids.append(response.json()["id"])
        self.call("POST", f"/programs/{self.program_id}/groups/generate", admin,
                  json={"max_group_size": GROUP_SIZE, "week_number": 1}).raise_for_status()
        week = self.call("GET", f"/programs/{self.program_id}/weeks/1", admin).json()
        self.group_ids = [group["group_id"] for group in week["groups"]]
        log(f"  weekly groups: {STUDENTS} students in {len(self.group_ids)} groups of "
            f"{GROUP_SIZE}")

    def grid(self, rng):
        staff_id = rng.choice(self.staff_ids)
        return self.call("GET", f"/timetable/staff/{staff_id}", staff_id)

    def move(self, rng):
        week = rng.choice((1, 2))
        return self.call("POST", f"/programs/{self.program_id}/weeks/{week}/moves",
                         self.admin_id, json={"student_ids": [rng.choice(self.student_ids)],
                                              "group_id": rng.choice(self.group_ids)})

    def request_swap(self, rng):
        requester, target = rng.sample(self.staff_ids, 2)
        mine = self.call("GET", f"/timetable/assignments?staff_id={requester}", requester)
        items = mine.json().get("items", []) if mine.ok else []
        if not items:
            return mine
        response = self.call("POST", "/timetable/alteration-requests", requester, json={
            "assignment_id": rng.choice(items)["id"], "target_staff_id": target,
            "reason": "load test"})
        if response.status_code == 201:
            with self.pending_lock:
                self.pending.append((response.json()["id"], target))
        return response

    def accept(self, rng):
        with self.pending_lock:
            if not self.pending:
                return None
            request_id, target = self.pending.pop(rng.randrange(len(self.pending)))
        return self.call("POST", f"/timetable/alteration-requests/{request_id}/accept", target,
                         json={})


ACTIONS = (("grid", 50), ("move", 25), ("request_swap", 15), ("accept", 10))


def run_load(scenario: Scenario, seconds: float, users: int, stats: Stats) -> None:
    deadline = time.monotonic() + seconds
    names, weights = zip(*ACTIONS, strict=True)

    def user(seed: int):
        rng = random.Random(seed)
        while time.monotonic() < deadline and stats.total < MAX_REQUESTS:
            action = rng.choices(names, weights)[0]
            started = time.monotonic()
            try:
                response = getattr(scenario, action)(rng)
            except requests.RequestException:
                response = None
            if response is None and action == "accept":
                continue
            stats.record(action, response, time.monotonic() - started)

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)


def run_health(base_url: str, seconds: float, users: int) -> Stats:
    """The same number of users calling `GET /health` (one database ping each): the ceiling
    of this stack on this machine, against which the mixed load is read."""
    stats, deadline = Stats(), time.monotonic() + seconds

    def user():
        session = requests.Session()
        while time.monotonic() < deadline and stats.total < MAX_REQUESTS:
            started = time.monotonic()
            try:
                response = session.get(base_url + "/api/v1/health", timeout=15)
            except requests.RequestException:
                response = None
            stats.record("grid", response, time.monotonic() - started)

    threads = [threading.Thread(target=user, daemon=True) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return stats


def figures_of(stats: Stats, seconds: float) -> dict:
    ordered = sorted(stats.latencies) or [0.0]
    return {"requests": stats.total, "seconds": seconds,
            "requests_per_s": stats.total / seconds,
            "p50_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000}


def print_stats(stats: Stats, seconds: float) -> None:
    print(f"\nrequests served: {stats.total} in {seconds:.0f}s "
          f"({stats.total / seconds:.1f}/s)")
    by_status = Counter()
    for (_action, status), count in stats.statuses.items():
        by_status[status] += count
    print("by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items(),
                                                                     key=str)))
    for (action, status), count in sorted(stats.statuses.items(), key=str):
        print(f"  {action:<13} {status}: {count}")
    if stats.latencies:
        ordered = sorted(stats.latencies)
        p95 = ordered[int(len(ordered) * 0.95) - 1]
        print(f"latency p50 {statistics.median(ordered) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms")


def inject_fault(kind: str, after: float, env: Environment, log) -> None:
    def fault():
        time.sleep(after)
        if kind == "db-stop":
            log(f"\n[fault] stopping the database for 5 s at t={after:.0f}s")
            env.database.stop()
            time.sleep(5)
            env.restart_database()
            log("[fault] database back")
        elif kind == "kill-worker":
            workers = worker_pids(env.live.process.pid)
            if workers:
                log(f"\n[fault] SIGKILL worker {workers[0]} at t={after:.0f}s")
                os.kill(workers[0], signal.SIGKILL)

    threading.Thread(target=fault, daemon=True).start()


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


class Environment:
    """A throwaway SecantusDB, the service under gunicorn, and a school with staff tokens."""

    def __init__(self, workers: int, log):
        self.workers = workers
        self.log = log
        self.work = Path(tempfile.mkdtemp(prefix="rota-load-"))
        self.secret = secrets.token_urlsafe(32)

    def __enter__(self) -> Environment:
        from documents import all_documents
        from documents.connection import connect, database_name, ensure_indexes
        from scripts import embedded
        from scripts.live import start_live_server

        self.database = embedded.start(self.work / "db")
        self.uri = self.database.uri + "rota_load"
        connect(self.uri)
        ensure_indexes(all_documents())
        import pymongo

        self.db = pymongo.MongoClient(self.uri)[database_name(self.uri)]
        self.live = start_live_server(self.uri, self.secret, self.work, workers=self.workers)
        connect(self.uri)  # the server start-up used and closed this process's connection
        self.log(f"service on {self.live.base_url} ({self.workers} workers), "
                 f"SecantusDB on port {self.database.port}")
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()
        self.database.stop()

    def restart_database(self) -> None:
        from scripts import embedded

        self.database = embedded.start(self.work / "db", port=self.database.port)

    def scenario(self, staff_count: int, scenario_class) -> Scenario:
        from api import create_app
        from api.security import issue_tokens
        from documents.accounts import Company, ModuleSwitches, School, User
        from service.context import MODULES

        company = Company(name=f"Load {secrets.token_hex(3)}").save()
        school = School(company_id=company.id, name="Load School", code=secrets.token_hex(4),
                        modules=ModuleSwitches(**{m: True for m in MODULES})).save()
        people = [User(email=f"admin-{secrets.token_hex(4)}@load.test", name="Admin",
                       role="school_admin", company_id=company.id, school_id=school.id).save()]
        people += [User(email=f"staff{i}-{secrets.token_hex(4)}@load.test", name=f"Staff {i}",
                        role="staff", department=("Maths", "Science")[i % 2],
                        company_id=company.id, school_id=school.id).save()
                   for i in range(staff_count)]
        app = create_app({"MONGODB_URI": self.uri, "JWT_SECRET_KEY": self.secret,
                          "ROTA_CREATE_INDEXES": False, "JWT_ACCESS_TOKEN_EXPIRES": 3600})
        with app.app_context():
            tokens = {str(u.id): issue_tokens(u)["access_token"] for u in people}
        return scenario_class(self.live.base_url, str(school.id), tokens,
                              [str(u.id) for u in people[1:]], str(people[0].id))

    def now(self):
        from documents.base import utcnow

        return utcnow()

    def check(self, stats: Stats, since, workers_before: list[int], fault: str | None) -> bool:
        from scripts.invariants import check_all, report

        print("\ninvariants:")
        ok = report(check_all(self.db))
        audited = self.db.audit_events.count_documents({"created_at": {"$gte": since}})
        succeeded = sum(stats.mutations_ok.values())
        audit_ok = audited >= succeeded
        print(f"  {'ok  ' if audit_ok else 'FAIL'} every successful mutation audited "
              f"({succeeded} mutations, {audited} audit events)")
        server_errors = {status: n for (_a, status), n in stats.statuses.items()
                         if not isinstance(status, int) or status >= 500}
        allowed = {503, "connection-error"} if fault else set()
        unexpected = {s: n for s, n in server_errors.items() if s not in allowed}
        print(f"  {'ok  ' if not unexpected else 'FAIL'} no unexpected server errors "
              f"{unexpected or ''}")
        workers_after = worker_pids(self.live.process.pid)
        workers_ok = len(workers_after) == len(workers_before)
        print(f"  {'ok  ' if workers_ok else 'FAIL'} {len(workers_after)} of "
              f"{len(workers_before)} workers alive"
              + (" (the killed one replaced)" if fault == "kill-worker" else ""))
        healthy = requests.get(self.live.url("/api/v1/health"), timeout=10).status_code == 200
        print(f"  {'ok  ' if healthy else 'FAIL'} service healthy after the run")
        return ok and audit_ok and not unexpected and workers_ok and healthy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=16, help="concurrent virtual users")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--fault", choices=["db-stop", "kill-worker"])
    args = parser.parse_args(argv)
    figures = measure(args.seconds, args.users, args.workers, args.fault)
    return 0 if figures["invariants_ok"] else 1


def measure(seconds: float, users: int = 16, workers: int = 4, fault: str | None = None,
            health_seconds: float = 0, log=print) -> dict:
    """Run the load (and the fault, if any); print and return the figures and the verdict.
    With `health_seconds`, the same users then call `/health` alone for that long, and the
    figures gain `health` and `load_to_health_ratio`."""
    with Environment(workers=workers, log=log) as env:
        scenario = env.scenario(STAFF, Scenario)
        log("arranging the school...")
        scenario.arrange(log)
        stats = Stats()
        since = env.now()
        workers_before = worker_pids(env.live.process.pid)
        if fault:
            inject_fault(fault, seconds / 3, env, log)
        log(f"load: {users} users for {seconds:.0f}s...")
        run_load(scenario, seconds, users, stats)
        print_stats(stats, seconds)
        ok = env.check(stats, since, workers_before, fault)
        figures = {**figures_of(stats, seconds), "invariants_ok": ok}
        if health_seconds:
            log(f"\nhealth: {users} users on GET /health for {health_seconds:.0f}s...")
            health = figures_of(run_health(env.live.base_url, health_seconds, users),
                                health_seconds)
            figures["health"] = health
            figures["load_to_health_ratio"] = (figures["requests_per_s"]
                                               / max(health["requests_per_s"], 1e-9))
    return figures


if __name__ == "__main__":
    sys.exit(main())

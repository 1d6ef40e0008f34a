"""`rota serve` as an operator runs it: the embedded database, demo data on a new database,
and a clean stop on SIGTERM or SIGINT that leaves no gunicorn or database process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scripts.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def descendants(pid: int) -> set[int]:
    found, pending = set(), [pid]
    while pending:
        children = Path(f"/proc/{pending.pop()}/task")
        for task in children.glob("*/children") if children.exists() else []:
            for child in map(int, task.read_text().split()):
                if child not in found:
                    found.add(child)
                    pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_serve(tmp_path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "ROTA_VAR_DIR": str(tmp_path / "var"), "ROTA_ENV": "development"}
    env.pop("MONGODB_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "serve", "--port", str(port), "--workers", "2",
         "--db-port", str(free_port())],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(base + "/health", timeout=1).status_code == 200:
                return process, base
        except requests.RequestException:
            time.sleep(0.3)
    process.kill()
    pytest.fail(f"rota serve did not come up:\n{process.stdout.read()}")


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_gunicorn_and_the_database_leaving_no_process(tmp_path, signum):
    process, base = start_serve(tmp_path)
    login = requests.post(base + "/auth/login", json={"email": "admin@demo-north.demo.test",
                                                      "password": "demo-password"}, timeout=10)
    assert login.status_code == 200, "a new database gets the demo data and its logins"
    children = descendants(process.pid)
    assert len(children) >= 4  # gunicorn master, 2 workers, the database
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.2)
    assert [pid for pid in children if alive(pid)] == []
    assert not (tmp_path / "var" / "db" / "rota-server.pid").exists()

"""The service under gunicorn on loopback, for concurrency tests, fuzzing, load and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from scripts.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LiveServer:
    """gunicorn serving the API over HTTP on loopback."""

    process: subprocess.Popen
    base_url: str
    uri: str
    log_path: Path  # gunicorn's output: the JSON log lines of every worker
    world: object = None  # tests attach their World here

    def url(self, path: str) -> str:
        return self.base_url + path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_live_server(uri: str, jwt_secret: str, log_dir: Path, workers: int = 4) -> LiveServer:
    from documents import all_documents
    from documents.connection import connect, disconnect, ensure_indexes

    connect(uri)
    ensure_indexes(all_documents())
    disconnect()
    port = free_port()
    env = {**os.environ, "MONGODB_URI": uri, "ROTA_JWT_SECRET": jwt_secret,
           "ROTA_CREATE_INDEXES": "0", "ROTA_ENV": "test",
           "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "metrics")}
    log_path = log_dir / "gunicorn.log"
    log = open(log_path, "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:scripts.gunicorn_config",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "60",
         "api:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(process, f"http://127.0.0.1:{port}", uri, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(server.url("/api/v1/health"), timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the live server did not start; see {log_dir / 'gunicorn.log'}")

"""The embedded database: SecantusDB, a single-node MongoDB-wire server on WiredTiger.

It is installed by pip with the project's `embedded` extra and always runs as its own process
through its `secantusd-py` command. The service never imports it (it is GPL-2.0): it talks to
it over the wire like to any MongoDB. It is a development and test server; production runs on
MongoDB through `MONGODB_URI`.

A lock file in the data directory names the process that owns it, so a command never starts a
second server over a directory that a running server still uses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_COMMAND = "secantusd-py"
LOCK_FILE = "rota-server.pid"


class EmbeddedUnavailable(RuntimeError):
    """The embedded server cannot be started here; the message says why."""


def server_command() -> str:
    """`secantusd-py` beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / SERVER_COMMAND
    if beside.exists():
        return str(beside)
    found = shutil.which(SERVER_COMMAND)
    if not found:
        raise EmbeddedUnavailable(
            "SecantusDB is not installed: run `pip install -e '.[embedded]'` "
            "(make run and make test do), or set MONGODB_URI to a MongoDB server")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedServer:
    """A running SecantusDB process storing its WiredTiger files in `data_dir`."""

    process: subprocess.Popen
    port: int
    data_dir: Path

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _release_lock(self.data_dir, self.process.pid)


def owner_of(data_dir: Path) -> int | None:
    """The pid of a live server that owns `data_dir`, if any."""
    try:
        pid = int((Path(data_dir) / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def start(data_dir: Path | None, port: int | None = None, log=print) -> EmbeddedServer:
    """Start SecantusDB on loopback and wait until it answers. `data_dir=None` keeps the data
    in a temporary directory the server removes when it stops (tests, benchmarks)."""
    command = server_command()
    port = port or free_port()
    if data_dir is None:
        storage, data_dir = ":memory:", None
    else:
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        owner = owner_of(data_dir)
        if owner:
            raise EmbeddedUnavailable(
                f"{data_dir} is in use by the embedded server with pid {owner}; connect to it "
                "with --db-port, or stop it first")
        storage = str(data_dir / "data")
    log_dir = data_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    logfile = open(log_dir / f"secantusd-{port}.log", "ab")
    process = subprocess.Popen(
        [command, "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage,
         "--log-level", "WARNING"],
        stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    server = EmbeddedServer(process, port, data_dir)
    if data_dir is not None:
        (data_dir / LOCK_FILE).write_text(f"{process.pid} {port}\n")
    try:
        wait_until_answering(server, logfile.name)
    except EmbeddedUnavailable:
        server.stop()
        raise
    return server


def _release_lock(data_dir: Path | None, pid: int) -> None:
    if data_dir is None:
        return
    lock = data_dir / LOCK_FILE
    try:
        if lock.read_text().split()[0] == str(pid):
            lock.unlink()
    except (OSError, IndexError):
        pass


def wait_until_answering(server: EmbeddedServer, log_path: str, timeout: float = 60) -> None:
    import pymongo

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise EmbeddedUnavailable(
                f"SecantusDB exited with code {server.process.returncode}; see {log_path}")
        try:
            client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=300,
                                         directConnection=True)
            client.admin.command("ping")
            client.close()
            return
        except pymongo.errors.PyMongoError:
            time.sleep(0.1)
    raise EmbeddedUnavailable(f"SecantusDB did not answer on port {server.port} within {timeout}s")

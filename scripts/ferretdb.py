"""The embedded database: FerretDB v1 with its SQLite handler, built once and cached.

`go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.x` does not work as such: the
module proxy refuses the version list that `go install` reads for deprecation notices, and the
module zip lacks `build/version/version.txt`, without which the binary panics at start. So we
download the module at a pinned version, copy it, write that file, and `go build` it. The binary
is cached per version under ~/.cache so a fresh clone on the same machine does not rebuild it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FERRETDB_VERSION = os.environ.get("ROTA_FERRETDB_VERSION", "v1.24.2")
MODULE = "github.com/FerretDB/FerretDB"


class FerretDBUnavailable(RuntimeError):
    """FerretDB cannot be installed or started here; the message says why."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "rota" / "ferretdb" / FERRETDB_VERSION


def binary_path() -> Path:
    override = os.environ.get("ROTA_FERRETDB_BIN")
    return Path(override) if override else cache_dir() / "ferretdb"


def ensure_binary(log=print) -> Path:
    """Return the cached binary, building it first when it is missing."""
    binary = binary_path()
    if binary.exists():
        return binary
    go = shutil.which("go")
    if not go:
        raise FerretDBUnavailable(
            "Go is not installed, so the embedded FerretDB cannot be built "
            "(install Go >= 1.22, or set MONGODB_URI to a MongoDB server)"
        )
    log(f"Building FerretDB {FERRETDB_VERSION} into {binary} "
        "(once per machine, about 2 minutes)...")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rota-ferretdb-") as tmp:
        source = _download_module(go, Path(tmp))
        (source / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        partial = binary.with_suffix(".partial")
        _run([go, "build", "-o", str(partial), "./cmd/ferretdb"], cwd=source)
        partial.replace(binary)
    log(f"FerretDB {FERRETDB_VERSION} built.")
    return binary


def _download_module(go: str, tmp: Path) -> Path:
    # `go mod download` needs a module context to run in; an empty one will do.
    (tmp / "go.mod").write_text("module rota/ferretdb-download\n\ngo 1.21\n")
    out = _run([go, "mod", "download", "-json", f"{MODULE}@{FERRETDB_VERSION}"], cwd=tmp)
    module_dir = Path(json.loads(out)["Dir"])
    source = tmp / "src"
    shutil.copytree(module_dir, source)
    for path in source.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    return source


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FerretDBUnavailable(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}"
        )
    return proc.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedServer:
    """A running FerretDB process storing its SQLite files in `data_dir`."""

    process: subprocess.Popen
    port: int
    data_dir: Path

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(data_dir: Path, port: int | None = None, log=print, quiet: bool = True) -> EmbeddedServer:
    """Start FerretDB on loopback and wait until it answers."""
    binary = ensure_binary(log)
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{data_dir}/",
        f"--listen-addr=127.0.0.1:{port}",
        f"--state-dir={data_dir}",
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=warn" if quiet else "--log-level=info",
    ]
    logfile = open(data_dir / "ferretdb.log", "ab")
    process = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT,
                               start_new_session=True)
    server = EmbeddedServer(process, port, data_dir)
    try:
        wait_until_answering(server)
    except FerretDBUnavailable:
        server.stop()
        raise
    return server


def wait_until_answering(server: EmbeddedServer, timeout: float = 30) -> None:
    import pymongo

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise FerretDBUnavailable(
                f"FerretDB exited with code {server.process.returncode}; "
                f"see {server.data_dir / 'ferretdb.log'}"
            )
        try:
            client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=300)
            client.admin.command("ping")
            client.close()
            return
        except pymongo.errors.PyMongoError:
            time.sleep(0.1)
    raise FerretDBUnavailable(f"FerretDB did not answer on port {server.port} within {timeout}s")


if __name__ == "__main__":
    try:
        print(ensure_binary())
    except FerretDBUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

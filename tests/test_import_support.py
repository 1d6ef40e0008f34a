"""Helpers shared by the import tests: files, runs, database snapshots. (No tests here.)"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from scripts.importer import run_export, run_import
from service.imports import registry

VOLATILE = ("_id", "created_at", "updated_at")


def write_csv(path: Path, header: list[str] | tuple[str, ...], rows: list) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(c, "") for c in header] if isinstance(row, dict) else row)
    return path


def write_json_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@dataclass
class Outcome:
    code: int
    output: str
    report: list[dict]

    @property
    def summary(self) -> str:
        return next(line for line in self.output.splitlines() if line.startswith("created "))

    def count(self, status: str) -> int:
        for part in self.summary.split("(")[0].split(" / "):
            name, value = part.split()
            if name == status:
                return int(value)
        raise KeyError(status)

    def reasons(self) -> dict[int, str]:
        return {int(row["line"]): row["reason"] for row in self.report}


def run(kind: str, path: Path, school, **options) -> Outcome:
    """`rota import` in-process (the test app's connection); the summary and the report."""
    out = io.StringIO()
    report = path.with_name(path.name + ".report.csv")
    code = run_import(kind, path, school.code, report_path=report, out=out, **options)
    rows = list(csv.DictReader(report.open())) if report.exists() else []
    return Outcome(code, out.getvalue(), rows)


def export(kind: str, school, path: Path) -> list[dict]:
    assert run_export(kind, school.code, path) == 0
    with open(path) as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == list(registry()[kind].columns)
    return rows


def snapshot(document, school_id, drop: tuple[str, ...] = VOLATILE) -> list:
    """A school's documents of one collection without volatile fields, sorted: for comparing
    the end states of two runs."""
    found = document._get_collection().find({"school_id": school_id})
    cleaned = [{k: v for k, v in d.items() if k not in drop} for d in found]
    return sorted(cleaned, key=repr)


def crash_on_call(monkeypatch, target, name: str, call_number: int):
    """Make `target.name` raise on its `call_number`-th call (1-based): a process dying
    midway through a batch."""
    calls = {"n": 0}

    def crash(*args):
        calls["n"] += 1
        if calls["n"] == call_number:
            raise KeyboardInterrupt("killed")

    replace_function(monkeypatch, target, name, crash)
    return calls


def replace_function(monkeypatch, target, name: str, before):
    """Call `before(*args)` ahead of every call of `target.name`, also where the registry of
    import kinds holds the function itself."""
    original = getattr(target, name)

    def wrapped(*args, **kwargs):
        before(*args)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapped)
    for kind in registry().values():
        for role in ("importer", "exporter", "preload"):
            if getattr(kind, role) is original:
                monkeypatch.setattr(kind, role, wrapped)

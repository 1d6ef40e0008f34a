"""The import job runner: claims a queued (or abandoned) job and imports it batch by batch.

After each batch one conditional update records it (its rejected rows are inserted first,
once per line): `batches_done`, `rows_done`, the counts, and a lease renewed. A runner that
died leaves a `running` job whose lease passes; the next claim resumes it after its last
recorded batch (a batch cut short is re-run, which the importers' idempotence makes safe:
its rows written before the crash count as unchanged). A job claimed `MAX_CLAIMS` times
without finishing is failed with that reason instead of being retried forever.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from documents.base import utcnow
from documents.connection import DUPLICATE_KEY
from documents.imports import ImportFileChunk, ImportJob, ImportRejection
from service import audit, notifications, webhooks
from service.context import SYSTEM
from service.errors import DomainError
from service.import_engine import BatchDone, StoppedMidway, import_kind, one_line, run_batches
from service.import_files import UnusableInput, parse
from service.import_jobs import stored_file
from service.imports import REJECTED
from service.runners import claim, runner_name
from service.tenancy import school_context

log = logging.getLogger(__name__)

LEASE_SECONDS = 120
MAX_CLAIMS = 3
IDLE_SECONDS = 2.0
BATCH_SIZE = 1000
RETRY_SECONDS = 15  # after the database failed under a batch


def run_next_job(runner_id: str | None = None) -> bool:
    """Claim one due job and run it; False when none was due."""
    runner_id = runner_id or runner_name()
    job = claim(ImportJob._get_collection(), ("queued", "running"), "due_at", "running",
                LEASE_SECONDS, runner_id, extra={"$inc": {"claims": 1}})
    if job is None:
        return False
    JobRun(job, runner_id).run()
    return True


class JobRun:
    """One claim of one job, from its last recorded batch to its end."""

    def __init__(self, job: dict, runner_id: str):
        self.job, self.runner_id = job, runner_id
        self.school_id, self.id = job["school_id"], job["_id"]
        self.values: dict[int, dict[str, str]] = {}

    def run(self) -> None:
        if self.job["claims"] > MAX_CLAIMS:
            self.finish("failed", f"stopped {MAX_CLAIMS} times before its end (its runner "
                                  f"died or the database kept failing); what was imported "
                                  f"stays: upload the same file again to complete it")
            return
        try:
            kind = import_kind(self.job["kind"])
            ctx = school_context(SYSTEM, self.school_id, module=kind.module)
            parsed = parse(stored_file(self.school_id, self.id), self.job["filename"], kind)
            self.values = parsed.values
        except (UnusableInput, DomainError) as exc:
            self.finish("failed", str(exc))
            return
        self._mark_started()
        try:
            for step in run_batches(kind, ctx, parsed, self.job.get("dry_run", False),
                                    BATCH_SIZE, skip=self.job.get("batches_done", 0)):
                if not self.record(step):
                    return  # another runner took the job over: it goes on from here
        except StoppedMidway as exc:
            self._retry_later(f"stopped at line {exc.line}: {one_line(exc.__cause__)}")
            return
        self.finish("done")

    def _guard(self) -> dict:
        return {"_id": self.id, "school_id": self.school_id, "status": "running",
                "claimed_by": self.runner_id}

    def _mark_started(self) -> None:
        if not self.job.get("started_at"):
            ImportJob._get_collection().update_one(self._guard(),
                                                   {"$set": {"started_at": utcnow()}})

    def record(self, step: BatchDone) -> bool:
        """Record one written batch; False when the job is no longer ours."""
        self._insert_rejections(step)
        counts: dict[str, int] = {}
        for result in step.results:
            counts[f"counts.{result.status}"] = counts.get(f"counts.{result.status}", 0) + 1
        recorded = ImportJob._get_collection().update_one(
            {**self._guard(), "batches_done": step.index},
            {"$inc": {**counts, "rows_done": len(step.results)},
             "$set": {"batches_done": step.index + 1, "due_at": _lease_end()}})
        return recorded.modified_count == 1

    def _insert_rejections(self, step: BatchDone) -> None:
        documents = [ImportRejection(school_id=self.school_id, job_id=self.id, line=r.line,
                                     key=r.key, reason=r.reason,
                                     values=self.values.get(r.line, {})).to_mongo().to_dict()
                     for r in step.results if r.status == REJECTED]
        if not documents:
            return
        try:
            ImportRejection._get_collection().insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            # A re-run batch: the lines recorded before the crash are there already.
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    def _retry_later(self, reason: str) -> None:
        log.warning("import job %s %s; retrying in %s s", self.id, reason, RETRY_SECONDS)
        ImportJob._get_collection().update_one(
            self._guard(), {"$set": {"due_at": _lease_end(RETRY_SECONDS), "error": reason}})

    def finish(self, status: str, error: str | None = None) -> None:
        finished = ImportJob._get_collection().find_one_and_update(
            self._guard(), {"$set": {"status": status, "error": error, "finished_at": utcnow(),
                                     "claimed_by": None}},
            return_document=ReturnDocument.AFTER)
        if finished is None:
            return
        ImportFileChunk.objects.for_school(self.school_id).filter(job_id=self.id).delete()
        summary = {"job_id": str(self.id), "kind": finished["kind"], "status": status,
                   "dry_run": finished.get("dry_run", False), "counts": finished["counts"],
                   "rows_done": finished["rows_done"], "rows_total": finished["rows_total"],
                   "error": error}
        audit.record(SYSTEM, self.school_id, "import_job_finish", "import_job", self.id,
                     after=summary)
        notifications.notify(finished["created_by"], "import_finished",
                             _message(finished, status, error), school_id=self.school_id,
                             data=summary)
        webhooks.emit_for_school(self.school_id, "import.finished", summary)


def _lease_end(seconds: float = LEASE_SECONDS):
    return utcnow() + timedelta(seconds=seconds)


def _message(job: dict, status: str, error: str | None) -> str:
    if status == "failed":
        return f"The {job['kind']} import of {job['filename']} failed: {error}"
    counts = job["counts"]
    return (f"The {job['kind']} import of {job['filename']} is done: "
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in
                        ("created", "updated", "unchanged", "rejected")) + ".")

"""HTTP import jobs: an admin uploads a file, a runner imports it (service/import_runner.py).

The upload is read and its header checked at once (422 for a file that cannot be imported at
all, as `rota import` exits 2), stored in chunks, and queued. The job is the same engine as
`rota import`, with the same idempotence, rules and report.
"""

from __future__ import annotations

import io
import os

from bson import ObjectId

from documents.base import utcnow
from documents.imports import ImportFileChunk, ImportJob, ImportRejection
from service.base import SchoolService
from service.errors import PayloadTooLarge, ValidationFailed
from service.import_engine import import_kind, write_report
from service.import_files import ParsedFile, UnusableInput, parse
from service.imports import REJECTED, ImportKind, RowResult
from service.pagination import Page, paginate
from service.tenancy import school_context

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024


def max_upload_bytes() -> int:
    """`ROTA_IMPORT_MAX_BYTES`: the largest file an HTTP import takes (default 20 MiB)."""
    value = os.environ.get("ROTA_IMPORT_MAX_BYTES", "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"ROTA_IMPORT_MAX_BYTES must be a whole number of bytes >= 1, not "
                         f"{value!r}.")
    return int(value)


def too_large(size: int | None) -> PayloadTooLarge:
    limit = max_upload_bytes()
    return PayloadTooLarge(f"The file is larger than this service takes ({limit} bytes); "
                           f"split it, or run `rota import` on the server.",
                           details={"max_bytes": limit, "size": size})


class ImportJobs(SchoolService):
    """Queueing, reading and reporting a school's import jobs (admins)."""

    def create(self, kind: str, filename: str, data: bytes, dry_run: bool = False) -> ImportJob:
        self.require_admin()
        if len(data) > max_upload_bytes():
            raise too_large(len(data))
        import_kind = self._kind(kind)
        parsed = self._parse(data, filename or "upload.csv", import_kind)
        job_id = ObjectId()
        # The file first: a runner never claims a job whose file is not all there.
        self._store_file(job_id, data)
        job = ImportJob(
            id=job_id, school_id=self.school_id, kind=kind, filename=filename, size=len(data),
            dry_run=dry_run, created_by=self.actor.user_id, created_by_role=self.actor.role,
            rows_total=parsed.total, encoding=parsed.encoding, due_at=utcnow(),
            counts={status: 0 for status in ("created", "updated", "unchanged", "rejected")},
        ).save(force_insert=True)
        self.audit("import_job_create", "import_job", job.id,
                   after={"kind": kind, "filename": filename, "size": len(data),
                          "dry_run": dry_run, "rows_total": parsed.total})
        return job

    def get_job(self, job_id) -> ImportJob:
        self.require_admin()
        return self.get(ImportJob, job_id, "import job")

    def list(self, status: str | None = None, page: int = 1, page_size: int = 50) -> Page:
        self.require_admin()
        jobs = ImportJob.objects.for_school(self.school_id)
        if status:
            jobs = jobs.filter(status=status)
        return paginate(jobs.order_by("-created_at", "-id"), page, page_size)

    def report(self, job_id) -> tuple[str, str]:
        """The report's file name and CSV text: the same columns as `rota import` writes."""
        job = self.get_job(job_id)
        rejections = ImportRejection.objects.for_school(self.school_id).filter(
            job_id=job.id).order_by("line")
        results, values = [], {}
        for rejection in rejections:
            results.append(RowResult(rejection.line, REJECTED, rejection.reason, rejection.key))
            values[rejection.line] = rejection.values
        text = io.StringIO()
        write_report(text, import_kind(job.kind), results, values)
        return f"{job.filename}.report.csv", text.getvalue()

    def _kind(self, name: str) -> ImportKind:
        try:
            kind = import_kind(name)
        except UnusableInput as exc:
            raise ValidationFailed(str(exc), {"kind": [str(exc)]}) from None
        # 403 module_disabled, as every endpoint of a switched-off module answers.
        school_context(self.actor, self.school_id, module=kind.module)
        return kind

    @staticmethod
    def _parse(data: bytes, filename: str, kind: ImportKind) -> ParsedFile:
        try:
            return parse(data, filename, kind)
        except UnusableInput as exc:
            raise ValidationFailed(f"The file cannot be imported: {exc}.",
                                   {"file": [str(exc)]}, code="unusable_file") from None

    def _store_file(self, job_id: ObjectId, data: bytes) -> None:
        chunks = [ImportFileChunk(school_id=self.school_id, job_id=job_id, n=n,
                                  data=data[start:start + CHUNK_BYTES])
                  for n, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))]
        ImportFileChunk.objects.insert(chunks, load_bulk=False)


def stored_file(school_id, job_id) -> bytes:
    chunks = ImportFileChunk.objects.for_school(school_id).filter(job_id=job_id).order_by("n")
    return b"".join(chunk.data for chunk in chunks)

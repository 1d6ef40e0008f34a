"""HTTP import jobs: the job, its uploaded file in chunks, and the rows it rejected."""

from __future__ import annotations

from mongoengine import (
    BinaryField,
    BooleanField,
    DateTimeField,
    DictField,
    IntField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned

JOB_STATUSES = ("queued", "running", "done", "failed")


class ImportJob(SchoolOwned):
    """One uploaded file to import. A runner claims it (queued -> running, `claimed_by`) and
    keeps `due_at` a lease ahead while it works, recording `batches_done` after each batch; a
    running job whose `due_at` passed lost its runner and is claimed again, resuming after
    the last recorded batch. The claim filters on every school at once (`school_id $in`): see
    service/runners.py."""

    meta = {"collection": "import_jobs",
            "indexes": [["school_id", "-created_at"],
                        ["school_id", "status", "due_at"]]}

    kind = StringField(required=True)
    filename = StringField(required=True)
    size = IntField(required=True)
    dry_run = BooleanField(default=False)
    status = StringField(required=True, choices=JOB_STATUSES, default="queued")
    created_by = ObjectIdField(required=True)
    created_by_role = StringField(required=True)
    counts = DictField()
    rows_done = IntField(default=0)
    rows_total = IntField(default=0)
    batches_done = IntField(default=0)
    # When a runner may (next) claim it: at once when queued, at the lease's end when running.
    due_at = DateTimeField(required=True)
    claimed_by = StringField()
    claims = IntField(default=0)
    encoding = StringField()
    error = StringField()
    started_at = DateTimeField()
    finished_at = DateTimeField()


class ImportFileChunk(SchoolOwned):
    """A piece of a job's uploaded file (documents stay far below MongoDB's 16 MB)."""

    meta = {"collection": "import_file_chunks",
            "indexes": [{"fields": ["school_id", "job_id", "n"], "unique": True}]}

    job_id = ObjectIdField(required=True)
    n = IntField(required=True)
    data = BinaryField(required=True)


class ImportRejection(SchoolOwned):
    """A row a job rejected, for its report: written with the batch that rejected it."""

    meta = {"collection": "import_rejections",
            "indexes": [{"fields": ["school_id", "job_id", "line"], "unique": True}]}

    job_id = ObjectIdField(required=True)
    line = IntField(required=True)
    key = StringField()
    reason = StringField()
    values = DictField()

"""Import jobs over HTTP: the nightly import for systems that cannot run `rota import`."""

from __future__ import annotations

from flask import Response, request
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import fields, validate

from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from documents.imports import JOB_STATUSES
from service import import_runner, runners
from service.context import ADMIN_ROLES
from service.import_jobs import ImportJobs, max_upload_bytes, too_large
from service.imports import registry

blp = Blueprint(
    "imports", __name__, url_prefix="/schools",
    description="Import jobs (admins): upload a file of one of the `rota import` kinds; a "
                "background runner imports it with the same engine, rules and report, "
                "idempotently. Files: CSV (`,` `;` or tab, UTF-8 with or without BOM, or "
                "Windows-1252/Latin-1) or JSON lines, at most `ROTA_IMPORT_MAX_BYTES` (413 "
                "above). A file that cannot be imported at all answers 422 `unusable_file` at "
                "once. Optional columns left out of the file leave their fields unchanged. "
                "The creator is notified when the job ends, and webhooks get "
                "`import.finished`.")


@blp.record_once
def _start_runner(_state) -> None:
    runners.start_in_background("import-runner", import_runner.run_next_job,
                                import_runner.IDLE_SECONDS)


class ImportFormSchema(BaseSchema):
    kind = fields.String(required=True, validate=validate.OneOf(sorted(registry())))
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "Check and count every row, write nothing (the report is kept)."})


class ImportFileSchema(BaseSchema):
    file = Upload(required=True, metadata={"description": "`.csv` or `.jsonl` (by name)."})


class ImportUploadSchema(ImportFormSchema, ImportFileSchema):
    """The whole multipart body, for the docs (its form and file parts are parsed apart)."""


class CountsSchema(BaseSchema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    rejected = fields.Integer()


class ImportJobSchema(BaseSchema):
    id = Id()
    status = fields.String(metadata={"enum": list(JOB_STATUSES)})
    kind = fields.String()
    dry_run = fields.Boolean()
    filename = fields.String()
    size = fields.Integer()
    encoding = fields.String(metadata={"description": "How the file was read: utf-8, utf-8 "
                                                      "with a byte order mark, cp1252, ..."})
    counts = fields.Nested(CountsSchema)
    rows_done = fields.Integer()
    rows_total = fields.Integer()
    error = fields.String(allow_none=True, metadata={"description": "Why a job failed."})
    created_by = Id()
    created_at = Timestamp()
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)


class ImportJobArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))


@blp.route("/<school_id>/imports", methods=["POST"])
@blp.arguments(ImportFormSchema, location="form")
@blp.arguments(ImportFileSchema, location="files")
@blp.response(202, ImportJobSchema)
@blp.alt_response(413, description="The file is over `ROTA_IMPORT_MAX_BYTES`.")
@blp.doc(requestBody={"required": True, "content": {
    "multipart/form-data": {"schema": ImportUploadSchema}}})
@school_route(roles=ADMIN_ROLES)
def create_import(ctx, form, files):
    """Queue an import of one file; poll `GET .../imports/{id}` for progress."""
    upload = files["file"]
    return ImportJobs(ctx).create(form["kind"], upload.filename or "", upload.read(),
                                  form["dry_run"])


@blp.route("/<school_id>/imports", methods=["GET"])
@blp.arguments(ImportJobArgs, location="query")
@blp.response(200, page_of(ImportJobSchema))
@school_route(roles=ADMIN_ROLES)
def list_imports(ctx, args):
    """The school's import jobs, newest first."""
    return ImportJobs(ctx).list(**args)


@blp.route("/<school_id>/imports/<job_id>", methods=["GET"])
@blp.response(200, ImportJobSchema)
@school_route(roles=ADMIN_ROLES)
def get_import(ctx, job_id):
    """The job and its progress (`rows_done` of `rows_total`, counts so far)."""
    return ImportJobs(ctx).get_job(job_id)


@blp.route("/<school_id>/imports/<job_id>/report", methods=["GET"])
@blp.doc(responses={"200": {"description": "The rejected rows as `rota import` reports them: "
                                           "line, key, reason, then the row's columns.",
                            "content": {"text/csv": {"schema": {"type": "string"}}}}})
@school_route(roles=ADMIN_ROLES)
def import_report(ctx, job_id):
    """The report of the rows rejected so far (header only when none)."""
    filename, text = ImportJobs(ctx).report(job_id)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


def refuse_large_uploads():
    """413 before the body is read, from its declared length (the manager checks the bytes
    it got too, for uploads sent without a length)."""
    if (request.endpoint == "imports.create_import"
            and (request.content_length or 0) > max_upload_bytes() + 64 * 1024):
        raise too_large(request.content_length)
    return None


blp.before_request(refuse_large_uploads)

"""Import jobs over HTTP: queue, run, progress, report, resume after a crash, size limit."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from documents.accounts import User
from documents.audit import AuditEvent, Notification
from documents.base import utcnow
from documents.imports import ImportFileChunk, ImportJob
from service import import_runner
from service.imports import registry

GOOD_AND_BAD = ("email,name,role\n"
                "ann@hr.test,Ann,staff\n"
                "bob@hr.test,Bob,teacher\n"
                "cid@hr.test,Cid,student\n")


def upload(client, world, data: bytes | str, name: str = "users.csv", kind: str = "users",
           who: str = "admin", **form):
    body = data.encode() if isinstance(data, str) else data
    return client.post(world.url("/imports"), headers=world.headers(who),
                       data={"kind": kind, "file": (io.BytesIO(body), name), **form},
                       content_type="multipart/form-data")


def job_of(client, world, job_id: str) -> dict:
    answer = client.get(world.url(f"/imports/{job_id}"), headers=world.headers("admin"))
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_job_is_queued_run_reported_audited_and_notified(world, client):
    queued = upload(client, world, GOOD_AND_BAD)
    assert queued.status_code == 202, queued.json
    job = queued.json
    assert (job["status"], job["kind"], job["rows_done"], job["rows_total"]) == (
        "queued", "users", 0, 3)
    assert job["counts"] == {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    assert import_runner.run_next_job() and not import_runner.run_next_job()
    done = job_of(client, world, job["id"])
    assert (done["status"], done["rows_done"]) == ("done", 3)
    assert done["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert {"ann@hr.test", "cid@hr.test"} <= {u.email for u in User.objects(
        school_id=world.school.id)}
    report = client.get(world.url(f"/imports/{job['id']}/report"),
                        headers=world.headers("admin"))
    assert report.status_code == 200 and report.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(report.get_data(as_text=True))))
    assert [(r["line"], r["email"]) for r in rows] == [("3", "bob@hr.test")]
    assert "bad role" in rows[0]["reason"]
    actions = {e.action for e in AuditEvent.objects(school_id=world.school.id,
                                                    entity_id=job["id"])}
    assert actions == {"import_job_create", "import_job_finish"}
    note = Notification.objects(user_id=world.people["admin"].id, kind="import_finished").get()
    assert "2 created" in note.message and note.data["job_id"] == job["id"]
    assert ImportFileChunk.objects(school_id=world.school.id).count() == 0
    listed = client.get(world.url("/imports"), headers=world.headers("admin")).json
    assert (listed["total"], listed["items"][0]["id"]) == (1, job["id"])


def test_the_same_file_again_is_all_unchanged_and_a_dry_run_writes_nothing(world, client):
    upload(client, world, GOOD_AND_BAD)
    import_runner.run_next_job()
    again = upload(client, world, GOOD_AND_BAD).json
    dry = upload(client, world, "email,name,role\nnew@hr.test,New,staff\n",
                 dry_run="true").json
    assert import_runner.run_next_job() and import_runner.run_next_job()
    assert job_of(client, world, again["id"])["counts"] == {
        "created": 0, "updated": 0, "unchanged": 2, "rejected": 1}
    assert job_of(client, world, dry["id"])["counts"]["created"] == 1
    assert not User.objects(email="new@hr.test").first()


def test_a_job_left_running_by_a_dead_runner_resumes_after_its_last_batch(
        world, client, monkeypatch):
    monkeypatch.setattr(import_runner, "BATCH_SIZE", 1)
    job = upload(client, world, GOOD_AND_BAD).json
    kind, calls = registry()["users"], []
    original = kind.importer

    def dies_on_the_third_batch(*args):
        calls.append(args[1][0].line)
        if len(calls) == 3:
            raise SystemExit("the worker was killed")
        return original(*args)

    monkeypatch.setattr(kind, "importer", dies_on_the_third_batch)
    with pytest.raises(SystemExit):
        import_runner.run_next_job("runner-a")
    stuck = ImportJob.objects.get(id=job["id"])
    assert (stuck.status, stuck.batches_done, stuck.rows_done) == ("running", 3, 2)
    assert not import_runner.run_next_job("runner-b")  # its lease holds
    ImportJob.objects(id=job["id"]).update_one(set__due_at=utcnow() - timedelta(seconds=1))
    assert import_runner.run_next_job("runner-b")
    done = job_of(client, world, job["id"])
    assert calls == [2, 3, 4, 4]  # the batch cut short ran again, the one before did not
    assert (done["status"], done["rows_done"]) == ("done", 3)
    assert done["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1}


def test_a_job_whose_runner_keeps_dying_is_failed_with_a_reason(world, client):
    job = upload(client, world, GOOD_AND_BAD).json
    ImportJob.objects(id=job["id"]).update_one(
        set__status="running", set__claimed_by="dead", set__claims=import_runner.MAX_CLAIMS,
        set__due_at=utcnow() - timedelta(seconds=1))
    assert import_runner.run_next_job()
    failed = job_of(client, world, job["id"])
    assert failed["status"] == "failed" and "stopped 3 times" in failed["error"]


def test_only_one_of_two_runners_claims_a_job(world, client):
    upload(client, world, GOOD_AND_BAD)
    claimed = [import_runner.claim(ImportJob._get_collection(), ("queued",), "due_at",
                                   "running", 60, name) for name in ("a", "b")]
    assert claimed[0] is not None and claimed[1] is None


def test_a_file_over_the_limit_answers_413(world, client, monkeypatch):
    monkeypatch.setenv("ROTA_IMPORT_MAX_BYTES", "100")
    small = upload(client, world, "email,name,role\na@hr.test,A,staff\n")
    assert small.status_code == 202, small.json
    large = upload(client, world, "email,name,role\n" + "a@hr.test,A,staff\n" * 10)
    assert large.status_code == 413
    assert large.json["error"]["code"] == "payload_too_large"
    assert large.json["error"]["details"]["max_bytes"] == 100
    huge = upload(client, world, "x" * 200_000)  # refused from its declared length
    assert huge.status_code == 413


def test_bad_uploads_answer_422_and_staff_403(world, client):
    wrong_columns = upload(client, world, "email,name\na@hr.test,A\n")
    assert wrong_columns.status_code == 422
    assert "missing column(s): role" in wrong_columns.json["error"]["message"]
    assert upload(client, world, "x", kind="pets").status_code == 422
    assert upload(client, world, GOOD_AND_BAD, name="users.xlsx").status_code == 422
    assert upload(client, world, GOOD_AND_BAD, who="staff").status_code == 403
    assert ImportJob.objects(school_id=world.school.id).count() == 0


def test_a_kind_of_a_switched_off_module_is_403(world, client):
    world.set_modules(world.school, timetable=False)
    refused = upload(client, world, "period_number,period_name,start_time,end_time\n",
                     kind="periods")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "module_disabled"


def test_another_schools_job_is_404(world, client):
    job = upload(client, world, GOOD_AND_BAD).json
    other = world.url(f"/imports/{job['id']}", school=world.other_school)
    assert client.get(other, headers=world.headers("other_admin")).status_code == 404

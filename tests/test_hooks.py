"""Webhooks through the test client, on SQLite and MariaDB: the outbox rows written with each
change, their delivery to a real receiver (signed, in order, retried), and what a crash or a
rollback leaves."""
import hashlib
import json
import pathlib
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from uploadsvc import create_app
from uploadsvc.core.extensions import db
from uploadsvc.core.models import (
    DELIVERED,
    FAILED,
    HookDelivery,
    Upload,
    UploadEvent,
    utcnow,
)
from uploadsvc.services.chunked import uploads as api_uploads
from uploadsvc.services.events import deliverer
from uploadsvc.services.events.signatures import sign, verify

from .helpers import random_file, send_chunk, upload_all
from .hooks_helpers import SECRET, deliver, hook_config, outbox, types_by_upload
from .tus_helpers import create, metadata, patch, path_of


@pytest.fixture
def settings(receiver):
    return hook_config(receiver)


@pytest.fixture
def app_config(settings):
    return settings


def test_every_api_event_is_delivered_signed_in_order(app, client, runner, receiver):
    done = random_file(3000, 1024, "done.bin")
    assert upload_all(client, done).status_code == 200
    # The same bytes under another name: completed at once from the stored copy.
    copy = client.post("/api/check-chunks", json=done.ident(fileName="copy.bin")).json
    assert copy["instantUpload"] is True
    bad = random_file(2000, 1024, "bad.bin")
    for index in range(bad.total):
        send_chunk(client, bad, index, md5="0" * 32)
    assert client.post("/api/complete-upload",
                       json=bad.ident(md5="0" * 32)).status_code == 422
    assert client.delete(f"/api/upload/{done.md5}/done.bin").status_code == 200
    idle = random_file(500, 1024, "idle.bin")
    send_chunk(client, idle, 0)
    assert runner.invoke(args=["cleanup", "--older-than", "0s"]).exit_code == 0

    assert deliver(app) == 10
    events = receiver.events()
    by_name = {}
    for event in events:
        by_name.setdefault(event["upload"]["fileName"], []).append(event["type"])
    assert by_name == {
        "done.bin": ["upload.created", "upload.completed", "upload.deleted"],
        "copy.bin": ["upload.created", "upload.completed"],
        "bad.bin": ["upload.created", "upload.verification_failed", "upload.expired"],
        "idle.bin": ["upload.created", "upload.expired"],
    }
    for delivered in receiver.delivered():
        assert delivered.signed
        assert delivered.event_id == delivered.json["id"]
        assert delivered.headers["Uploadsvc-Event"] == delivered.json["type"]
    completed = next(e for e in events if e["type"] == "upload.completed"
                     and e["upload"]["fileName"] == "done.bin")
    assert completed["upload"] | {"startTime": None, "completedTime": None} == {
        "id": completed["upload"]["id"], "protocol": "api", "md5": done.md5,
        "fileName": "done.bin", "status": "completed", "path": "/uploads/done.bin",
        "size": 3000, "totalChunks": 3, "fileSize": None, "startTime": None,
        "completedTime": None}
    assert completed["time"].endswith("Z") and completed["upload"]["completedTime"]
    assert len({e["id"] for e in events}) == len(events)
    assert all(row.status == DELIVERED and row.attempts == 1 for row in outbox(app))


def test_every_tus_event_is_delivered(app, client, runner, receiver):
    data = b"tus bytes" * 100
    path = path_of(create(client, len(data), "done.tus",
                          **{"Upload-Metadata": metadata(filename="done.tus", kind="report")}))
    assert patch(client, path, 0, data).status_code == 204
    assert client.delete(path, headers={"Tus-Resumable": "1.0.0"}).status_code == 204
    idle = path_of(create(client, 10, "idle.tus"))
    with app.app_context():
        db.session.execute(update(Upload).values(expires_at=utcnow()))
        db.session.commit()
    assert runner.invoke(args=["cleanup"]).exit_code == 0

    assert deliver(app) == 5
    assert sorted(types_by_upload(receiver.events()).values()) == [
        ["upload.created", "upload.completed", "upload.deleted"],
        ["upload.created", "upload.expired"]]
    completed = next(e for e in receiver.events() if e["type"] == "upload.completed")
    assert completed["upload"]["id"] == path.rsplit("/", 1)[1] != idle.rsplit("/", 1)[1]
    assert completed["upload"]["protocol"] == "tus"
    assert completed["upload"]["metadata"] == {"filename": "done.tus", "kind": "report"}
    assert completed["upload"]["uploadLength"] == len(data)
    assert completed["upload"]["md5"] == hashlib.md5(data).hexdigest()


def test_a_racing_create_that_rolls_back_leaves_no_event(app, receiver, monkeypatch):
    """Two requests creating one upload: the one whose insert loses rolls its event back
    with it, so exactly one created event exists."""
    first = True
    real_find = api_uploads.find

    def find_misses_once(md5, name):
        nonlocal first
        if first:  # as if the other request had not committed yet when this one looked
            first = False
            return None
        return real_find(md5, name)

    with app.test_request_context():
        api_uploads.get_or_create("a" * 32, "race.bin", 2)
        monkeypatch.setattr(api_uploads, "find", find_misses_once)
        api_uploads.get_or_create("a" * 32, "race.bin", 2)
    assert [row.kind for row in outbox(app)] == ["created"]
    with app.app_context():
        assert db.session.execute(select(UploadEvent.kind)).scalars().all() == ["created"]


def test_only_the_configured_events_are_queued(data_dir, database_url, receiver):
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
                      **hook_config(receiver, HOOK_EVENTS="upload.completed, deleted")})
    client = app.test_client()
    f = random_file(100, 100)
    upload_all(client, f)
    client.delete(f"/api/upload/{f.md5}/{f.name}")
    assert [row.kind for row in outbox(app)] == ["completed", "deleted"]
    with app.app_context():
        db.engine.dispose()


def test_no_endpoint_no_outbox(data_dir, database_url):
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir), "DATABASE_URL": database_url})
    upload_all(app.test_client(), random_file(100, 100))
    assert outbox(app) == []
    with app.app_context():
        db.engine.dispose()


def test_failures_are_retried_with_growing_delays_then_marked_failed(app, client, receiver):
    receiver.failures = 2
    upload_all(client, random_file(100, 100))
    for _ in range(3):
        with app.app_context():  # due now, whatever the backoff said
            db.session.execute(update(HookDelivery).values(next_attempt_at=utcnow()))
            db.session.commit()
        deliver(app)
    assert [r.status for r in receiver.received] == [500, 500, 204, 204]
    assert all(row.status == DELIVERED for row in outbox(app))
    [first] = outbox(app)[:1]
    assert first.attempts == 3 and first.last_error is None
    ids = [r.event_id for r in receiver.received]
    assert ids[0] == ids[1] == ids[2] != ids[3]  # the same event each time
    assert [r.headers["Uploadsvc-Delivery-Attempt"] for r in receiver.received[:3]] == [
        "1", "2", "3"]


def test_backoff_doubles_with_jitter(app):
    with app.app_context():
        app.config["HOOK_RETRY_DELAY"] = timedelta(seconds=10)
        for attempts, low, high in [(1, 5, 10), (2, 10, 20), (3, 20, 40), (20, 1800, 3600)]:
            for _ in range(20):
                assert low <= deliverer.backoff(attempts).total_seconds() <= high


def test_an_event_is_failed_after_the_retry_period(app, client, runner, receiver):
    receiver.failures = 100
    upload_all(client, random_file(100, 100))
    with app.app_context():  # as if the events were a day old
        db.session.execute(update(HookDelivery).values(
            created_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
    deliver(app)
    assert {row.status for row in outbox(app)} == {FAILED}
    assert all(row.last_error == "HTTP 500" for row in outbox(app))
    listed = runner.invoke(args=["hooks", "list", "--failed"])
    assert listed.exit_code == 0, listed.output
    assert "failed" in listed.output and "HTTP 500" in listed.output
    receiver.failures = 0
    retried = runner.invoke(args=["hooks", "retry", "--all-failed"])
    assert retried.exit_code == 0 and "2 deliveries" in retried.output
    delivered = runner.invoke(args=["hooks", "deliver", "--once"])
    assert delivered.exit_code == 0, delivered.output
    assert {row.status for row in outbox(app)} == {DELIVERED}
    assert types_by_upload(receiver.events()) and len(receiver.events()) == 2


def test_a_receiver_that_does_not_answer_in_time_is_retried(app, client, receiver):
    app.config["HOOK_TIMEOUT"] = 0.5
    receiver.holding = True  # never answers until released: the sender must time out
    upload_all(client, random_file(100, 100))
    deliver(app)
    assert [row.last_error.split(":")[0] for row in outbox(app) if row.attempts] == [
        "ReadTimeout"]
    receiver.release()
    receiver.delay = 0.2  # slow, within the timeout
    with app.app_context():
        db.session.execute(update(HookDelivery).values(next_attempt_at=utcnow()))
        db.session.commit()
    deliver(app)
    assert {row.status for row in outbox(app)} == {DELIVERED}


def test_an_earlier_event_waiting_holds_back_the_later_ones_of_its_upload(app, client, receiver):
    app.config["HOOK_RETRY_DELAY"] = timedelta(hours=1)  # not due again within the test
    receiver.failures = 1
    first = random_file(100, 100, "first.bin")
    upload_all(client, first)
    deliver(app)  # first.bin created: failed once, to be retried later
    other = random_file(100, 100, "other.bin")
    upload_all(client, other)
    deliver(app)
    names = [(e["upload"]["fileName"], e["type"]) for e in receiver.events()]
    # other.bin goes on; first.bin's completed waits for its created.
    assert names == [("other.bin", "upload.created"), ("other.bin", "upload.completed")]
    with app.app_context():
        db.session.execute(update(HookDelivery).values(next_attempt_at=utcnow()))
        db.session.commit()
    deliver(app)
    assert [t for n, t in ((e["upload"]["fileName"], e["type"]) for e in receiver.events())
            if n == "first.bin"] == ["upload.created", "upload.completed"]


def test_each_row_is_claimed_by_one_deliverer_at_a_time(app, client):
    for index in range(6):
        send_chunk(client, random_file(100, 100, f"f{index}.bin"), 0)
    claims, barrier = [], threading.Barrier(3)

    def claim():
        with app.app_context():
            barrier.wait()
            claims.append(deliverer.claim())

    threads = [threading.Thread(target=claim) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [row.id for _, rows in claims for row in rows]
    assert sorted(held) == [row.id for row in outbox(app)]  # each once, none left out
    with app.app_context():
        assert deliverer.claim()[1] == []  # all held: nothing for a fourth


def test_a_lapsed_lease_passes_the_row_on_and_the_old_holder_cannot_settle(app, client):
    send_chunk(client, random_file(100, 100), 0)
    with app.app_context():
        token, [row] = deliverer.claim()
        db.session.execute(update(HookDelivery).values(claimed_until=utcnow()))
        db.session.commit()  # as if the holder had been killed mid-send
        other, [again] = deliverer.claim()
        assert again.id == row.id and other != token
        assert deliverer.settle(row, token, None) is False  # its lease is gone
        assert deliverer.settle(again, other, None) is True
    assert [r.status for r in outbox(app)] == [DELIVERED]


def test_signature_verifies_only_the_signed_body_and_time():
    body = b'{"id":"x"}'
    header = sign(SECRET, body, timestamp=1_700_000_000)
    assert verify(SECRET, body, header, now=1_700_000_100)
    assert not verify(SECRET, body + b" ", header, now=1_700_000_100)
    assert not verify("other", body, header, now=1_700_000_100)
    assert not verify(SECRET, body, header, now=1_700_000_000 + 301)  # a replay, too late
    assert not verify(SECRET, body, "v1=abc", now=1_700_000_000)


def test_the_documented_receiver_snippet_verifies_a_delivery(app, client, receiver):
    """The verification code of docs/hooks.md, run on a real delivery."""
    doc = (pathlib.Path(__file__).parent.parent / "docs" / "hooks.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the documentation's own snippet
    upload_all(client, random_file(100, 100))
    deliver(app)
    got = receiver.delivered()[0]
    assert scope["verify"](SECRET, got.body, got.headers["Uploadsvc-Signature"])
    assert not scope["verify"](SECRET, got.body + b"x", got.headers["Uploadsvc-Signature"])
    assert json.loads(got.body)["id"] == got.event_id


def test_metrics_count_deliveries_retries_and_the_outbox(app, client, receiver):
    def figure(name: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + " ") or line.startswith(name + "{"))

    app.config["HOOK_RETRY_DELAY"] = timedelta(hours=1)
    before = {name: figure(name) for name in (
        'uploadsvc_hook_deliveries_total{outcome="delivered"}',
        'uploadsvc_hook_deliveries_total{outcome="retry"}', "uploadsvc_hook_retries_total")}
    receiver.failures = 1
    upload_all(client, random_file(100, 100))
    assert figure("uploadsvc_hook_outbox_pending") == 2
    deliver(app)  # created fails once; completed waits behind it
    assert figure("uploadsvc_hook_outbox_oldest_age_seconds") >= 0
    with app.app_context():
        db.session.execute(update(HookDelivery).values(
            next_attempt_at=utcnow(), created_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
    assert figure("uploadsvc_hook_outbox_oldest_age_seconds") >= 300
    deliver(app)
    assert figure("uploadsvc_hook_outbox_pending") == 0
    assert figure("uploadsvc_hook_outbox_oldest_age_seconds") == 0
    after = {name: figure(name) for name in before}
    assert [after[name] - before[name] for name in before] == [2, 1, 1]

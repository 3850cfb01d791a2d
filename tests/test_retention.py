"""Event retention through `flask cleanup`, on SQLite and MariaDB: chunk events past
EVENT_RETENTION are folded into daily totals (statistics stay the same), beside a live
upload and beside webhook deliveries still waiting."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from uploadsvc.core.extensions import db
from uploadsvc.core.models import (
    DELIVERED,
    FAILED,
    PENDING,
    EventDay,
    HookDelivery,
    UploadEvent,
    utcnow,
)
from uploadsvc.services import admin

from .helpers import random_file, send_chunk, upload_all
from .hooks_helpers import deliver, hook_config, outbox


@pytest.fixture
def app_config(receiver):
    return hook_config(receiver)


def age_events(app, days: float, **where) -> None:
    """Move events (of one kind, or of one upload) back in time."""
    with app.app_context():  # in Python: SQLite has no date arithmetic on these columns
        for event in db.session.execute(select(UploadEvent).filter_by(**where)).scalars():
            event.created_at -= timedelta(days=days)
        db.session.commit()


def chunk_events(app) -> int:
    with app.app_context():
        found = db.session.execute(select(func.count()).select_from(UploadEvent).filter_by(
            kind=UploadEvent.CHUNK_STORED)).scalar_one()
        db.session.commit()
        return found


def figures(app, runner) -> tuple[dict, list]:
    """`flask stats --json`, and the operator endpoint's daily figures of 60 days."""
    result = runner.invoke(args=["stats", "--json"])
    assert result.exit_code == 0, result.output
    with app.test_request_context():
        days = [(d.day, d.events, d.bytes_received) for d in admin.daily(60)]
    return json.loads(result.output), days


def test_pruned_events_leave_the_statistics_as_they_were(app, client, runner):
    files = [random_file(4000, 1024, f"old-{n}.bin") for n in range(3)]
    for f in files:
        upload_all(client, f)
        age_events(app, 40, kind=UploadEvent.CHUNK_STORED)  # older with each: three days
    client.delete(f"/api/upload/{files[0].md5}/{files[0].name}")
    recent = random_file(2000, 1024, "recent.bin")
    upload_all(client, recent)
    before = figures(app, runner)
    assert before[0]["events"]["chunks_stored"] == 3 * 4 + 2

    result = runner.invoke(args=["cleanup"])
    assert result.exit_code == 0, result.output
    assert "removed 12 chunk events past the retention" in result.output
    assert chunk_events(app) == 2  # the recent upload's
    assert figures(app, runner) == before
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(EventDay)).scalar_one() == 3
    again = runner.invoke(args=["cleanup"])  # nothing more to fold: nothing counted twice
    assert "removed 0 chunk events" in again.output
    assert figures(app, runner) == before


def test_dry_run_prunes_nothing(app, client, runner):
    upload_all(client, random_file(2000, 1024))
    age_events(app, 31)
    result = runner.invoke(args=["cleanup", "--dry-run"])
    assert "would remove 2 chunk events past the retention" in result.output
    assert chunk_events(app) == 2


def test_a_live_upload_with_old_chunk_events_completes(app, client, runner):
    """Its events are old, the upload is not: cleanup keeps the upload and its chunks, and
    it completes with the right bytes."""
    f = random_file(3 * 1024, 1024, "live.bin")
    send_chunk(client, f, 0)
    send_chunk(client, f, 1)
    age_events(app, 45, kind=UploadEvent.CHUNK_STORED)
    before = figures(app, runner)
    assert runner.invoke(args=["cleanup"]).exit_code == 0
    assert chunk_events(app) == 0
    status = client.get(f"/api/upload-status/{f.md5}/{f.name}").json
    assert (status["status"], status["uploaded"]) == ("uploading", 2)
    assert figures(app, runner) == before
    send_chunk(client, f, 2)
    done = client.post("/api/complete-upload", json=f.ident())
    assert done.status_code == 200 and done.json["md5"] == f.md5
    stats = figures(app, runner)[0]
    assert stats["events"]["chunks_stored"] == 3 and stats["bytesReceived"] == 3 * 1024


def test_waiting_deliveries_are_never_pruned(app, client, runner, receiver):
    receiver.failures = 1
    upload_all(client, random_file(100, 100, "waiting.bin"))
    deliver(app)  # created fails: waiting, with completed behind it
    upload_all(client, random_file(100, 100, "sent.bin"))
    with app.app_context():
        db.session.execute(update(HookDelivery).values(next_attempt_at=utcnow() + timedelta(
            hours=1)).filter_by(status=PENDING))
        db.session.commit()
    receiver.failures = 0
    with app.app_context():  # sent.bin's two, delivered; then everything made old
        db.session.execute(update(HookDelivery).values(next_attempt_at=utcnow()).where(
            HookDelivery.payload.contains("sent.bin")))
        db.session.commit()
    deliver(app)
    with app.app_context():
        db.session.execute(update(HookDelivery).values(created_at=utcnow() - timedelta(days=60)))
        db.session.execute(text("UPDATE hook_deliveries SET status = :failed WHERE id = "
                                "(SELECT id FROM (SELECT min(id) AS id FROM hook_deliveries "
                                "WHERE status = :delivered) AS first)"),
                           {"failed": FAILED, "delivered": DELIVERED})
        db.session.commit()
    assert sorted(r.status for r in outbox(app)) == [DELIVERED, FAILED, PENDING, PENDING]
    result = runner.invoke(args=["cleanup"])
    assert "2 sent or failed webhook deliveries" in result.output
    left = outbox(app)
    assert [r.status for r in left] == [PENDING, PENDING]
    with app.app_context():  # still delivered, in order, once due
        db.session.execute(update(HookDelivery).values(next_attempt_at=utcnow()))
        db.session.commit()
    deliver(app)
    assert [r.status for r in outbox(app)] == [DELIVERED, DELIVERED]
    assert [e["type"] for e in receiver.events() if e["upload"]["fileName"] == "waiting.bin"] \
        == ["upload.created", "upload.completed"]

"""`flask cleanup` and `flask stats` through Flask's CLI runner."""
import json
import os
import time

from uploadsvc.services import stores
from uploadsvc.services.chunked import uploads as api_uploads

from .helpers import random_file, send_chunk, upload_all


def age(path, seconds):
    past = time.time() - seconds
    os.utime(path, (past, past))


def make_idle(app, client, f, hours):
    """An unfinished upload whose last chunk arrived `hours` ago."""
    from datetime import timedelta

    from uploadsvc.core.extensions import db

    send_chunk(client, f, 0)
    with app.app_context():
        upload = api_uploads.find(f.md5, f.name)
        upload.updated_at -= timedelta(hours=hours)
        db.session.commit()
        return upload.key


def test_cleanup_removes_expired_unfinished_uploads_only(app, client, runner, data_dir):
    old = random_file(300, 100, "old.bin")
    fresh = random_file(300, 100, "fresh.bin")
    done = random_file(300, 100, "done.bin")
    old_key = make_idle(app, client, old, hours=30)
    send_chunk(client, fresh, 0)
    upload_all(client, done)
    result = runner.invoke(args=["cleanup"])
    assert result.exit_code == 0, result.output
    assert "removed expired upload" in result.output and "'old.bin'" in result.output
    assert "fresh.bin" not in result.output
    assert not (data_dir / "chunks" / old_key).exists()
    assert client.get(f"/api/upload-status/{old.md5}/old.bin").status_code == 404
    assert client.get(f"/api/upload-status/{fresh.md5}/fresh.bin").status_code == 200
    assert (data_dir / "uploads" / "done.bin").read_bytes() == done.data


def test_cleanup_older_than_option(app, client, runner):
    f = random_file(300, 100)
    make_idle(app, client, f, hours=2)
    assert "0 expired uploads" in runner.invoke(args=["cleanup"]).output
    result = runner.invoke(args=["cleanup", "--older-than", "90m"])
    assert "1 expired uploads" in result.output
    assert client.get(f"/api/upload-status/{f.md5}/{f.name}").status_code == 404


def test_cleanup_dry_run_removes_nothing(app, client, runner, data_dir):
    f = random_file(300, 100)
    key = make_idle(app, client, f, hours=48)
    result = runner.invoke(args=["cleanup", "--dry-run"])
    assert "would remove expired upload" in result.output
    assert (data_dir / "chunks" / key / "data").read_bytes() == f.chunk(0)
    assert client.get(f"/api/upload-status/{f.md5}/{f.name}").status_code == 200


def test_cleanup_removes_orphans_and_stale_temp_files(app, client, runner, data_dir):
    orphan = data_dir / "chunks" / ("ab" * 16)
    orphan.mkdir(parents=True)
    (orphan / "0").write_bytes(b"junk")
    age(orphan, 7200)
    stale = data_dir / "temp" / "spool-stale.part"
    stale.write_bytes(b"half a chunk")
    age(stale, 7200)
    young = data_dir / "temp" / "spool-young.part"
    young.write_bytes(b"being written")
    result = runner.invoke(args=["cleanup", "--older-than", "1h"])
    assert "orphaned chunk directory chunks/" + "ab" * 16 in result.output
    assert "stale temp file temp/spool-stale.part" in result.output
    assert not orphan.exists() and not stale.exists() and young.exists()


def test_cleanup_keeps_upload_in_active_use(app, client, runner):

    f = random_file(300, 100)
    key = make_idle(app, client, f, hours=48)
    with app.app_context():
        # a chunk being written
        with stores.store().locker.hold(key, exclusive=False, timeout=1):
            result = runner.invoke(args=["cleanup"])
    assert "0 expired uploads" in result.output
    assert client.get(f"/api/upload-status/{f.md5}/{f.name}").status_code == 200


def test_cleanup_rejects_bad_duration(runner):
    result = runner.invoke(args=["cleanup", "--older-than", "soon"])
    assert result.exit_code != 0 and "not a duration" in result.output


def test_stats_for_people_and_scripts(app, client, runner):
    done = random_file(3000, 1000, "done.bin")
    upload_all(client, done)
    partial = random_file(3000, 1000, "partial.bin")
    send_chunk(client, partial, 0)
    data = json.loads(runner.invoke(args=["stats", "--json"]).output)
    assert data["uploads"] == {"uploading": 1, "completed": 1}
    assert data["bytesReceived"] == 4000
    assert data["successRate"] == 0.5
    assert data["last24h"]["created"] == 2 and data["last24h"]["chunks_stored"] == 4
    assert data["meanThroughputBytesPerSecond"] is None or data["meanThroughputBytesPerSecond"] > 0
    text = runner.invoke(args=["stats"]).output
    assert "Uploads completed" in text and "Success rate" in text and "50.0%" in text
    assert "3.9 KiB" in text


def test_stats_on_empty_database(runner):
    data = json.loads(runner.invoke(args=["stats", "--json"]).output)
    assert data["uploads"] == {"uploading": 0, "completed": 0}
    assert data["successRate"] is None
    assert "Success rate" in runner.invoke(args=["stats"]).output

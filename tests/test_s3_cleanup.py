"""`flask cleanup` on the object store: nothing of an expired or orphaned upload is left in
the bucket, what no row owns waits for the margin (UPLOADSVC_S3_ORPHAN_AGE), and several
hosts may run it at the same moment (real SeaweedFS, real MariaDB, real processes)."""
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload, UploadEvent, utcnow
from uploadsvc.services import uploads
from uploadsvc.services.chunked import uploads as api_uploads

from . import conftest
from .helpers import finished_bytes, random_file, send_chunk, upload_all
from .seaweedfs import BUCKET
from .test_cli_errors import flask

STORAGES = ["s3"]
HOSTS = 3


@pytest.fixture
def database_url(mariadb, mariadb_database):
    """The session's MariaDB database, emptied: the hosts share it, as they would."""
    mariadb.truncate(conftest.MARIADB_DATABASE)
    return mariadb_database


def s3(app):
    return app.extensions["store"].client


def prefix(app) -> str:
    return app.extensions["store"].prefix


def objects(app) -> list[str]:
    found = s3(app).list_objects_v2(Bucket=BUCKET, Prefix=prefix(app)).get("Contents", [])
    return sorted(item["Key"][len(prefix(app)):] for item in found)


def multipart_uploads(app) -> list[str]:
    found = s3(app).list_multipart_uploads(Bucket=BUCKET, Prefix=prefix(app))
    return sorted(upload["Key"][len(prefix(app)):] for upload in found.get("Uploads", []))


def put(app, name: str, body: bytes = b"left behind") -> None:
    s3(app).put_object(Bucket=BUCKET, Key=prefix(app) + name, Body=body)


def begin_multipart(app, name: str) -> None:
    s3(app).create_multipart_upload(Bucket=BUCKET, Key=prefix(app) + name)


def expired_upload(app, client, name: str) -> str:
    """An upload idle for two hours, with what a killed worker left of it: a body half sent,
    a sealed object never published, a join never completed; its key."""
    f = random_file(3000, 1000, name)
    assert send_chunk(client, f, 2).status_code == 200  # the last first: stored aside
    assert send_chunk(client, f, 0).status_code == 200
    with app.app_context():
        upload = api_uploads.find(f.md5, f.name)
        upload.updated_at -= timedelta(hours=2)
        db.session.commit()
        key = upload.key
    begin_multipart(app, f"chunks/{key}/at/{1000:020d}")
    put(app, f"sealed/{key}.{uuid.uuid4().hex}")
    begin_multipart(app, f"sealed/{key}.{uuid.uuid4().hex}")
    return key


def orphans(app) -> tuple[list[str], list[str]]:
    """Objects and multipart uploads that no row owns: an upload's bytes whose row is gone,
    a sealed copy, a finished file and a publish a crash left; (objects, multipart)."""
    key = uuid.uuid4().hex
    names = [f"chunks/{key}/created", f"chunks/{key}/at/{0:020d}",
             f"sealed/copy.{uuid.uuid4().hex}", "uploads/lost.bin"]
    for name in names:
        put(app, name)
    started = [f"chunks/{key}/at/{100:020d}", f"sealed/{uuid.uuid4().hex}.join",
               "uploads/big.bin"]
    for name in started:
        begin_multipart(app, name)
    return sorted(names), sorted(started)


def expired_events(app, key: str, kind: str = UploadEvent.EXPIRED) -> int:
    with app.app_context():
        query = select(func.count()).select_from(UploadEvent).filter_by(
            upload_key=key, kind=kind)
        return db.session.execute(query).scalar_one()


def test_expired_upload_goes_whole_and_young_orphans_wait_for_the_margin(app, client, runner):
    key = expired_upload(app, client, "old.bin")
    assert any(name.startswith(f"chunks/{key}/aside/") for name in objects(app))
    young, started = orphans(app)  # the default margin is a day

    result = runner.invoke(args=["cleanup", "--older-than", "1h"])
    assert result.exit_code == 0, result.output
    assert "removed 1 expired uploads, 0 orphaned chunk directories, 0 unreferenced files, " \
           "0 temp files" in result.output
    assert objects(app) == young  # every object of the expired upload went, nothing else
    assert multipart_uploads(app) == started
    assert expired_events(app, key) == 1


def test_cleanup_on_three_hosts_at_once_leaves_nothing_no_row_owns(app, client, tmp_path):
    key = expired_upload(app, client, "old.bin")
    live = random_file(3000, 1000, "live.bin")
    for index in (0, 1):
        assert send_chunk(client, live, index).status_code == 200
    done = random_file(2500, 1000, "done.bin")
    assert upload_all(client, done).status_code == 200
    orphans(app)
    with app.app_context():
        live_key = api_uploads.find(live.md5, live.name).key
    live_objects = [name for name in objects(app) if name.startswith(f"chunks/{live_key}/")]
    assert live_objects

    def host(number: int):
        place = tmp_path / f"host{number}"
        place.mkdir()
        return flask(place, "cleanup", "--older-than", "1h",
                     database_url=app.config["DATABASE_URL"],
                     UPLOADSVC_STORAGE_URL=app.config["STORAGE_URL"],
                     UPLOADSVC_S3_ORPHAN_AGE="0s")

    with ThreadPoolExecutor(HOSTS) as pool:
        results = list(pool.map(host, range(HOSTS)))
    for result in results:
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    reported = [line for result in results for line in result.stdout.splitlines()
                if line.startswith("removed expired upload")]
    assert len(reported) == 1 and "'old.bin'" in reported[0]  # one host removed it
    assert expired_events(app, key) == 1

    assert objects(app) == sorted(live_objects + ["uploads/done.bin"])
    assert multipart_uploads(app) == []
    # The live upload was untouched: it completes, its MD5 verified.
    assert send_chunk(client, live, 2).status_code == 200
    assert client.post("/api/complete-upload", json=live.ident()).status_code == 200
    assert finished_bytes(app, "live.bin") == live.data
    assert finished_bytes(app, "done.bin") == done.data


def test_a_removal_that_lost_the_race_changes_nothing(app, client):
    """Two hosts found the upload idle; a chunk came, or the other removed it, first."""
    f = random_file(3000, 1000, "raced.bin")
    assert send_chunk(client, f, 0).status_code == 200
    with app.app_context():
        found = api_uploads.find(f.md5, f.name)  # as a cleanup read it, idle since then
        key, idle_since = found.key, utcnow()
    assert send_chunk(client, f, 1).status_code == 200  # a chunk after all
    with app.app_context():
        assert uploads.remove(found, UploadEvent.EXPIRED, Upload.updated_at < idle_since) \
            is False
        assert api_uploads.find(f.md5, f.name) is not None
        assert uploads.remove(found, UploadEvent.DELETED) is True
        assert uploads.remove(found, UploadEvent.DELETED) is False  # the other host's
    assert expired_events(app, key) == 0
    assert expired_events(app, key, UploadEvent.DELETED) == 1
    assert objects(app) == []

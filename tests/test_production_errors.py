"""In production mode (no debug, no testing) internal failures answer a bare JSON 500, and an
unreachable database a bare 503 with Retry-After: no stack trace, path, SQL or credentials
in the body; the log keeps the details."""
import logging
import shutil

import pytest

from uploadsvc import create_app

from .helpers import random_file

LEAKS = ["Traceback", "sqlite", "SELECT", "INSERT", "pymysql", "secretpw", "Errno",
         "OperationalError", "File \"", "/tmp", "line "]


def production_app(data_dir, migrated_database, **config):
    shutil.copy(migrated_database, data_dir / "uploadsvc.sqlite3")
    app = create_app({"DATA_DIR": str(data_dir), **config})
    assert not app.debug and not app.testing
    return app


def requests_of_every_kind(client):
    f = random_file(300, 100)
    yield client.post("/api/check-chunks", json=f.ident())
    yield client.post("/api/upload-chunk", data=f.form(0), content_type="multipart/form-data")
    yield client.post("/api/complete-upload", json=f.ident())
    yield client.get(f"/api/upload-status/{f.md5}/{f.name}")
    yield client.delete(f"/api/upload/{f.md5}/{f.name}")
    yield client.get("/api/stats")


def assert_bare_500(response, *secrets):
    assert_bare(response, 500, "internal_error", *secrets)


def assert_bare_503(response, *secrets):
    assert_bare(response, 503, "database_unavailable", *secrets)
    assert response.headers["Retry-After"] == "5"


def assert_bare(response, status, code, *secrets):
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    body = response.get_json()
    assert body["success"] is False and body["error"] == code
    for leak in [*LEAKS, *secrets]:
        assert leak not in text, (leak, text)


@pytest.mark.parametrize("url", [
    "sqlite:///{data_dir}/no/such/dir/uploads.sqlite3",
    "mysql+pymysql://user:secretpw@127.0.0.1:1/uploads",
])
def test_unreachable_database(data_dir, migrated_database, caplog, url):
    app = production_app(data_dir, migrated_database, DATABASE_URL=url.format(data_dir=data_dir))
    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        for response in requests_of_every_kind(client):
            assert_bare_503(response, str(data_dir), "secretpw")
    assert client.get("/api/health").status_code == 200
    logged = "\n".join(r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in caplog.records)
    assert "OperationalError" in logged or "unable to open" in logged or "connect" in logged


def test_unreachable_database_with_access_control(data_dir, migrated_database):
    app = production_app(data_dir, migrated_database, AUTH_REQUIRED=True,
                         DATABASE_URL=f"sqlite:///{data_dir}/no/such/dir/x.sqlite3")
    response = app.test_client().get("/api/stats", headers={"Authorization": "Bearer usk_x"})
    assert_bare_503(response, str(data_dir))


@pytest.mark.parametrize("broken", ["temp", "chunks", "uploads"])
def test_unwritable_data_directory(data_dir, migrated_database, caplog, broken):
    app = production_app(data_dir, migrated_database)
    client = app.test_client()
    f = random_file(300, 300)
    if broken == "uploads":
        assert client.post("/api/upload-chunk", data=f.form(0)).status_code == 200
    shutil.rmtree(data_dir / broken)
    (data_dir / broken).write_text("not a directory")  # root ignores permission bits
    with caplog.at_level(logging.ERROR):
        if broken == "uploads":
            response = client.post("/api/complete-upload", json=f.ident())
        else:
            response = client.post("/api/upload-chunk", data=f.form(0))
    assert_bare_500(response, str(data_dir), broken + "/")
    assert any(r.exc_info and str(data_dir) in str(r.exc_info[1]) for r in caplog.records)

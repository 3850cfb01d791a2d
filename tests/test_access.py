"""Access control: bearer API keys, per-owner uploads, and the `flask keys` commands."""
import hashlib

import pytest
from sqlalchemy import select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import ApiKey, Upload

from .helpers import random_file, upload_all


def create_key(runner, name="tester") -> str:
    result = runner.invoke(args=["keys", "create", name])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured(app):
    app.config["AUTH_REQUIRED"] = True
    return app


def test_access_control_is_off_by_default(app, client):
    assert app.config["AUTH_REQUIRED"] is False
    f = random_file(300, 100)
    assert upload_all(client, f).status_code == 200


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer usk_not-a-key"}, {"Authorization": "usk_no-scheme"},
])
def test_requests_without_a_valid_key_are_401(secured, client, runner, headers):
    create_key(runner)
    f = random_file(300, 100)
    for response in (client.post("/api/check-chunks", json=f.ident(), headers=headers),
                     client.post("/api/upload-chunk", data=f.form(0), headers=headers),
                     client.get(f"/api/upload-status/{f.md5}/{f.name}", headers=headers),
                     client.delete(f"/api/upload/{f.md5}/{f.name}", headers=headers),
                     client.get("/api/stats", headers=headers)):
        assert response.status_code == 401, response.get_json()
        assert response.get_json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with secured.app_context():
        assert db.session.execute(select(Upload)).first() is None


def test_health_document_and_preflight_stay_public(secured, client):
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200
    response = client.options("/api/check-chunks", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"


def test_a_key_uploads_and_another_key_cannot_see_it(secured, client, runner, data_dir):
    alice, bob = bearer(create_key(runner, "alice")), bearer(create_key(runner, "bob"))
    f = random_file(3000, 1000)
    path = f"{f.md5}/{f.name}"
    assert client.post("/api/upload-chunk", data=f.form(0), headers=alice).status_code == 200
    # bob sees nothing of alice's unfinished upload, and cannot complete or delete it
    assert client.get(f"/api/upload-status/{path}", headers=bob).status_code == 404
    assert client.post("/api/complete-upload", json=f.ident(), headers=bob).status_code == 404
    assert client.delete(f"/api/upload/{path}", headers=bob).status_code == 404
    # his check-chunks starts an upload of his own, which has none of her chunks
    assert client.post("/api/check-chunks", json=f.ident(), headers=bob).get_json()[
        "uploadedChunks"] == []
    missing = client.post("/api/complete-upload", json=f.ident(), headers=bob)
    assert missing.status_code == 400 and missing.get_json()["missingChunks"] == [0, 1, 2]
    assert client.delete(f"/api/upload/{path}", headers=bob).status_code == 200
    assert client.get(f"/api/upload-status/{path}", headers=alice).get_json()["uploaded"] == 1
    for index in (1, 2):
        response = client.post("/api/upload-chunk", data=f.form(index), headers=alice)
        assert response.status_code == 200
    done = client.post("/api/complete-upload", json=f.ident(), headers=alice).get_json()
    assert (data_dir / done["path"].lstrip("/")).read_bytes() == f.data
    # nor her completed file: no status, no delete, and no instant upload from her copy
    assert client.get(f"/api/upload-status/{path}", headers=bob).status_code == 404
    assert client.delete(f"/api/upload/{path}", headers=bob).status_code == 404
    body = client.post("/api/check-chunks", json=f.ident(), headers=bob).get_json()
    assert body["uploadedChunks"] == [] and body["instantUpload"] is False
    body = client.post("/api/check-chunks", json=f.ident(fileName="copy.bin"),
                       headers=bob).get_json()
    assert "completed" not in body and body["uploadedChunks"] == []
    # nor download it; alice can
    assert client.get(done["path"], headers=bob).status_code == 404
    assert client.get(done["path"]).status_code == 401
    with client.get(done["path"], headers=alice) as response:
        assert response.get_data() == f.data
    # alice herself gets the instant upload
    body = client.post("/api/check-chunks", json=f.ident(fileName="copy.bin"),
                       headers=alice).get_json()
    assert body["completed"] is True
    assert client.get(f"/api/upload-status/{path}", headers=alice).get_json()[
        "status"] == "completed"


def test_two_keys_may_upload_the_same_md5_and_name(secured, client, runner, data_dir):
    alice, bob = bearer(create_key(runner, "alice")), bearer(create_key(runner, "bob"))
    f = random_file(500, 500)
    for headers in (alice, bob):
        assert client.post("/api/upload-chunk", data=f.form(0), headers=headers).status_code == 200
    a = client.post("/api/complete-upload", json=f.ident(), headers=alice).get_json()
    b = client.post("/api/complete-upload", json=f.ident(), headers=bob).get_json()
    assert a["path"] != b["path"]
    assert client.delete(f"/api/upload/{f.md5}/{f.name}", headers=bob).status_code == 200
    assert (data_dir / a["path"].lstrip("/")).read_bytes() == f.data


def test_unfinished_upload_limit_is_per_key(secured, client, runner):
    secured.config["MAX_ACTIVE_UPLOADS_PER_CLIENT"] = 2
    alice, bob = bearer(create_key(runner, "alice")), bearer(create_key(runner, "bob"))
    files = [random_file(200, 100, f"f{i}.bin") for i in range(3)]
    for f in files[:2]:
        assert client.post("/api/upload-chunk", data=f.form(0), headers=alice).status_code == 200
    refused = client.post("/api/upload-chunk", data=files[2].form(0), headers=alice)
    assert refused.status_code == 429 and refused.get_json()["error"] == "too_many_uploads"
    assert client.post("/api/upload-chunk", data=files[2].form(0), headers=bob).status_code == 200


def test_keys_commands_store_only_hashes(secured, client, runner, data_dir):
    token = create_key(runner, "ci server")
    assert token.startswith("usk_") and len(token) > 40
    listing = runner.invoke(args=["keys", "list"]).output
    assert "ci server" in listing and token[:12] in listing and token not in listing
    with secured.app_context():
        key = db.session.execute(select(ApiKey)).scalar_one()
        assert key.key_hash == hashlib.sha256(token.encode()).hexdigest()
        db.engine.dispose()
    for path in data_dir.iterdir():
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    assert client.get("/api/stats", headers=bearer(token)).status_code == 200
    result = runner.invoke(args=["keys", "revoke", str(key.id)])
    assert result.exit_code == 0 and "revoked" in result.output
    assert "revoked" in runner.invoke(args=["keys", "list"]).output
    assert client.get("/api/stats", headers=bearer(token)).status_code == 401
    assert runner.invoke(args=["keys", "revoke", "999"]).exit_code != 0


def test_tus_uploads_belong_to_their_key_too(secured, client, runner):
    from .tus_helpers import TUS, create, patch, path_of

    alice, bob = bearer(create_key(runner, "alice")), bearer(create_key(runner, "bob"))
    assert create(client, 10).status_code == 401
    created = create(client, 10, **alice)
    assert created.status_code == 201
    path = path_of(created)
    assert client.head(path, headers={**TUS, **bob}).status_code == 404
    assert patch(client, path, 0, b"0123456789", **bob).status_code == 404
    assert client.delete(path, headers={**TUS, **bob}).status_code == 404
    assert patch(client, path, 0, b"0123456789", **alice).status_code == 204


def test_tus_creation_counts_against_the_unfinished_upload_limit(secured, client, runner):
    from .tus_helpers import create

    secured.config["MAX_ACTIVE_UPLOADS_PER_CLIENT"] = 1
    alice = bearer(create_key(runner, "alice"))
    assert create(client, 10, **alice).status_code == 201
    refused = create(client, 10, **alice)
    assert refused.status_code == 429 and refused.get_json()["error"] == "too_many_uploads"

"""A database that cannot be reached: every operation that reads it answers 503
`database_unavailable` with Retry-After (the document's shared 503, which the checked client
holds each answer to), and the ones that do not still answer."""
import pytest

from uploadsvc import create_app

from . import conftest
from .contract import Contract
from .helpers import random_file
from .tus_helpers import OFFSET_STREAM, TUS

KEY = "0" * 32


@pytest.fixture
def unreachable(data_dir):
    """The app on a SQLite file in a folder that does not exist: every connection fails."""
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir), "ADMIN_API": True,
                      "DATABASE_URL": f"sqlite:///{data_dir}/no/such/dir/uploads.sqlite3"})
    app.test_client_class = conftest.TestClient
    return app


def requests_of_every_operation(client):
    f = random_file(300, 100)
    ident = f"{f.md5}/{f.name}"
    yield client.post("/api/check-chunks", json=f.ident())
    yield client.post("/api/upload-chunk", data=f.form(0))
    yield client.post("/api/complete-upload", json=f.ident())
    yield client.get(f"/api/upload-status/{ident}")
    yield client.delete(f"/api/upload/{ident}")
    yield client.get("/api/stats")
    for path in ("/api/uploads/history", "/api/database/stats", "/api/logs"):
        yield client.get(path)
    yield client.get("/uploads/report.pdf")
    yield client.post("/files/", headers={**TUS, "Upload-Length": "10"})
    yield client.head(f"/files/{KEY}", headers=TUS)
    yield client.get(f"/files/{KEY}")
    yield client.patch(f"/files/{KEY}", data=b"x", content_type=OFFSET_STREAM,
                       headers={**TUS, "Upload-Offset": "0"})
    yield client.delete(f"/files/{KEY}", headers=TUS)
    yield client.post(f"/files/{KEY}", headers={**TUS, "X-HTTP-Method-Override": "DELETE"})


def test_every_operation_on_the_database_answers_503_with_retry_after(unreachable):
    client = unreachable.test_client()
    for response in requests_of_every_operation(client):
        request = response.request
        assert response.status_code == 503, (request.method, request.path, response.status_code)
        assert response.headers["Retry-After"] == "5"
        if request.method != "HEAD":
            assert response.get_json()["error"] == "database_unavailable"
            assert "sqlite" not in response.get_data(as_text=True).lower()
    checked = {(m, p) for m, p, s in unreachable.extensions["test_contract"].checked
               if s == 503}
    document = Contract(unreachable).document["paths"]
    documented = {(m.upper(), p) for p, item in document.items() for m, op in item.items()
                  if "503" in op["responses"]}
    assert checked == documented  # each documented 503 was had, and no other


def test_what_needs_no_database_still_answers(unreachable):
    client = unreachable.test_client()
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200
    assert client.options("/files/").status_code == 204

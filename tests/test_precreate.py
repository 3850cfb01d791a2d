"""The pre-create hook through the test client, on SQLite and MariaDB: a real receiver that
admits, refuses with a message, does not answer in time or is down, under each
PRE_CREATE_HOOK_FAIL setting, for /api and tus uploads."""
import pytest
from sqlalchemy import func, select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload, UploadEvent

from .helpers import leftovers, random_file, send_chunk, upload_all
from .hooks_helpers import SECRET
from .tus_helpers import create, metadata

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture
def fail_mode():
    return "closed"


@pytest.fixture
def app_config(receiver, fail_mode):
    return {"PRE_CREATE_HOOK_URL": receiver.url, "HOOK_SECRET": SECRET,
            "PRE_CREATE_HOOK_TIMEOUT": 0.5, "PRE_CREATE_HOOK_FAIL": fail_mode}


def uploads_and_events(app) -> tuple[int, int]:
    with app.app_context():
        found = (db.session.execute(select(func.count()).select_from(Upload)).scalar_one(),
                 db.session.execute(select(func.count()).select_from(UploadEvent)).scalar_one())
        db.session.commit()
        return found


def assert_refused(response, code: str, message: str | None = None) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False and body["error"] == code
    if message is not None:
        assert body["message"] == message


def test_an_admitted_upload_is_asked_about_once(app, client, receiver):
    f = random_file(3000, 1024, "asked.bin")
    checked = client.post("/api/check-chunks", json=f.ident(fileSize=3000))
    assert checked.status_code == 200, checked.json
    assert upload_all(client, f).status_code == 200
    client.post("/api/check-chunks", json=f.ident())
    [asked] = receiver.received  # not again for the chunks, completion or a later check
    assert asked.signed and asked.headers["Uploadsvc-Event"] == "upload.pre_create"
    assert asked.json == {"type": "upload.pre_create", "upload": {
        "protocol": "api", "fileName": "asked.bin", "md5": f.md5, "totalChunks": 3,
        "fileSize": 3000}}


def test_the_first_chunk_of_a_new_upload_asks(app, client, receiver):
    f = random_file(100, 100, "chunked.bin")
    assert send_chunk(client, f, 0).status_code == 200
    assert [r.json["upload"]["fileName"] for r in receiver.received] == ["chunked.bin"]


@pytest.mark.parametrize("content_type, body, message", [
    ("application/json", b'{"message": "Quota exceeded: 10 GiB used of 10 GiB."}',
     "Quota exceeded: 10 GiB used of 10 GiB."),
    ("text/plain", b"No .exe files,\r\nplease.\n", "No .exe files, please."),
    ("text/html", b"<h1>Forbidden</h1>", "This upload was refused."),
])
def test_a_refusal_is_403_with_the_hooks_message(app, client, receiver, content_type, body,
                                                  message):
    receiver.answer = (403, content_type, body)
    f = random_file(3000, 1024, "refused.bin")
    assert_refused(client.post("/api/check-chunks", json=f.ident(fileSize=3000)),
                   "upload_refused", message)
    assert_refused(send_chunk(client, f, 0), "upload_refused", message)
    assert uploads_and_events(app) == (0, 0)  # nothing recorded
    assert leftovers(app) == ([], [])  # and nothing stored


def test_an_empty_file_refused_at_completion_too(app, client, receiver):
    receiver.answer = (422, "application/json", b'{"message": "No empty files."}')
    ident = {"md5": EMPTY_MD5, "fileName": "empty.bin", "totalChunks": 0}
    assert_refused(client.post("/api/check-chunks", json=ident), "upload_refused",
                   "No empty files.")
    assert_refused(client.post("/api/complete-upload", json=ident), "upload_refused")


def test_tus_creation_refused_is_403(app, client, receiver):
    receiver.answer = (403, "application/json", b'{"message": "Unknown user."}')
    response = create(client, 10, "refused.tus", **{
        "Upload-Metadata": metadata(filename="refused.tus", user="nobody")})
    assert_refused(response, "upload_refused", "Unknown user.")
    assert response.headers["Tus-Resumable"] == "1.0.0"
    [asked] = receiver.received
    assert asked.json["upload"] == {"protocol": "tus", "fileName": "refused.tus",
                                    "uploadLength": 10, "concat": None,
                                    "metadata": {"filename": "refused.tus", "user": "nobody"}}
    assert uploads_and_events(app) == (0, 0)


def test_tus_creation_admitted(app, client, receiver):
    assert create(client, 10, "admitted.tus").status_code == 201
    assert len(receiver.received) == 1


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_a_hook_that_does_not_answer_in_time(app, client, receiver, fail_mode):
    receiver.holding = True  # answers nothing until the test ends
    f = random_file(100, 100, "slow.bin")
    response = send_chunk(client, f, 0)
    tus = create(client, 10, "slow.tus")
    if fail_mode == "closed":
        assert_refused(response, "pre_create_unavailable")
        assert_refused(tus, "pre_create_unavailable")
        assert uploads_and_events(app) == (0, 0)
    else:
        assert response.status_code == 200, response.json
        assert tus.status_code == 201
        assert uploads_and_events(app)[0] == 2
    assert len(receiver.received) == 2  # it was asked, and did not answer


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_a_hook_that_is_down(app, client, receiver, fail_mode):
    receiver.stop()
    response = client.post("/api/check-chunks",
                           json=random_file(100, 100, "down.bin").ident(fileSize=100))
    if fail_mode == "closed":
        assert_refused(response, "pre_create_unavailable")
    else:
        assert response.status_code == 200 and uploads_and_events(app)[0] == 1

"""The pre-create hook through the test client, on SQLite and MariaDB: a real receiver that
admits, refuses with a message, does not answer in time or is down, under each
PRE_CREATE_HOOK_FAIL setting, for /api and tus uploads."""
import pytest
from sqlalchemy import func, select

from uploadsvc import create_app
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


def test_check_chunks_without_a_file_size_asks_before_any_chunk(app, client, receiver):
    """A refused upload is refused at check-chunks, as its first chunk would be: the client
    learns it before it sends a byte, and nothing is recorded or stored."""
    receiver.answer = (403, "application/json", b'{"message": "No disk images."}')
    f = random_file(3000, 1024, "refused.iso")
    checked = client.post("/api/check-chunks", json=f.ident())
    assert_refused(checked, "upload_refused", "No disk images.")
    [asked] = receiver.received
    assert asked.json["upload"] == {"protocol": "api", "fileName": "refused.iso", "md5": f.md5,
                                    "totalChunks": 3, "fileSize": None}
    assert uploads_and_events(app) == (0, 0)
    assert leftovers(app) == ([], [])
    assert client.get(f"/api/upload-status/{f.md5}/refused.iso").status_code == 404
    # A client that sends the chunk anyway gets the very same answer (asked again: a
    # refusal is not remembered, so the hook may change its mind).
    chunk = send_chunk(client, f, 0)
    assert (chunk.status_code, chunk.get_json()) == (checked.status_code, checked.get_json())
    assert len(receiver.received) == 2 and uploads_and_events(app) == (0, 0)


def test_admitted_at_check_chunks_is_asked_once_on_every_worker(app, client, receiver):
    """The row made at check-chunks is the admission: the chunks, the completion and later
    checks, on this app or another one on the same database, do not ask again."""
    other = create_app({key: app.config[key] for key in (
        "TESTING", "DATA_DIR", "DATABASE_URL", "PRE_CREATE_HOOK_URL", "HOOK_SECRET",
        "PRE_CREATE_HOOK_TIMEOUT", "PRE_CREATE_HOOK_FAIL")})
    other.test_client_class = app.test_client_class
    elsewhere = other.test_client()
    try:
        files = [random_file(3000, 1024, "one.bin"), random_file(2000, 1024, "two.bin")]
        for f in files:
            assert client.post("/api/check-chunks", json=f.ident()).status_code == 200
            assert client.post("/api/check-chunks", json=f.ident()).status_code == 200
            assert send_chunk(elsewhere, f, 0).status_code == 200
            assert upload_all(client, f).status_code == 200
            assert elsewhere.post("/api/check-chunks", json=f.ident()).json["completed"]
    finally:
        with other.app_context():
            db.engine.dispose()
    assert [r.json["upload"]["fileName"] for r in receiver.received] == ["one.bin", "two.bin"]
    assert all(r.json["upload"]["fileSize"] is None for r in receiver.received)


def test_a_completed_file_is_not_asked_about_again(app, client, receiver):
    """check-chunks of a file completed under this name answers it at once, unasked."""
    f = random_file(1000, 1000, "done.bin")
    assert upload_all(client, f).status_code == 200
    receiver.answer = (403, "text/plain", b"Would be refused now.")
    for _ in range(2):
        checked = client.post("/api/check-chunks", json=f.ident())
        assert checked.status_code == 200 and checked.json["instantUpload"] is True
    assert len(receiver.received) == 1  # its first chunk, only


def test_an_instant_upload_under_a_new_name_is_a_new_upload_and_asked(app, client, receiver):
    """The same bytes under another name make a new upload and a new file: the hook decides
    on that name as on any other, and a refusal copies nothing."""
    f = random_file(1000, 1000, "report.pdf")
    assert upload_all(client, f).status_code == 200
    receiver.answer = (403, "text/plain", b"No executables.")
    assert_refused(client.post("/api/check-chunks", json=f.ident(fileName="report.exe")),
                   "upload_refused", "No executables.")
    assert uploads_and_events(app)[0] == 1
    receiver.answer = (204, "", b"")
    instant = client.post("/api/check-chunks", json=f.ident(fileName="copy.pdf"))
    assert instant.status_code == 200 and instant.json["instantUpload"] is True
    assert [r.json["upload"]["fileName"] for r in receiver.received] == [
        "report.pdf", "report.exe", "copy.pdf"]


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
@pytest.mark.parametrize("first", ["check-chunks", "upload-chunk"])
def test_a_hook_that_does_not_answer_in_time(app, client, receiver, fail_mode, first):
    receiver.holding = True  # answers nothing until the test ends
    f = random_file(100, 100, "slow.bin")
    if first == "check-chunks":
        response = client.post("/api/check-chunks", json=f.ident())
    else:
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
@pytest.mark.parametrize("declared", [{"fileSize": 3000}, {}])
def test_a_hook_that_is_down_at_check_chunks(app, client, receiver, fail_mode, declared):
    receiver.stop()
    f = random_file(3000, 1024, "down.bin")
    response = client.post("/api/check-chunks", json=f.ident(**declared))
    receiver.start()  # back, and it would refuse now
    receiver.answer = (403, "text/plain", b"Refused once back.")
    if fail_mode == "closed":
        assert_refused(response, "pre_create_unavailable")
        assert uploads_and_events(app) == (0, 0) and leftovers(app) == ([], [])
        assert_refused(send_chunk(client, f, 0), "upload_refused", "Refused once back.")
        assert len(receiver.received) == 1
    else:  # admitted for good: its chunks and completion do not ask the hook back up
        assert response.status_code == 200 and uploads_and_events(app)[0] == 1
        assert upload_all(client, f).status_code == 200
        assert receiver.received == []

"""What the GCS backend costs in requests: each HTTP request its real client sends to the
session's emulator is counted (at the client's session, so retries count too), for the
writes every upload makes many times and for completion."""
import hashlib
import io
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from uploadsvc.storage import GCSStore
from uploadsvc.storage.gcs.client import Client

from .gcsemulator import BUCKET
from .helpers import finished_bytes, leftovers, random_file, send_chunk
from .tus_helpers import create, head, patch, path_of

KEY = "0123456789abcdef0123456789abcdef"


def operation(method: str, url: str) -> str:
    """The JSON API operation an HTTP request is (with ifGenerationMatch=0 marked)."""
    parts = urlsplit(url)
    path, query = parts.path, parse_qs(parts.query)
    exclusive = "!" if query.get("ifGenerationMatch") == ["0"] else ""
    if path.endswith("/batch/storage/v1"):
        return "batch"
    if path.startswith("/upload/"):
        return "insert" + exclusive
    if path.endswith("/compose"):
        return "compose" + exclusive
    if query.get("alt") == ["media"]:
        return "get-media"
    if path.endswith("/o"):
        return "list"
    return {"GET": "get", "DELETE": "delete"}.get(method, method)


class Requests:
    """The operations a client sends, in order, while counting."""

    def __init__(self, client: Client) -> None:
        self.session = client.client._http
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __enter__(self) -> "Requests":
        request = type(self.session).request

        def counted(session, method, url, *args, **kwargs):
            with self.lock:
                self.sent.append(operation(method, url))
            return request(session, method, url, *args, **kwargs)

        self.session.request = counted.__get__(self.session)
        return self

    def __exit__(self, *exc) -> None:
        del self.session.request


@pytest.fixture
def store(gcs_env, tmp_path) -> GCSStore:
    store = GCSStore(Client(BUCKET), f"gs://{BUCKET}/r-{uuid.uuid4().hex[:12]}",
                     str(tmp_path / "data"))
    store.create(KEY)
    return store


def spooled(store, data: bytes):
    part = store.spool()
    part.write(data)
    part.seek(0)
    return part


@pytest.mark.parametrize("spool", [True, False], ids=["spooled", "body"])
def test_a_chunk_in_place_is_its_upload_and_the_removal_of_a_copy_aside(store, spool):
    data = b"c" * 70_000
    digest = hashlib.md5()
    with spooled(store, data) if spool else io.BytesIO(data) as src, \
            Requests(store.client) as sent:
        assert store.write_chunk(KEY, 1, src, 70_000, [digest]) == 70_000
    assert sent.sent == ["insert", "delete"]
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()


def test_a_chunk_aside_is_one_upload(store):
    with spooled(store, b"late") as src, Requests(store.client) as sent:
        assert store.write_chunk(KEY, 3, src, None) == 4
    assert sent.sent == ["insert"]


def test_a_patch_is_a_listing_and_an_upload_only_if_its_name_is_free(store):
    store.write(KEY, 0, io.BytesIO(b"first"), 5)
    with Requests(store.client) as sent:
        assert store.write(KEY, 5, io.BytesIO(b"second"), 100).size == 6
    # ifGenerationMatch=0: a late writer's upload at an offset another filled is refused
    # (GCS's If-None-Match: *; the emulator does not enforce it, real GCS does).
    assert sent.sent == ["list", "insert!"]
    assert store.size(KEY) == 11


def test_publishing_composes_the_sealed_object_only_if_the_name_is_free(store):
    store.write(KEY, 0, io.BytesIO(b"bytes"), 5)
    sealed = store.seal(KEY, 5, md5=hashlib.md5(b"bytes").hexdigest())
    with Requests(store.client) as sent:
        store.publish(sealed, "name")
    assert sent.sent == ["get", "compose!", "delete"]


def test_an_in_order_upload_through_the_app(gcs_app):
    client = gcs_app.test_client()
    f = random_file(300_000, 100_000)
    store = gcs_app.extensions["store"]
    assert send_chunk(client, f, 0).status_code == 200
    with Requests(store.client) as sent:
        assert send_chunk(client, f, 1).status_code == 200
    assert sent.sent == ["insert", "delete"], sent.sent  # hashed as it passed
    assert send_chunk(client, f, 2).status_code == 200
    with Requests(store.client) as sent:
        answer = client.post("/api/complete-upload", json=f.ident())
    assert answer.get_json()["md5"] == f.md5
    # Found (2 listings), placed (the marker, the copies aside: none), sealed (a listing, one
    # compose), nothing read back, published (the name's check twice, a compose, the sealed
    # object removed), the upload removed (2 listings, one batch).
    assert sent.sent == ["list", "list", "get", "list", "list", "compose", "get", "get",
                         "compose!", "delete", "list", "list", "batch"], sent.sent
    assert finished_bytes(gcs_app, "test.bin") == f.data
    assert leftovers(gcs_app) == ([], [])


def test_a_patch_through_the_app(gcs_app):
    client = gcs_app.test_client()
    data = hashlib.sha256(b"seed").digest() * 10_000
    path = path_of(create(client, len(data)))
    assert patch(client, path, 0, data[:100_000]).status_code == 204
    store = gcs_app.extensions["store"]
    with Requests(store.client) as sent:
        assert patch(client, path, 100_000, data[100_000:200_000]).status_code == 204
    assert sent.sent == ["list", "insert!"], sent.sent
    assert patch(client, path, 200_000, data[200_000:]).status_code == 204
    assert head(client, path).headers["Upload-Offset"] == str(len(data))

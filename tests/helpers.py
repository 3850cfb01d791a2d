"""Building test files and driving the API the way front ends do."""
import hashlib
import io
import os
from dataclasses import dataclass

from flask.testing import FlaskClient

from uploadsvc.http import followups as http_followups
from uploadsvc.services import followups
from uploadsvc.services.chunked import chunks as api_chunks
from uploadsvc.services.chunked import completion as api_completion
from uploadsvc.storage import ChunkFiles
from uploadsvc.storage.local.chunkfiles import CLAIMS
from uploadsvc.storage.local.restarts import DATA_BOOT
from uploadsvc.storage.md5state import Md5State


@dataclass
class TestFile:
    """A file cut into chunks as the front ends cut it."""

    __test__ = False
    data: bytes
    chunk_size: int
    name: str = "test.bin"

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()

    @property
    def total(self) -> int:
        return max(1, -(-len(self.data) // self.chunk_size))

    def chunk(self, index: int) -> bytes:
        return self.data[index * self.chunk_size:(index + 1) * self.chunk_size]

    def ident(self, **overrides) -> dict:
        return {"md5": self.md5, "fileName": self.name, "totalChunks": self.total, **overrides}

    def form(self, index: int, body: bytes | None = None, **overrides) -> dict:
        """Multipart fields for the test client."""
        fields = {"chunkIndex": str(index), "md5": self.md5, "fileName": self.name,
                  "totalChunks": str(self.total), **overrides}
        fields["chunk"] = (io.BytesIO(self.chunk(index) if body is None else body), "blob")
        return fields


def random_file(size: int, chunk_size: int, name: str = "test.bin") -> TestFile:
    return TestFile(os.urandom(size), chunk_size, name)


def send_chunk(client, test_file: TestFile, index: int, **overrides):
    return client.post("/api/upload-chunk", data=test_file.form(index, **overrides),
                       content_type="multipart/form-data")


def upload_all(client, test_file: TestFile, order=None):
    for index in order if order is not None else range(test_file.total):
        response = send_chunk(client, test_file, index)
        assert response.status_code == 200, response.json
    return client.post("/api/complete-upload", json=test_file.ident())


def chunk_files(directory) -> list[str]:
    """Names in a chunk directory, less the hash lock and boot mark."""
    return sorted(n for n in os.listdir(directory) if n not in (DATA_BOOT, CLAIMS))


class ClosingClient(FlaskClient):
    """A test client that reads and closes every answer, as a server does after sending it,
    then waits for the work left for after it (hashing, dropping chunks): it has run when a
    request returns."""

    def open(self, *args, buffered: bool = True, **kwargs):
        response = super().open(*args, buffered=buffered, **kwargs)
        assert http_followups.drain(self.application, timeout=60), "follow-ups still running"
        return response


def store_chunk(md5: str, name: str, total: int, index: int, src):
    """api_chunks.store_chunk, with its follow-ups run as the HTTP layer runs them after the
    answer; the Progress."""
    outcome = api_chunks.store_chunk(md5, name, total, index, src)
    followups.run(outcome.later)
    return outcome.value


def complete(md5: str, name: str, total: int):
    """api_completion.complete, with its follow-ups run; the completed Upload."""
    outcome = api_completion.complete(md5, name, total)
    followups.run(outcome.later)
    return outcome.value


def restart_machine(monkeypatch, app, boot_id: str = "boot-after-the-crash") -> None:
    """As if the machine restarted: the app's store sees another boot (a machine crash
    cannot be had for real in a test)."""
    monkeypatch.setattr(app.extensions["store"], "boot_id", boot_id)


# -- the store, through the storage interface (the local layout is test_storage_local's) --


def store_of(app):
    """The app's store, as the services reach it."""
    return app.extensions["store"]


def chunks_of(app) -> ChunkFiles:
    """The store's chunk capability, which chunked (/api) uploads need."""
    found = store_of(app)
    assert isinstance(found, ChunkFiles), f"{type(found).__name__} stores no chunks"
    return found


def upload_keys(app) -> list[str]:
    """Keys of the uploads whose bytes the store keeps, sorted."""
    return sorted(key for key, _ in store_of(app).upload_keys())


def leftovers(app) -> tuple[list[str], list[str]]:
    """(upload keys with bytes kept, temporary files) the store still holds: ([], []) once
    every upload is finished or gone and no request left a part behind."""
    return upload_keys(app), sorted(name for name, _ in store_of(app).temp_files())


def finished_bytes(app, name: str) -> bytes:
    """The bytes of the finished file stored under name."""
    with store_of(app).open_file(name) as f:
        return f.read()


def md5_in_place(app, key: str, size: int) -> str:
    """The MD5 of an upload's first size bytes as they lie in place (chunks stored aside
    not counted): what completion trusts a saved hash state for."""
    return Md5State(store_of(app).hash_prefix(key, None, size)).hexdigest()


def assert_parts_are_the_pieces(parts, pieces) -> None:
    """A join's parts hold the pieces again, in order, each whole (copied parts one piece)."""
    assert all(len(part.pieces) == 1 for part in parts if part.copied)
    joined = [(p.key, p.start, p.end) for part in parts for p in part.pieces]
    merged = []
    for key, start, end in joined:
        if merged and merged[-1][0] == key and merged[-1][2] == start:
            merged[-1] = (key, merged[-1][1], end)
        else:
            merged.append((key, start, end))
    assert merged == [(p.key, p.start, p.end) for p in pieces if p.size]

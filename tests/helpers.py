"""Building test files and driving the API the way front ends do."""
import hashlib
import io
import os
from dataclasses import dataclass

from flask.testing import FlaskClient

from uploadsvc.services import api_chunks, api_completion, followups
from uploadsvc.storage.chunkfiles import CLAIMS
from uploadsvc.storage.restarts import DATA_BOOT


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
    """A test client that reads and closes every answer, as a server does after sending it:
    work registered with call_on_close (folding, dropping chunks) has run when it returns."""

    def open(self, *args, buffered: bool = True, **kwargs):
        return super().open(*args, buffered=buffered, **kwargs)


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

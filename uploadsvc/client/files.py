"""Local files: validation, streaming MD5 and chunk arithmetic."""
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BUFFER_SIZE = 1024 * 1024


class InvalidFile(Exception):
    """The path is not a regular file this user can read."""


@dataclass(frozen=True)
class Source:
    """A file to upload, cut into chunks of chunk_size bytes."""

    path: Path
    name: str
    size: int
    chunk_size: int

    @property
    def total_chunks(self) -> int:
        # A zero-byte file is one empty chunk, as the API decides.
        return max(1, -(-self.size // self.chunk_size))

    def chunk_length(self, index: int) -> int:
        return max(0, min(self.chunk_size, self.size - index * self.chunk_size))

    def read_chunk(self, index: int) -> bytes:
        """One chunk's bytes: the only part of the file held in memory."""
        with open(self.path, "rb") as stream:
            stream.seek(index * self.chunk_size)
            return stream.read(self.chunk_length(index))


def open_source(path: Path, chunk_size: int) -> Source:
    """Check that path is a readable regular file; InvalidFile says why not."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InvalidFile("no such file") from None
    except OSError as exc:
        raise InvalidFile(exc.strerror or str(exc)) from None
    if not os.path.isfile(path):
        raise InvalidFile("not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidFile("permission denied")
    return Source(Path(path), Path(path).name, info.st_size, chunk_size)


def md5_file(path: Path, progress: Callable[[int], object] = lambda n: None) -> str:
    """Hex MD5 of a file, read with a fixed buffer; progress(n) after each n bytes."""
    digest = hashlib.md5()
    buffer = bytearray(BUFFER_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        while n := stream.readinto(buffer):
            digest.update(view[:n])
            progress(n)
    return digest.hexdigest()

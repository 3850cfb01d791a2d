"""Request parts spooled into the data directory, so that a write can take them over."""
import hashlib
import io
import mmap
import os
import tempfile
from typing import BinaryIO

from .errors import PartTooLarge
from .files import unlink_quietly

# The most of a part mapped at once while hashing it, and the buffer where it cannot be.
HASH_WINDOW = 2 * 1024 * 1024


class SpoolFile(io.FileIO):
    """A request part spooled into a temp directory; removed on close unless claimed."""

    def __init__(self, directory: str, limit: int | None = None) -> None:
        fd, self.path = tempfile.mkstemp(dir=directory, prefix="spool-", suffix=".part")
        super().__init__(fd, "r+b")
        self.claimed = False
        self.limit = limit

    def write(self, data) -> int:
        # Stop at the limit while the part streams in, not after it is all on disk.
        if self.limit is not None and self.tell() + len(data) > self.limit:
            self.close()  # the parser that owns us gives up without closing: remove it now
            raise PartTooLarge(f"part larger than {self.limit} bytes")
        return super().write(data)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if not self.claimed:
                unlink_quietly(self.path)
                self.claimed = True


def stream_size(stream: BinaryIO) -> int:
    """Bytes in a spooled (seekable) stream."""
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        position = stream.tell()
        size = stream.seek(0, os.SEEK_END)
        stream.seek(position)
        return size


def md5_of(stream: BinaryIO) -> str:
    """The hex MD5 of a spooled stream's bytes, hashed where they lie in the page cache (a
    file is mapped, not read into buffers); the stream's position is kept."""
    digest = hashlib.md5()
    try:
        fd = stream.fileno()
        size = os.fstat(fd).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        position = stream.tell()
        stream.seek(0)
        while block := stream.read(HASH_WINDOW):
            digest.update(block)
        stream.seek(position)
        return digest.hexdigest()
    for offset in range(0, size, HASH_WINDOW):
        with mmap.mmap(fd, min(HASH_WINDOW, size - offset), access=mmap.ACCESS_READ,
                       offset=offset) as window:
            digest.update(window)
    return digest.hexdigest()

"""Request parts spooled into the data directory, so that a write can take them over."""
import io
import os
import tempfile
from typing import BinaryIO

from .errors import PartTooLarge
from .files import unlink_quietly


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

"""The local backend's directories, paths and fsync policy.

Under the data directory: ``temp/`` (spooled request parts, nameless until a chunk
file takes one over, and files being sealed),
``chunks/<key>/`` (an upload's ``data`` file, its chunk files ``<index>`` not yet in place,
the mark that it exists, ``.claims``, and its boot mark) and ``uploads/<stored name>``
(finished files). A ``locks/`` beside them is the store's FileLocker's (made with the
store): a store run on its own keeps a lock file per upload and purpose there, and each
upload's chunk claims; in the app, whose locks are leases in the database, it stays empty.
Every path is built from a server-made key, a chunk index or a stored name the service chose.
"""
import os
import shutil
import tempfile
from typing import BinaryIO

from ..base import UPLOAD_KEY
from ..boot import BOOT_ID
from ..files import unlink_quietly, write_all
from ..spool import SpoolFile

BUFFER_SIZE = 1024 * 1024


class Layout:
    """Paths and durability of one data directory."""

    def __init__(self, root: str, fsync: bool | str = True, buffer_size: int = BUFFER_SIZE,
                 boot_id: str | None = BOOT_ID) -> None:
        self.root = os.path.abspath(root)
        # fsync True: chunks and finished files; "complete": finished files only.
        self.sync_chunks = fsync is True
        self.fsync = bool(fsync)
        self.buffer_size = buffer_size
        self.boot_id = boot_id
        self.temp_dir = os.path.join(self.root, "temp")
        self.chunks_dir = os.path.join(self.root, "chunks")
        self.uploads_dir = os.path.join(self.root, "uploads")
        self.locks_dir = os.path.join(self.root, "locks")
        for directory in (self.temp_dir, self.chunks_dir, self.uploads_dir):
            os.makedirs(directory, exist_ok=True)

    def _chunk_dir(self, key: str) -> str:
        if not UPLOAD_KEY.fullmatch(key):
            raise ValueError("invalid upload key")
        return os.path.join(self.chunks_dir, key)

    def _chunk_path(self, key: str, index: int) -> str:
        return os.path.join(self._chunk_dir(key), str(int(index)))

    def _data_path(self, key: str) -> str:
        return os.path.join(self._chunk_dir(key), "data")

    def _upload_path(self, stored_name: str) -> str:
        if stored_name in ("", ".", "..") or "/" in stored_name or "\0" in stored_name:
            raise ValueError("invalid stored name")
        return os.path.join(self.uploads_dir, stored_name)

    def _is_spooled(self, src: BinaryIO) -> bool:
        """Whether src is a part spooled into temp/ (so the kernel can copy or move it)."""
        return isinstance(src, SpoolFile) and src.directory == self.temp_dir

    def _write_temp(self, src: BinaryIO, directory: str, chunk: bool = False) -> str:
        fd, path = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
        try:
            with open(fd, "wb") as out:
                shutil.copyfileobj(src, out, self.buffer_size)
                out.flush()
                (self._sync_chunk if chunk else self._sync)(out.fileno())
        except BaseException:
            unlink_quietly(path)
            raise
        return path

    def _copy_to_temp(self, source: str) -> str:
        with open(source, "rb") as src:
            return self._write_temp(src, self.temp_dir)

    def _hash_into(self, src, digest, out=None) -> int:
        """Read src to its end with one buffer, hashing and optionally copying to out."""
        buffer = bytearray(self.buffer_size)
        view = memoryview(buffer)
        size = 0
        while n := src.readinto(buffer):
            digest.update(view[:n])
            if out is not None:
                write_all(out, view[:n])
            size += n
        return size

    def _sync(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    def _sync_chunk(self, fd: int) -> None:
        if self.sync_chunks:
            os.fsync(fd)

    def _sync_dir(self, directory: str) -> None:
        if self.fsync:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

"""The local backend's chunks: written in place into the upload's data file, or aside.

Chunk i of an /api upload is written straight into ``chunks/<key>/data`` at offset
i × chunk size, so every byte reaches the disk once, and the file that completion seals is
the very file the chunks were written to. Only the one request that claims a chunk (the
store's locker decides; ``chunks/<key>/.claims`` marks that the upload exists) writes it in place; a
chunk re-sent after it was recorded, or one whose offset is not known yet (the last chunk,
before any other has told the chunk size), goes to a chunk file ``chunks/<key>/<i>`` instead,
written aside and renamed (a spooled part, which has no name, is given that one), and is
copied into place when the upload completes. A chunk's bytes may also be written in place as
they arrive (write_in_place): never past its region, and read back from the page cache when
they must be hashed or taken back.
"""
import hashlib
import mmap
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from .. import writeback
from ..base import Written
from ..beside import BESIDE_MIN, Ring
from ..capabilities import ChunkFiles, StreamedChunks
from ..files import copy_range, disk_errors, fill, gone_if_missing, unlink_quietly, write_all
from .restarts import BootMarks

CLAIMS = ".claims"
# The most of a data file mapped at once while hashing a chunk in place.
HASH_WINDOW = 2 * 1024 * 1024


class LocalChunkFiles(BootMarks, ChunkFiles, StreamedChunks):
    """ChunkFiles on the local disk."""

    @contextmanager
    def claim(self, key: str, index: int) -> Iterator[bool]:
        if not os.path.exists(os.path.join(self._chunk_dir(key), CLAIMS)):
            yield False
            return
        with self.locker.claim(key, index) as held:
            yield held

    def write_chunk(self, key: str, index: int, src: BinaryIO, offset: int | None,
                    digests: Iterable = ()) -> int:
        with disk_errors(), gone_if_missing():
            self._unsynced_bytes_follow(key)
            src = self._feeding(src, list(digests))
            if offset is None:
                return self._write_aside(key, index, src)
            # The bytes in place are the chunk now: a copy aside from an earlier try goes.
            unlink_quietly(self._chunk_path(key, index))
            with self._data_file(key) as fd:
                return self._copy_in(src, fd, offset)

    def write_in_place(self, key: str, offset: int, src: BinaryIO, limit: int,
                       digests: Iterable = ()) -> Written:
        with disk_errors(), gone_if_missing():
            self._unsynced_bytes_follow(key)
            with self._data_file(key) as fd, Ring(
                    digests, self.buffer_size, beside=limit >= BESIDE_MIN) as ring:
                return receive(src, limit, ring, fd, offset)

    def md5_in_place(self, key: str, offset: int, size: int) -> str:
        # Hashed where the bytes lie in the page cache, as a spooled part is (md5_of).
        digest = hashlib.md5()
        with disk_errors(), gone_if_missing():
            fd = os.open(self._data_path(key), os.O_RDONLY)
            try:
                if os.fstat(fd).st_size < offset + size:
                    raise ValueError("fewer bytes are in place than asked for")
                position, end = offset, offset + size
                while position < end:
                    start = position - position % mmap.ALLOCATIONGRANULARITY
                    length = min(end, start + HASH_WINDOW) - start
                    with mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=start) as window:
                        digest.update(memoryview(window)[position - start:])
                    position = start + length
            finally:
                os.close(fd)
        return digest.hexdigest()

    def copy_in_place(self, key: str, offset: int, size: int, out: BinaryIO) -> None:
        with disk_errors(), gone_if_missing():
            fd = os.open(self._data_path(key), os.O_RDONLY)
            try:
                done = 0
                while done < size:
                    data = os.pread(fd, min(self.buffer_size, size - done), offset + done)
                    if not data:
                        raise ValueError("fewer bytes are in place than asked for")
                    write_all(out, memoryview(data))
                    done += len(data)
            finally:
                os.close(fd)

    def stored_sizes(self, key: str, chunks: dict[int, int],
                     chunk_size: int | None) -> dict[int, int]:
        # A chunk file's size, or the recorded size if the data file reaches the chunk's end.
        try:
            data_end = os.stat(self._data_path(key)).st_size
        except FileNotFoundError:
            data_end = -1
        found = {}
        for index, size in chunks.items():
            try:
                found[index] = os.stat(self._chunk_path(key, index)).st_size
            except FileNotFoundError:
                if index * (chunk_size or 0) + size <= data_end:
                    found[index] = size
        return found

    def chunks_aside(self, key: str, indices: Iterable[int]) -> list[int]:
        return [i for i in indices if os.path.exists(self._chunk_path(key, i))]

    def place_chunks(self, key: str, chunk_size: int | None) -> list[int]:
        with disk_errors(), gone_if_missing():
            indices = sorted(int(name) for name in os.listdir(self._chunk_dir(key))
                             if name.isdigit())
            if not indices:
                return []
            fd = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                for index in indices:
                    with open(self._chunk_path(key, index), "rb", buffering=0) as src:
                        size = os.fstat(src.fileno()).st_size
                        copy_range(src.fileno(), fd, size, index * (chunk_size or 0))
                self._sync(fd)
            finally:
                os.close(fd)
        return indices

    def drop_chunks(self, key: str, indices: list[int]) -> None:
        for index in indices:
            unlink_quietly(self._chunk_path(key, index))

    def clear(self, key: str) -> None:
        with disk_errors(), gone_if_missing():
            for name in os.listdir(self._chunk_dir(key)):
                if name != CLAIMS:
                    unlink_quietly(os.path.join(self._chunk_dir(key), name))
            self._sync_dir(self._chunk_dir(key))

    @contextmanager
    def _data_file(self, key: str) -> Iterator[int]:
        """The upload's data file to write a chunk into; the chunk is made durable as the
        block ends (and the file's name, if it was made just now)."""
        try:
            fd, created = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT | os.O_EXCL,
                                  0o644), True
        except FileExistsError:
            fd, created = os.open(self._data_path(key), os.O_RDWR), False
        try:
            yield fd
            self._sync_chunk(fd)
        finally:
            os.close(fd)
        if created and self.sync_chunks:
            self._sync_dir(self._chunk_dir(key))

    def _feeding(self, src: BinaryIO, digests: list) -> BinaryIO:
        """src, its bytes fed to digests: a spooled part's now, where they lie in the page
        cache (the kernel copies or links it), any other's as they are read."""
        if not digests:
            return src
        if not self._is_spooled(src):
            return _Feeding(src, digests)
        size = os.fstat(src.fileno()).st_size
        for start in range(0, size, HASH_WINDOW):
            with mmap.mmap(src.fileno(), min(HASH_WINDOW, size - start),
                           access=mmap.ACCESS_READ, offset=start) as window:
                for digest in digests:
                    digest.update(window)
        return src

    def _write_aside(self, key: str, index: int, src: BinaryIO) -> int:
        """A chunk file of its own, durable and whole: a spooled part is given its name
        there (same filesystem: atomic and zero-copy), anything else written aside and
        renamed."""
        dest = self._chunk_path(key, index)
        if self._is_spooled(src) and src.linkable:
            self._sync_chunk(src.fileno())
            size = os.fstat(src.fileno()).st_size
            src.link_as(dest)
        else:
            path = self._write_temp(src, os.path.dirname(dest), chunk=True)
            size = os.stat(path).st_size
            os.rename(path, dest)
        if self.sync_chunks:
            self._sync_dir(os.path.dirname(dest))
        return size

    def _copy_in(self, src: BinaryIO, fd: int, offset: int) -> int:
        """Copy all of src to fd at offset: in the kernel from a spooled part, else through
        one buffer."""
        if self._is_spooled(src):
            size = os.fstat(src.fileno()).st_size
            copy_range(src.fileno(), fd, size, offset)
            return size
        size = 0
        while data := src.read(self.buffer_size):
            _pwrite_all(fd, memoryview(data), offset + size)
            size += len(data)
        return size


class _Feeding:
    """A source read to its end once, its bytes fed to digests as they are read."""

    def __init__(self, src: BinaryIO, digests: list) -> None:
        self.src, self.digests = src, digests

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(size)
        for digest in self.digests:
            digest.update(data)
        return data


def receive(src: BinaryIO, limit: int, ring: Ring, fd: int, offset: int) -> Written:
    """Read up to limit bytes of src through the ring's buffers (hashed beside) into fd at
    offset, each buffer's writeback started at once; one byte more is probed for, so that a
    body over its limit is told apart from one that ends there."""
    written, overflow, interrupted = 0, False, False
    for view in ring.buffers():
        n, ended, interrupted = fill(src, view[:min(len(view), limit - written)])
        if not ended and written + n == limit:  # probe for excess
            overflow = fill(src, memoryview(bytearray(1)))[0] > 0
            ended = True
        ring.hash(view[:n])
        _pwrite_all(fd, view[:n], offset + written)
        writeback.start(fd, offset + written, n)  # on its way while the rest arrives
        written += n
        if ended:
            break
    return Written(written, overflow, interrupted)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written

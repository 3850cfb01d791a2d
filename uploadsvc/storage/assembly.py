"""The store's assembly: an upload's file built in place as its chunks arrive.

Chunk i of an /api upload is written straight into ``chunks/<key>/data`` at offset
i × chunk size, so every byte reaches the disk once, and the file that completion places is
the very file the chunks were written to. The caller keeps the MD5 state of the file's
prefix as its chunks are recorded, so completing an upload sent in order needs neither a
re-read nor a re-hash.

Bytes in place are written only by the one request that claims the chunk while it is not
recorded (see ``claim``); a chunk re-sent after it was recorded, or one whose offset is not
known yet (the last chunk, before any other has told the chunk size), goes to a chunk file
``chunks/<key>/<index>`` instead, written aside and renamed, and is copied into place when
the upload completes. So bytes that were hashed never change under the hash: a chunk file
that overrides hashed bytes makes completion hash the whole file again.
"""
import errno
import fcntl
import io
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO

from .md5state import Md5State

HASH_LOCK = ".hashlock"
# The boot of the machine that last wrote bytes into the upload's directory without fsync.
DATA_BOOT = ".data-boot"
# The most of a data file mapped at once while hashing it: bounds what a worker's RSS counts.
_HASH_WINDOW = 2 * 1024 * 1024
_COPY_STEP = 1 << 20


class BootMarks:
    """Which boot of the machine wrote bytes that were not fsync'd as they were written.

    Under FSYNC "complete", chunks and tus PATCHes are written without fsync. Pages are
    written back in no particular order, so after a machine crash such a file may hold
    zeros where the page cache was lost, even at its full size. A mark holding the kernel's
    boot id tells: one from another boot means the bytes are not to be trusted. Where the
    boot id cannot be read (not Linux), files are trusted as before.
    """

    def _mark_boot(self, key: str, name: str) -> None:
        """Mark the file as written in this boot; the mark is on the disk before the bytes
        it speaks for are written (once per file and boot, so its fsyncs cost little)."""
        if BOOT_ID is not None:  # written aside and renamed: never seen half-written
            fd, path = tempfile.mkstemp(dir=self._chunk_dir(key), prefix=".", suffix=".part")
            with open(fd, "w") as mark:
                mark.write(BOOT_ID)
                mark.flush()
                self._sync(mark.fileno())
            os.replace(path, os.path.join(self._chunk_dir(key), name))
            self._sync_dir(self._chunk_dir(key))

    def _begun_this_boot(self, key: str, name: str) -> bool:
        if BOOT_ID is None:
            return True
        try:
            with open(os.path.join(self._chunk_dir(key), name)) as mark:
                return mark.read() == BOOT_ID
        except FileNotFoundError:
            return False

    def written_before_restart(self, key: str) -> bool:
        """Whether the upload's directory holds bytes written without fsync before the
        machine last restarted (none of which can be trusted)."""
        return (os.path.exists(os.path.join(self._chunk_dir(key), DATA_BOOT))
                and not self._begun_this_boot(key, DATA_BOOT))


def _read_boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


BOOT_ID = _read_boot_id()


class AssemblyMixin(BootMarks):
    """ChunkStore's methods for chunks written in place (the byte work; the service decides
    when)."""

    @contextmanager
    def claim(self, key: str, index: int) -> Iterator[bool]:
        """Claim chunk `index` for a write in place; yields whether we got it (no waiting:
        a request that finds it taken writes a chunk file instead).

        An open-file-description lock on byte `index` of the upload's lock file: it excludes
        other threads as well as other processes, and the kernel drops it with the file.
        """
        try:
            fd = os.open(os.path.join(self._chunk_dir(key), ".lock"), os.O_RDWR)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK, index))
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                yield False
                return
            yield True
        finally:
            os.close(fd)  # drops the lock

    def put_chunk_at(self, key: str, index: int, src: BinaryIO, offset: int) -> int:
        """Write a claimed, unrecorded chunk into the upload's data file at offset, fsync'd
        unless FSYNC is "complete"; returns its size. A chunk file left by an earlier
        attempt at this index is removed first: the bytes in place are the chunk now."""
        with self._disk_errors_and_gone():
            self._unsynced_bytes_follow(key)
            _unlink_quietly(self._chunk_path(key, index))
            try:
                fd = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except FileExistsError:
                fd = os.open(self._data_path(key), os.O_RDWR)
                created = False
            try:
                size = self._copy_in(src, fd, offset)
                self._sync_chunk(fd)
            finally:
                os.close(fd)
            if created and self.sync_chunks:
                self._sync_dir(self._chunk_dir(key))
        return size

    def _copy_in(self, src: BinaryIO, fd: int, offset: int) -> int:
        """Copy all of src to fd at offset: in the kernel from a spooled part, else through
        one buffer."""
        if (isinstance(src, io.FileIO)
                and os.path.dirname(getattr(src, "path", "")) == self.temp_dir):
            size = os.fstat(src.fileno()).st_size
            _copy_range(src.fileno(), fd, size, offset)
            return size
        size = 0
        while data := src.read(self.buffer_size):
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, offset + size)
                view, size = view[written:], size + written
        return size

    def _unsynced_bytes_follow(self, key: str) -> None:
        if not self.sync_chunks and not self._begun_this_boot(key, DATA_BOOT):
            self._mark_boot(key, DATA_BOOT)

    def stored_sizes(self, key: str, chunks: dict[int, int], chunk_size: int | None
                     ) -> dict[int, int]:
        """Sizes on disk of recorded chunks {index: size}: a chunk file's, or the recorded
        size if the data file reaches the chunk's end; chunks found in neither are left out."""
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

    def chunk_files(self, key: str, indices: Iterator[int]) -> list[int]:
        """Which of these chunks are in chunk files of their own (not yet in place)."""
        return [i for i in indices if os.path.exists(self._chunk_path(key, i))]

    def place_chunk_files(self, key: str, chunk_size: int | None) -> list[int]:
        """Copy every chunk file into the data file at its offset (under the upload's
        exclusive lock); the indices, in order. The files stay until drop_chunk_files."""
        with self._disk_errors_and_gone():
            indices = sorted(int(name) for name in os.listdir(self._chunk_dir(key))
                             if name.isdigit())
            if not indices:
                return []
            fd = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                for index in indices:
                    with open(self._chunk_path(key, index), "rb", buffering=0) as src:
                        size = os.fstat(src.fileno()).st_size
                        _copy_range(src.fileno(), fd, size, index * (chunk_size or 0))
                self._sync(fd)
            finally:
                os.close(fd)
        return indices

    def drop_chunk_files(self, key: str, indices: list[int]) -> None:
        """Remove chunk files whose bytes place_chunk_files put in place (and synced)."""
        for index in indices:
            _unlink_quietly(self._chunk_path(key, index))

    def clear_chunks(self, key: str) -> None:
        """Remove every chunk's bytes (data file, chunk files, boot mark); the directory and
        its locks stay. The caller holds the upload's exclusive lock."""
        with self._disk_errors_and_gone():
            for name in os.listdir(self._chunk_dir(key)):
                if name not in (".lock", HASH_LOCK):
                    _unlink_quietly(os.path.join(self._chunk_dir(key), name))
            self._sync_dir(self._chunk_dir(key))

    @contextmanager
    def hash_lock(self, key: str, wait: float = 0.0) -> Iterator[bool]:
        """Hold the upload's hash lock, waiting at most `wait` seconds; yields whether we got it.

        Whoever holds it hashes every chunk that is ready, so a busy lock can be skipped.
        """
        try:
            fd = os.open(os.path.join(self._chunk_dir(key), HASH_LOCK), os.O_CREAT | os.O_RDWR,
                         0o644)
        except FileNotFoundError:
            yield False
            return
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.01)
            yield True
        finally:
            os.close(fd)

    def hash_data(self, key: str, saved: bytes | None, end: int) -> bytes:
        """Hash the upload's data file on from where the saved MD5 state stands, up to end;
        the new state. The bytes are hashed where they lie in the page cache (mmap), then
        sent on their way to the disk."""
        state = Md5State(saved)
        with self._disk_errors_and_gone(), open(self._data_path(key), "rb",
                                                buffering=0) as data:
            if os.fstat(data.fileno()).st_size < end:
                raise ValueError("the data file is shorter than its recorded chunks")
            position = state.length
            if position > end:
                raise ValueError("the saved MD5 state is past the end")
            while position < end:
                start = position - position % mmap.ALLOCATIONGRANULARITY
                length = min(end, start + _HASH_WINDOW) - start
                with mmap.mmap(data.fileno(), length, access=mmap.ACCESS_COPY,
                               offset=start) as window:
                    state.update(memoryview(window)[position - start:])
                if self.fsync:  # start writing back now, so finishing has little to wait for
                    os.posix_fadvise(data.fileno(), position, start + length - position,
                                     os.POSIX_FADV_DONTNEED)
                position = start + length
        return state.save()


def _flock(kind: int, index: int) -> bytes:
    """A struct flock for one byte at `index` (l_pid must be 0 for OFD locks)."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, index, 1, 0)


def _copy_range(src: int, out: int, size: int, offset: int) -> None:
    """Copy all of src to out at offset, in the kernel where it can."""
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, out, size - done, done, offset + done)
        except OSError as exc:  # another filesystem, or no copy_file_range here
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            n = 0
        if not n:  # fall back to reading and writing
            data = os.pread(src, min(size - done, _COPY_STEP), done)
            if not data:
                raise ValueError("chunk shorter than recorded")
            n = os.pwrite(out, data, offset + done)
        done += n


def _unlink_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)

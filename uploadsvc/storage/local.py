"""ChunkStore: the only code that touches upload bytes on disk.

Layout under the data directory: ``temp/`` (spooled request parts, files being placed),
``chunks/<key>/`` (an upload's ``data`` file, written in place as chunks or tus PATCHes
arrive, chunk files ``<index>`` not yet in place, a ``.lock`` file), ``uploads/<stored name>``.
Every path is built from a server-made key, a chunk index or a stored name the service chose.
"""
import errno
import fcntl
import hashlib
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from .assembly import DATA_BOOT, AssemblyMixin, _unlink_quietly
from .md5state import Md5State

BUFFER_SIZE = 1024 * 1024
_KEY = re.compile(r"[0-9a-f]{32}")


class StorageError(Exception):
    """Base of the store's errors."""


class StorageFull(StorageError):
    """The disk (or quota) is full."""


class PartTooLarge(StorageError):
    """A spooled request part grew past its limit; what was written is removed."""


class UploadGone(StorageError):
    """The upload's chunk directory does not exist (deleted, completed or never made)."""


class LockBusy(StorageError):
    """Another request holds the upload's lock for longer than we may wait."""


class NameTaken(StorageError):
    """A different file already has this name under uploads/."""


@dataclass(frozen=True)
class Merged:
    """A merged file waiting in temp/ to be placed."""

    path: str
    size: int
    md5: str


@dataclass(frozen=True)
class Written:
    """What write_at stored: bytes written, whether the source held more than allowed,
    and whether reading it failed midway (the bytes before the failure are kept)."""

    size: int
    overflow: bool
    interrupted: bool


class SpoolFile(io.FileIO):
    """A request part spooled into temp/; removed on close unless the store claimed it."""

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
                _unlink_quietly(self.path)
                self.claimed = True


class ChunkStore(AssemblyMixin):
    """Chunks, merges and finished files of uploads, under one data directory."""

    def __init__(self, root: str, fsync: bool | str = True,
                 buffer_size: int = BUFFER_SIZE) -> None:
        self.root = os.path.abspath(root)
        # fsync True: chunks and finished files; "complete": finished files only.
        self.sync_chunks = fsync is True
        self.fsync = bool(fsync)
        self.buffer_size = buffer_size
        self.temp_dir = os.path.join(self.root, "temp")
        self.chunks_dir = os.path.join(self.root, "chunks")
        self.uploads_dir = os.path.join(self.root, "uploads")
        for directory in (self.temp_dir, self.chunks_dir, self.uploads_dir):
            os.makedirs(directory, exist_ok=True)

    # -- request spooling --------------------------------------------------------------

    def spool(self, limit: int | None = None) -> SpoolFile:
        """A temp file in the data directory for an incoming request part of at most limit
        bytes (PartTooLarge beyond)."""
        return SpoolFile(self.temp_dir, limit)

    @staticmethod
    def stream_size(stream: BinaryIO) -> int:
        """Bytes in a spooled (seekable) stream."""
        try:
            return os.fstat(stream.fileno()).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            position = stream.tell()
            size = stream.seek(0, os.SEEK_END)
            stream.seek(position)
            return size

    # -- chunks -------------------------------------------------------------------------

    def create(self, key: str) -> None:
        """Make the upload's chunk directory and lock file (idempotent)."""
        directory = self._chunk_dir(key)
        with _disk_errors():
            os.makedirs(directory, exist_ok=True)
            os.close(os.open(os.path.join(directory, ".lock"), os.O_CREAT | os.O_RDWR, 0o644))

    def has_chunk_dir(self, key: str) -> bool:
        return os.path.isdir(self._chunk_dir(key))

    def put_chunk(self, key: str, index: int, src: BinaryIO) -> int:
        """Store a chunk in a chunk file of its own, durably and atomically, replacing an
        earlier copy; returns its size. (Chunks are written in place where they can be:
        see put_chunk_at.)"""
        dest = self._chunk_path(key, index)
        with _disk_errors(), _gone_if_missing():
            self._unsynced_bytes_follow(key)
            if isinstance(src, SpoolFile) and os.path.dirname(src.path) == self.temp_dir:
                self._sync_chunk(src.fileno())
                size = os.fstat(src.fileno()).st_size
                os.rename(src.path, dest)  # same filesystem: atomic and zero-copy
                src.claimed = True
            else:
                size = self._write_atomically(src, dest)
            if self.sync_chunks:
                self._sync_dir(os.path.dirname(dest))
        return size

    def delete_chunks(self, key: str) -> None:
        """Remove the upload's chunk directory and everything in it."""
        shutil.rmtree(self._chunk_dir(key), ignore_errors=True)

    @contextmanager
    def lock(self, key: str, exclusive: bool, timeout: float) -> Iterator[None]:
        """Hold the upload's lock: shared for chunk writes, exclusive for merge and delete.

        flock locks die with their process, so a killed worker never leaves one behind.
        """
        try:
            fd = os.open(os.path.join(self._chunk_dir(key), ".lock"), os.O_RDWR)
        except FileNotFoundError:
            raise UploadGone(key) from None
        try:
            mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockBusy(key) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)

    # -- finished files -----------------------------------------------------------------

    def discard(self, merged: Merged) -> None:
        _unlink_quietly(merged.path)

    def place(self, merged: Merged, stored_name: str, replace: bool = False) -> None:
        """Move a merged file to uploads/<stored_name>, never over another file unless
        ``replace`` (the name is already reserved for this very upload)."""
        dest = self._upload_path(stored_name)
        with _disk_errors():
            try:
                os.link(merged.path, dest)  # fails if dest exists: atomic "create, no replace"
                os.unlink(merged.path)
            except FileExistsError:
                if not replace:
                    raise NameTaken(stored_name) from None
                os.replace(merged.path, dest)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                    raise
                self._reserve_then_replace(merged.path, dest, replace)
            self._sync_dir(self.uploads_dir)

    def snapshot(self, stored_name: str) -> Merged:
        """A temp copy of uploads/<stored_name>, ready to be placed under another name:
        a hard link where the filesystem allows, otherwise a real copy."""
        source = self._upload_path(stored_name)
        path = os.path.join(self.temp_dir, f"link-{os.urandom(8).hex()}.part")
        with _disk_errors(), _gone_if_missing():
            try:
                os.link(source, path)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
                    raise
                with open(source, "rb") as src:
                    path = self._write_temp(src, self.temp_dir)
        return Merged(path=path, size=os.stat(path).st_size, md5="")

    def has_file(self, stored_name: str) -> bool:
        return os.path.isfile(self._upload_path(stored_name))

    def file_path(self, stored_name: str) -> str:
        return self._upload_path(stored_name)

    def delete_file(self, stored_name: str) -> None:
        _unlink_quietly(self._upload_path(stored_name))

    # -- data files: a tus upload's bytes, one file appended at its recorded offset -----

    def write_at(self, key: str, offset: int, src: BinaryIO, limit: int,
                 digests: Iterable = ()) -> Written:
        """Write up to limit bytes of src into the upload's data file from offset, feeding
        them to digests; fsync'd before returning.

        The file is cut back to offset first: bytes past the recorded offset belong to a
        write that was never recorded. A failing read (the client went away) ends the write
        and keeps what arrived, so that the upload resumes from there.
        """
        buffer = bytearray(self.buffer_size)
        view = memoryview(buffer)
        written, overflow, interrupted = 0, False, False
        with _disk_errors(), _gone_if_missing():
            if not self._begun_this_boot(key, DATA_BOOT):  # none, or another boot's
                # The recorded offset was lowered to 0 (data_size), and the file is cut
                # back to it below.
                if self.sync_chunks:
                    _unlink_quietly(os.path.join(self._chunk_dir(key), DATA_BOOT))
                else:
                    self._mark_boot(key, DATA_BOOT)  # bytes follow that are not fsync'd
            fd = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT, 0o644)
            with open(fd, "r+b", buffering=0) as out:
                if os.fstat(fd).st_size != offset:  # (a truncate to the same size still
                    out.truncate(offset)             # costs the filesystem a transaction)
                out.seek(offset)
                while True:
                    want = min(len(buffer), limit - written) or 1  # 1: probe for excess
                    try:
                        n = src.readinto(view[:want])
                    except Exception:  # noqa: BLE001 - any failure to read ends the body
                        interrupted = True
                        break
                    if not n:
                        break
                    if written == limit:
                        overflow = True
                        break
                    for digest in digests:
                        digest.update(view[:n])
                    _write_all(out, view[:n])
                    written += n
                self._sync_chunk(out.fileno())
        return Written(written, overflow, interrupted)

    def data_size(self, key: str) -> int:
        """Bytes in the upload's data file that can be trusted (0 if there is none).

        None of a file written without fsync before the machine last restarted can be: it
        may hold zeros anywhere (see BootMarks). The next write_at, under the upload's lock,
        cuts it back and sets the mark right; nothing is changed here, where no lock is held.
        """
        try:
            size = os.stat(self._data_path(key)).st_size
        except FileNotFoundError:
            return 0
        return 0 if self.written_before_restart(key) else size

    def truncate(self, key: str, size: int) -> None:
        """Cut the upload's data file back to size bytes (a refused write)."""
        with _disk_errors(), _gone_if_missing():
            os.truncate(self._data_path(key), size)

    def seal(self, key: str, size: int, md5: str | None = None,
             saved: bytes | None = None) -> Merged:
        """Hash the finished data file and link it into temp/, ready to be placed; the data
        file itself stays until the upload is recorded as completed.

        With md5 given (computed as the bytes were written) nothing is hashed; with the MD5
        state of a prefix saved as the bytes arrived, only the rest is.
        """
        digest = hashlib.md5()
        path = os.path.join(self.temp_dir, f"seal-{os.urandom(8).hex()}.part")
        with _disk_errors(), _gone_if_missing():
            fd = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT, 0o644)
            with open(fd, "r+b", buffering=0) as data:
                data.truncate(size)
                if md5 is None and saved is not None:
                    md5 = Md5State(self.hash_data(key, saved, size)).hexdigest()
                elif md5 is None:
                    self._hash_into(data, digest, None)
                self._sync(data.fileno())
            try:
                os.link(self._data_path(key), path)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                    raise
                with open(self._data_path(key), "rb") as src:
                    path = self._write_temp(src, self.temp_dir)
        return Merged(path=path, size=size, md5=md5 or digest.hexdigest())

    def concatenate(self, keys: list[str]) -> Merged:
        """Join the data files of keys, in order, into a temp file, hashing in the same pass."""
        digest = hashlib.md5()
        size = 0
        fd, path = tempfile.mkstemp(dir=self.temp_dir, prefix="concat-", suffix=".part")
        try:
            with _disk_errors(), _gone_if_missing(), open(fd, "wb", buffering=0) as out:
                for key in keys:
                    with open(self._data_path(key), "rb", buffering=0) as src:
                        size += self._hash_into(src, digest, out)
                self._sync(out.fileno())
        except BaseException:
            _unlink_quietly(path)
            raise
        return Merged(path=path, size=size, md5=digest.hexdigest())

    # -- housekeeping -------------------------------------------------------------------

    def chunk_dir_keys(self) -> Iterator[tuple[str, float]]:
        """(key, mtime) of every chunk directory."""
        with os.scandir(self.chunks_dir) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and _KEY.fullmatch(entry.name):
                    yield entry.name, entry.stat(follow_symlinks=False).st_mtime

    def temp_files(self) -> Iterator[tuple[str, float]]:
        """(path, mtime) of spooled parts, merges in progress and chunk temp files."""
        directories = [self.temp_dir] + [
            self._chunk_dir(key) for key, _ in self.chunk_dir_keys()
        ]
        for directory in directories:
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.name.endswith(".part") and entry.is_file(follow_symlinks=False):
                            yield entry.path, entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue

    def remove_temp_file(self, path: str) -> None:
        if os.path.dirname(os.path.dirname(path)) in (self.root, self.chunks_dir):
            _unlink_quietly(path)

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    # -- internals ----------------------------------------------------------------------

    def _chunk_dir(self, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError("invalid upload key")
        return os.path.join(self.chunks_dir, key)

    def _chunk_path(self, key: str, index: int) -> str:
        return os.path.join(self._chunk_dir(key), str(int(index)))

    def _data_path(self, key: str) -> str:
        return os.path.join(self._chunk_dir(key), "data")

    def _hash_into(self, src: io.FileIO, digest, out: io.FileIO | None) -> int:
        """Read src to its end with one buffer, hashing and optionally copying to out."""
        buffer = bytearray(self.buffer_size)
        view = memoryview(buffer)
        size = 0
        while n := src.readinto(buffer):
            digest.update(view[:n])
            if out is not None:
                _write_all(out, view[:n])
            size += n
        return size

    def _upload_path(self, stored_name: str) -> str:
        if stored_name in ("", ".", "..") or "/" in stored_name or "\0" in stored_name:
            raise ValueError("invalid stored name")
        return os.path.join(self.uploads_dir, stored_name)

    @contextmanager
    def _disk_errors_and_gone(self) -> Iterator[None]:
        with _disk_errors(), _gone_if_missing():
            yield

    def _write_atomically(self, src: BinaryIO, dest: str) -> int:
        path = self._write_temp(src, os.path.dirname(dest), chunk=True)
        size = os.stat(path).st_size
        os.rename(path, dest)
        return size

    def _write_temp(self, src: BinaryIO, directory: str, chunk: bool = False) -> str:
        fd, path = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
        try:
            with open(fd, "wb") as out:
                shutil.copyfileobj(src, out, self.buffer_size)
                out.flush()
                (self._sync_chunk if chunk else self._sync)(out.fileno())
        except BaseException:
            _unlink_quietly(path)
            raise
        return path

    def _reserve_then_replace(self, path: str, dest: str, replace: bool) -> None:
        # No hard links here: claim the name with an exclusive create, then rename over it.
        try:
            os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            if not replace:
                raise NameTaken(os.path.basename(dest)) from None
        os.replace(path, dest)

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


def _write_all(out: io.FileIO, data: memoryview) -> None:
    while data:
        written = out.write(data)
        data = data[written:]


@contextmanager
def _disk_errors() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(str(exc)) from exc
        raise


@contextmanager
def _gone_if_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as exc:
        raise UploadGone(str(exc)) from exc


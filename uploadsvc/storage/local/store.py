"""LocalStore: the storage interface on one local data directory (see layout.py).

A tus upload's bytes are the data file of its chunk directory, appended at the recorded
offset; an /api upload's chunks are written into the same data file (chunkfiles.py). Sealing
hard-links the data file into temp/, and publishing links that into uploads/: a finished
upload is never copied.
"""
import errno
import hashlib
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..base import UPLOAD_KEY, Download, Sealed, Store, Written
from ..beside import BESIDE_MIN, Ring
from ..boot import BOOT_ID
from ..capabilities import Concatenation, FileServer
from ..errors import FileGone, NameTaken
from ..files import disk_errors, gone_if_missing, linked_or_copied, unlink_quietly
from ..locking import FileLocker
from ..md5state import Md5State
from ..spool import SpoolFile
from .chunkfiles import CLAIMS, LocalChunkFiles, receive
from .layout import BUFFER_SIZE
from .restarts import DATA_BOOT

# The most of a data file mapped at once while hashing it: bounds what a worker's RSS counts.
HASH_WINDOW = 2 * 1024 * 1024


class LocalStore(LocalChunkFiles, Store, Concatenation, FileServer):
    """Uploads' bytes and finished files under one data directory (and, run on its own, its
    FileLocker's locks)."""

    def __init__(self, root: str, fsync: bool | str = True, buffer_size: int = BUFFER_SIZE,
                 boot_id: str | None = BOOT_ID) -> None:
        super().__init__(root, fsync, buffer_size, boot_id)
        self.locker = FileLocker(self.locks_dir)

    # -- an upload's bytes ------------------------------------------------------------

    def create(self, key: str) -> None:
        directory = self._chunk_dir(key)
        with disk_errors():
            os.makedirs(directory, exist_ok=True)
            os.close(os.open(os.path.join(directory, CLAIMS), os.O_CREAT | os.O_RDWR, 0o644))

    def delete(self, key: str) -> None:
        shutil.rmtree(self._chunk_dir(key), ignore_errors=True)
        self.locker.forget(key)

    def write(self, key: str, offset: int, src: BinaryIO, limit: int,
              digests: Iterable = ()) -> Written:
        # The file is cut back to offset first: bytes past the recorded offset belong to a
        # write that was never recorded.
        with disk_errors(), gone_if_missing():
            if not self._begun_this_boot(key):  # none, or another boot's
                # The recorded offset was lowered to 0 (size()), and the file is cut back
                # to it below.
                if self.sync_chunks:
                    unlink_quietly(os.path.join(self._chunk_dir(key), DATA_BOOT))
                else:
                    self._mark_boot(key)  # bytes follow that are not fsync'd
            fd = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT, 0o644)
            with open(fd, "r+b", buffering=0) as out, Ring(
                    digests, self.buffer_size, beside=limit >= BESIDE_MIN) as ring:
                if os.fstat(fd).st_size != offset:  # (a truncate to the same size still
                    out.truncate(offset)             # costs the filesystem a transaction)
                written = receive(src, limit, ring, fd, offset)
                self._sync_chunk(out.fileno())
        return written

    def size(self, key: str) -> int:
        # None of a file written without fsync before the machine last restarted can be
        # trusted: it may hold zeros anywhere. The next write(), under the upload's lock,
        # cuts it back and sets the mark right; nothing is changed here.
        try:
            size = os.stat(self._data_path(key)).st_size
        except FileNotFoundError:
            return 0
        return 0 if self.lost_in_restart(key) else size

    def truncate(self, key: str, size: int) -> None:
        with disk_errors(), gone_if_missing():
            fd = self._open_data(key, os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)

    def hash_prefix(self, key: str, saved: bytes | None, end: int) -> bytes:
        # Hashed where the bytes lie in the page cache (mmap), then sent on their way.
        state = Md5State(saved)
        with disk_errors(), gone_if_missing(), open(self._open_data(key, os.O_RDONLY), "rb",
                                                    buffering=0) as data:
            if os.fstat(data.fileno()).st_size < end:
                raise ValueError("fewer bytes are stored than the hash is asked to reach")
            position = state.length
            if position > end:
                raise ValueError("the saved MD5 state is past the end")
            while position < end:
                start = position - position % mmap.ALLOCATIONGRANULARITY
                length = min(end, start + HASH_WINDOW) - start
                with mmap.mmap(data.fileno(), length, access=mmap.ACCESS_COPY,
                               offset=start) as window:
                    state.update(memoryview(window)[position - start:])
                if self.fsync:  # start writing back now, so sealing has little to wait for
                    os.posix_fadvise(data.fileno(), position, start + length - position,
                                     os.POSIX_FADV_DONTNEED)
                position = start + length
        return state.save()

    def seal(self, key: str, size: int, md5: str | None = None,
             saved: bytes | None = None) -> Sealed:
        digest = hashlib.md5()
        path = os.path.join(self.temp_dir, f"seal-{os.urandom(8).hex()}.part")
        with disk_errors(), gone_if_missing():
            fd = os.open(self._data_path(key), os.O_RDWR | os.O_CREAT, 0o644)
            with open(fd, "r+b", buffering=0) as data:
                data.truncate(size)
                if md5 is None and saved is not None:
                    md5 = Md5State(self.hash_prefix(key, saved, size)).hexdigest()
                elif md5 is None:
                    self._hash_into(data, digest)
                self._sync(data.fileno())
            path = linked_or_copied(self._data_path(key), path, self._copy_to_temp)
        return Sealed(ref=path, size=size, md5=md5 or digest.hexdigest())

    def concatenate(self, keys: list[str]) -> Sealed:
        digest = hashlib.md5()
        size = 0
        fd, path = tempfile.mkstemp(dir=self.temp_dir, prefix="concat-", suffix=".part")
        try:
            with disk_errors(), gone_if_missing(), open(fd, "wb", buffering=0) as out:
                for key in keys:
                    with open(self._open_data(key, os.O_RDONLY), "rb", buffering=0) as src:
                        size += self._hash_into(src, digest, out)
                self._sync(out.fileno())
        except BaseException:
            unlink_quietly(path)
            raise
        return Sealed(ref=path, size=size, md5=digest.hexdigest())

    # -- finished files ---------------------------------------------------------------

    def publish(self, sealed: Sealed, name: str, replace: bool = False) -> None:
        dest = self._upload_path(name)
        with disk_errors():
            try:
                os.link(sealed.ref, dest)  # fails if dest exists: atomic "create, no replace"
                os.unlink(sealed.ref)
            except FileExistsError:
                if not replace:
                    raise NameTaken(name) from None
                os.replace(sealed.ref, dest)
                # A rename between two links of one file does nothing (POSIX): a retry of a
                # publish that crashed after linking leaves its sealed link behind otherwise.
                unlink_quietly(sealed.ref)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                    raise
                self._reserve_then_replace(sealed.ref, dest, replace)
            self._sync_dir(self.uploads_dir)

    def discard(self, sealed: Sealed) -> None:
        unlink_quietly(sealed.ref)

    def copy(self, name: str) -> Sealed:
        # A hard link where the filesystem allows, otherwise a real copy.
        source = self._upload_path(name)
        path = os.path.join(self.temp_dir, f"link-{os.urandom(8).hex()}.part")
        try:
            with disk_errors():
                path = linked_or_copied(source, path, self._copy_to_temp)
        except FileNotFoundError:
            raise FileGone(name) from None
        return Sealed(ref=path, size=os.stat(path).st_size, md5="")

    def has_file(self, name: str) -> bool:
        return os.path.isfile(self._upload_path(name))

    def open_file(self, name: str) -> BinaryIO:
        try:
            return open(self._upload_path(name), "rb")
        except FileNotFoundError:
            raise FileGone(name) from None

    def delete_file(self, name: str) -> None:
        unlink_quietly(self._upload_path(name))

    def serve(self, name: str) -> Download:
        path = self._upload_path(name)
        try:
            return Download(size=os.stat(path).st_size, path=path)
        except FileNotFoundError:
            raise FileGone(name) from None

    # -- request bodies and housekeeping -----------------------------------------------

    def spool(self, limit: int | None = None) -> SpoolFile:
        return SpoolFile(self.temp_dir, limit)

    def upload_keys(self) -> Iterator[tuple[str, float]]:
        # Chunk directories, and lock files (a FileLocker's) left by a request that raced a removal.
        seen = set()
        with os.scandir(self.chunks_dir) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and UPLOAD_KEY.fullmatch(entry.name):
                    seen.add(entry.name)
                    yield entry.name, entry.stat(follow_symlinks=False).st_mtime
        for name, mtime in list(self.locker.names()):
            key = name.partition(".")[0]
            if key not in seen:
                seen.add(key)
                yield key, mtime

    def location(self, key: str) -> str:
        return os.path.relpath(self._chunk_dir(key), self.root)

    def temp_files(self) -> Iterator[tuple[str, float]]:
        directories = [self.temp_dir] + [self._chunk_dir(key) for key, _ in self.upload_keys()]
        for directory in directories:
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.name.endswith(".part") and entry.is_file(follow_symlinks=False):
                            stat = entry.stat(follow_symlinks=False)
                            yield os.path.relpath(entry.path, self.root), stat.st_mtime
            except FileNotFoundError:
                continue

    def remove_temp_file(self, name: str) -> None:
        # Only where temp_files() looks: temp/ and the chunk directories (not uploads/).
        path = os.path.join(self.root, name)
        directory = os.path.dirname(path)
        if name.endswith(".part") and os.path.normpath(path) == path and (
                directory == self.temp_dir or os.path.dirname(directory) == self.chunks_dir):
            unlink_quietly(path)

    def _open_data(self, key: str, flags: int) -> int:
        """The upload's data file, made empty if nothing was written yet (FileNotFoundError
        only when the upload itself is gone)."""
        return os.open(self._data_path(key), flags | os.O_CREAT, 0o644)

    def _reserve_then_replace(self, path: str, dest: str, replace: bool) -> None:
        # No hard links here: claim the name with an exclusive create, then rename over it.
        try:
            os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            if not replace:
                raise NameTaken(os.path.basename(dest)) from None
        os.replace(path, dest)

"""FileLocker: named locks as flock on files, for every worker process of one host.

It is what a store uses on its own; the app gives its stores the database's leases instead
(uploadsvc.services.leases), which hold across hosts.

flock locks die with their process, so a killed worker never leaves one behind. A lock file
is made on first use; removing it (``forget``) is safe at any time: a waiter that gets the
lock of a file removed meanwhile sees that the name now means another file and starts over.
"""
import errno
import fcntl
import os
import re
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from .base import PURPOSES, UPLOAD_KEY, Locker
from .errors import LockBusy

# The file whose bytes are an upload's chunk claims: "<key>.claims".
CLAIMS = "claims"
_NAME = re.compile(rf"{UPLOAD_KEY.pattern}(\.({'|'.join((*PURPOSES, CLAIMS))}))?")
POLL = 0.02


class FileLocker(Locker):
    """Locks under one directory, one file per name."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @contextmanager
    def hold(self, name: str, exclusive: bool = True, timeout: float = 0.0,
             chunk: int | None = None) -> Iterator[None]:
        path = self._path(name)
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                self._acquire(fd, mode, deadline, name)
                if _same_file(fd, path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed while we waited: lock the file the name means now
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def claim(self, key: str, index: int) -> Iterator[bool]:
        """An open-file-description lock on byte `index` of ``<key>.claims``."""
        fd = os.open(self._path(f"{key}.{CLAIMS}"), os.O_CREAT | os.O_RDWR, 0o644)
        with claimed_byte(fd, index) as held:
            yield held

    def forget(self, key: str) -> None:
        """Remove the lock files of an upload that is finished or gone."""
        for name in (key, *(f"{key}.{purpose}" for purpose in (*PURPOSES, CLAIMS))):
            with suppress(FileNotFoundError):
                os.unlink(self._path(name))

    def names(self) -> Iterator[tuple[str, float]]:
        """(name, mtime) of every lock file."""
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if _NAME.fullmatch(entry.name):
                    yield entry.name, entry.stat(follow_symlinks=False).st_mtime

    @staticmethod
    def _acquire(fd: int, mode: int, deadline: float, name: str) -> None:
        while True:
            try:
                fcntl.flock(fd, mode)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(name) from None
                time.sleep(POLL)

    def _path(self, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("invalid lock name")
        return os.path.join(self.directory, name)


def _same_file(fd: int, path: str) -> bool:
    try:
        held, named = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


@contextmanager
def claimed_byte(fd: int, index: int) -> Iterator[bool]:
    """Try to hold byte `index` of the open file fd, without waiting; yields whether, and
    closes fd after (which drops the lock). An open-file-description lock excludes other
    threads as well as other processes, and the kernel drops it with the file."""
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
        os.close(fd)


def _flock(kind: int, index: int) -> bytes:
    """A struct flock for one byte at `index` (l_pid must be 0 for OFD locks)."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, index, 1, 0)

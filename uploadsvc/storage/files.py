"""Small file operations the local backend builds on."""
import errno
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO

from .errors import StorageFull, UploadGone

COPY_STEP = 1 << 20


def fill(src: BinaryIO, view: memoryview) -> tuple[int, bool, bool]:
    """Read into all of view unless the body ends first: (bytes read, whether it ended,
    whether reading it failed). Whole buffers make fewer, larger steps for the hasher."""
    filled = 0
    while filled < len(view):
        try:
            n = src.readinto(view[filled:])
        except Exception:  # noqa: BLE001 - any failure to read ends the body
            return filled, True, True
        if not n:
            return filled, True, False
        filled += n
    return filled, False, False


def unlink_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def write_all(out: io.FileIO, data: memoryview) -> None:
    while data:
        written = out.write(data)
        data = data[written:]


def copy_range(src: int, out: int, size: int, offset: int) -> None:
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
            data = os.pread(src, min(size - done, COPY_STEP), done)
            if not data:
                raise ValueError("chunk shorter than recorded")
            n = os.pwrite(out, data, offset + done)
        done += n


@contextmanager
def disk_errors() -> Iterator[None]:
    """A full disk or quota is StorageFull."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(str(exc)) from exc
        raise


@contextmanager
def gone_if_missing() -> Iterator[None]:
    """A missing upload directory or data file is UploadGone."""
    try:
        yield
    except FileNotFoundError as exc:
        raise UploadGone(str(exc)) from exc


def linked_or_copied(source: str, path: str, copy) -> str:
    """Hard-link source at path where the filesystem allows, else copy(source) (a path)."""
    try:
        os.link(source, path)
        return path
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
            raise
    return copy(source)

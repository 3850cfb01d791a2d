"""Request parts spooled into the data directory, so that a write can take them over.

A spooled part has no name (O_TMPFILE): its bytes belong to the open file alone, so they go
when the process that receives them does, even by SIGKILL, and a crash leaves nothing in
temp/. A write that takes a part over gives it its name at that moment (link_as).
"""
import errno
import functools
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
O_TMPFILE = getattr(os, "O_TMPFILE", 0)  # Linux only
# What open(O_TMPFILE) says where the filesystem (or an old kernel) makes no nameless files.
NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


class SpoolFile(io.FileIO):
    """A request part spooled into a temp directory, with no name there until a write takes
    it over (link_as); one never taken over is gone on close, or with its process.

    linkable=False says no write will take the part over: it then never has a name, even
    where the filesystem cannot make nameless files."""

    def __init__(self, directory: str, limit: int | None = None, linkable: bool = True) -> None:
        self.directory = directory
        fd, self.path = _open(directory, linkable)  # a name only where one is needed
        super().__init__(fd, "r+b")
        self.linkable = linkable
        self.claimed = False
        self.limit = limit

    def write(self, data) -> int:
        # Stop at the limit while the part streams in, not after it is all on disk.
        if self.limit is not None and self.tell() + len(data) > self.limit:
            self.close()  # the parser that owns us gives up without closing: remove it now
            raise PartTooLarge(f"part larger than {self.limit} bytes")
        return super().write(data)

    def link_as(self, dest: str) -> None:
        """Give the part the name dest (on the temp directory's filesystem), replacing a
        file there as a rename does, and keep it past close. The caller fsyncs."""
        if not self.linkable:
            raise ValueError("this spooled part cannot be taken over")
        if self.path is not None:
            os.rename(self.path, dest)
        else:
            _link_fd(self.fileno(), dest)
        self.claimed = True

    def close(self) -> None:
        try:
            super().close()
        finally:
            if not self.claimed and self.path is not None:
                unlink_quietly(self.path)
            self.claimed = True


def anonymous_file(directory: str) -> int:
    """A file with no name in directory, open to read and write: for bytes on their way
    that no one takes over."""
    return _open(directory, linkable=False)[0]


def _open(directory: str, linkable: bool) -> tuple[int, str | None]:
    """A new file in directory and its name: none unless the part may be taken over where
    the filesystem cannot make nameless files."""
    if O_TMPFILE and (not linkable or _fds_linkable()):
        try:
            return os.open(directory, O_TMPFILE | os.O_RDWR, 0o600), None
        except OSError as exc:
            if exc.errno not in NO_TMPFILE:
                raise
    fd, path = tempfile.mkstemp(dir=directory, prefix="spool-", suffix=".part")
    if linkable:
        # Only a file made nameless (O_TMPFILE) can be given a name again: one that a write
        # may take over keeps its name, and after a crash cleanup removes it (temp_files).
        return fd, path
    try:
        os.unlink(path)  # never taken over: it needs no name, and a crash leaves none behind
    except BaseException:
        os.close(fd)
        unlink_quietly(path)
        raise
    return fd, None


@functools.cache
def _fds_linkable() -> bool:
    """Whether a nameless file can be given a name here: through /proc's link to its fd."""
    return os.path.isdir("/proc/self/fd")


def _link_fd(fd: int, dest: str) -> None:
    """Name the nameless file open at fd dest, replacing a file there."""
    directory, name = os.path.split(dest)
    source = f"/proc/self/fd/{fd}"
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            # With a dir_fd, os.link is linkat(AT_SYMLINK_FOLLOW), which links the file
            # /proc's entry points to, as any user may; plain link() would link the symlink.
            os.link(source, name, dst_dir_fd=dir_fd, follow_symlinks=True)
        except FileExistsError:
            # A link never replaces a name: link beside it, then rename over it, as atomic
            # as the rename of a named part. A crash between the two leaves a .part file in
            # dest's directory, where cleanup looks (temp_files).
            temp = f".{os.urandom(8).hex()}.part"
            os.link(source, temp, dst_dir_fd=dir_fd, follow_symlinks=True)
            try:
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                unlink_quietly(os.path.join(directory, temp))
                raise
    finally:
        os.close(dir_fd)


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

"""What the object store backends share: one client per process, request bodies read in
small pieces, a body cut into local files of at most one part or block, local files hashed
where they lie, and an object read as a seekable file by ranged reads."""
import io
import mmap
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from .base import Written
from .errors import StorageError
from .files import write_all
from .spool import anonymous_file

# gunicorn's threads per worker when GUNICORN_THREADS is not set (gunicorn.conf.py sets it for
# its workers), and the threads beside them that reach the store (follow-ups, hashing).
DEFAULT_THREADS = 8
BACKGROUND_THREADS = 4
# The most of a local file mapped at once while it is hashed.
HASH_WINDOW = 1024 * 1024


def pool_size() -> int:
    """Connections a process keeps open to the store: one for each thread that may use
    the client at once (more would be opened and dropped at every request)."""
    threads = int(os.environ.get("GUNICORN_THREADS") or DEFAULT_THREADS)
    return max(threads + BACKGROUND_THREADS, 10)  # botocore's own default is 10


class ProcessClient:
    """The client of whichever process calls: made there on its first call (in a gunicorn
    worker, after the fork: a client made before would share its connections with every
    worker), then shared by every thread of that process."""

    def __init__(self, make: Callable[[], object]) -> None:
        self._make = make
        self._client: object = None
        self._pid = 0

    def __call__(self):
        if self._pid != os.getpid():
            with _making:
                if self._pid != os.getpid():
                    self._client, self._pid = self._make(), os.getpid()
        return self._client


# Held while a client is made; new in a child process, where a copy taken while another
# thread held it would stay held.
_making = threading.Lock()


def _new_lock() -> None:
    global _making
    _making = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)


class SmallReads(io.RawIOBase):
    """A local file sent as a request body, read in pieces of at most `most` bytes whatever
    the client asks for: botocore hashes a body it signs in reads of 1 MiB, each held in
    memory by every thread that sends one."""

    def __init__(self, file: io.IOBase, most: int) -> None:
        self.file, self.most = file, most

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.file.read()
        return self.file.read(min(size, self.most))

    def readinto(self, buffer) -> int:
        return self.file.readinto(memoryview(buffer)[:self.most])


class Body:
    """Reads src up to limit in buffers, feeding digests; tells overflow and interruption."""

    def __init__(self, src: BinaryIO, limit: int, digests: Iterable, buffer_size: int) -> None:
        self.src, self.left, self.digests = src, limit, list(digests)
        self.buffer = memoryview(bytearray(buffer_size))
        self.size = 0
        self.ended = self.overflow = self.interrupted = False

    def fill(self, out, most: int) -> int:
        """Copy at most `most` bytes of the body to out; how many."""
        copied = 0
        while copied < most and not self.ended:
            if self.left == 0:
                self._probe()
                break
            view = self.buffer[:min(len(self.buffer), self.left, most - copied)]
            try:
                n = self.src.readinto(view) if hasattr(self.src, "readinto") else \
                    _read_into(self.src, view)
            except Exception:  # noqa: BLE001 - any failure to read ends the body
                self.ended = self.interrupted = True
                break
            if not n:
                self.ended = True
                break
            for digest in self.digests:
                digest.update(view[:n])
            write_all(out, view[:n])
            copied += n
            self.left -= n
            self.size += n
        return copied

    def pieces(self, temp_dir: str, most: int) -> Iterator[tuple[BinaryIO, int]]:
        """The body as local files of at most `most` bytes each, (file at its start, size),
        each with no name, closed when the next is asked for; none if the body is empty."""
        while not self.ended:
            with open(anonymous_file(temp_dir), "w+b", buffering=0) as piece:
                n = self.fill(piece, most)
                if n:
                    piece.seek(0)
                    yield piece, n

    def _probe(self) -> None:
        """At the limit: whether the body holds more (then it is refused)."""
        try:
            self.overflow = bool(self.src.read(1))
        except Exception:  # noqa: BLE001
            self.interrupted = True
        self.ended = True

    def written(self) -> Written:
        return Written(self.size, self.overflow, self.interrupted)


def _read_into(src, view: memoryview) -> int:
    data = src.read(len(view))
    view[:len(data)] = data
    return len(data)


def feed(digests: list, fd: int, size: int) -> None:
    """Hash a local file's first size bytes where they lie in the page cache."""
    if not digests:
        return
    for offset in range(0, size, HASH_WINDOW):
        with mmap.mmap(fd, min(HASH_WINDOW, size - offset), access=mmap.ACCESS_READ,
                       offset=offset) as window:
            for digest in digests:
                digest.update(window)


class RangeReader(io.RawIOBase):
    """An object read as a seekable file: one streamed ranged read from the position on
    (open_range(start, end) gives it, a file-like with read()), opened again after a seek;
    never more than one buffer in memory."""

    def __init__(self, open_range: Callable[[int, int], BinaryIO], size: int) -> None:
        self.open_range, self.size = open_range, size
        self.position = 0
        self._body = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        target = max(0, base + offset)
        if target != self.position:
            self._drop()
            self.position = target
        return self.position

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.size - self.position)
        if want <= 0:
            return 0
        if self._body is None:
            self._body = self.open_range(self.position, self.size)
        data = self._body.read(want)
        if not data:
            raise StorageError("object store: a file ended before its size")
        memoryview(buffer)[:len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self._drop()
        super().close()

    def _drop(self) -> None:
        if self._body is not None:
            close = getattr(self._body, "close", None)
            if close:
                close()
            self._body = None


class Chained(io.RawIOBase):
    """Buffers from an iterator of iterators of bytes, read as one stream."""

    def __init__(self, sources: Iterable[Iterable[bytes]]) -> None:
        self.buffers = (data for source in sources for data in source)
        self.left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.left:
            self.left = next(self.buffers, None)
            if self.left is None:
                self.left = b""
                return 0
        n = min(len(buffer), len(self.left))
        memoryview(buffer)[:n] = self.left[:n]
        self.left = self.left[n:]
        return n

"""The store's incremental assembly: an upload's file built and hashed as its chunks arrive.

chunks/<key>/.assembly holds chunks 0..n-1 back to back and the caller keeps the MD5 state
of exactly those bytes, so completing an upload sent in order needs neither a re-read nor
a re-hash. The chunk files stay the truth; the assembly is a cache that the single-pass merge
can always replace.
"""
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .md5state import Md5State

ASSEMBLY = ".assembly"
HASH_LOCK = ".hashlock"


class AssemblyMixin:
    """ChunkStore's assembly methods (the byte work; the service decides when)."""

    @contextmanager
    def hash_lock(self, key: str, wait: float = 0.0) -> Iterator[bool]:
        """Hold the upload's hash lock, waiting at most `wait` seconds; yields whether we got it.

        Whoever holds it folds every chunk that is ready, so a busy lock can be skipped.
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

    def fold(self, key: str, saved: bytes | None, chunks: list[tuple[int, int]]) -> bytes:
        """Append chunks [(index, size)] to the assembly and hash them; the new MD5 state.

        Bytes go at the offset the state has hashed so far, so a fold that was interrupted
        or lost a race is simply overwritten by the next one.
        """
        state = Md5State(saved)
        buffer = bytearray(self.buffer_size)
        view = memoryview(buffer)
        offset = state.length
        path = os.path.join(self._chunk_dir(key), ASSEMBLY)
        with self._disk_errors_and_gone():
            out = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for index, size in chunks:
                    start = offset
                    with open(self._chunk_path(key, index), "rb", buffering=0) as src:
                        if os.fstat(src.fileno()).st_size != size:
                            raise ValueError(f"chunk {index} is not the recorded size")
                        while n := src.readinto(buffer):
                            state.update(view[:n])
                            written = 0
                            while written < n:
                                written += os.pwrite(out, view[written:n], offset + written)
                            offset += n
                    if self.fsync:  # start writing back now, so completion has little to wait for
                        os.posix_fadvise(out, start, offset - start, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(out)
        return state.save()

    def assembled(self, key: str, saved: bytes) -> tuple[str, int, str] | None:
        """(path, size, md5) of a durable assembly of everything the state hashed, or None
        if the file is missing or short (then the caller merges from the chunks)."""
        state = Md5State(saved)
        path = os.path.join(self._chunk_dir(key), ASSEMBLY)
        with self._disk_errors_and_gone():
            try:
                fd = os.open(path, os.O_WRONLY)
            except FileNotFoundError:
                return None
            try:
                if os.fstat(fd).st_size < state.length:
                    return None
                os.ftruncate(fd, state.length)  # drop bytes of a fold that lost a race
                self._sync(fd)
            finally:
                os.close(fd)
        return path, state.length, state.hexdigest()

"""The store's incremental assembly: an upload's file built and hashed as its chunks arrive.

chunks/<key>/.assembly holds chunks 0..n-1 back to back and the caller keeps the MD5 state
of exactly those bytes, so completing an upload sent in order needs neither a re-read nor
a re-hash. The chunk files stay the truth; the assembly is a cache that the single-pass merge
can always replace.
"""
import errno
import fcntl
import mmap
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from .md5state import Md5State

ASSEMBLY = ".assembly"
# The boot of the machine an assembly was begun in: see _begun_this_boot.
ASSEMBLY_BOOT = ".assembly-boot"
# Copies into assemblies, beside the hashing thread (the kernel does the copying).
_COPIER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="assembly-copy")
HASH_LOCK = ".hashlock"
# The most of a data file mapped at once while hashing it: bounds what a worker's RSS counts.
_HASH_WINDOW = 2 * 1024 * 1024


class BootMarks:
    """Which boot of the machine wrote bytes that were not fsync'd as they were written.

    Folds append to an assembly without fsync (it is fsync'd when the upload completes), and
    under FSYNC "complete" so do tus PATCHes to their data file. Pages are written back in
    no particular order, so after a machine crash such a file may hold zeros where the page
    cache was lost, even at its full size. A mark holding the kernel's boot id tells: one
    from another boot means the file is not to be trusted. Where the boot id cannot be read
    (not Linux), files are trusted as before.
    """

    def _mark_boot(self, key: str, name: str) -> None:
        """Mark the file as written in this boot; the mark is on the disk before the bytes
        it speaks for are written (once per file and boot, so its fsyncs cost little)."""
        if BOOT_ID is not None:
            with open(os.path.join(self._chunk_dir(key), name), "w") as mark:
                mark.write(BOOT_ID)
                mark.flush()
                self._sync(mark.fileno())
            self._sync_dir(self._chunk_dir(key))

    def _begun_this_boot(self, key: str, name: str) -> bool:
        if BOOT_ID is None:
            return True
        try:
            with open(os.path.join(self._chunk_dir(key), name)) as mark:
                return mark.read() == BOOT_ID
        except FileNotFoundError:
            return False


def _read_boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


BOOT_ID = _read_boot_id()


class AssemblyMixin(BootMarks):
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
        or lost a race is simply overwritten by the next one. The kernel copies them
        (copy_file_range) on a second thread while this one hashes them where they lie in
        the page cache (mmap): no byte passes through a Python buffer, and a fold takes
        about as long as the MD5 alone (what completing an upload sent out of order waits
        for).
        """
        state = Md5State(saved)
        path = os.path.join(self._chunk_dir(key), ASSEMBLY)
        with self._disk_errors_and_gone():
            if not state.length:
                self._mark_boot(key, ASSEMBLY_BOOT)
            elif not self._begun_this_boot(key, ASSEMBLY_BOOT):
                raise ValueError("the assembly was begun before the machine restarted")
            sources = [open(self._chunk_path(key, index), "rb", buffering=0)  # noqa: SIM115
                       for index, _ in chunks]
            try:
                for (index, size), src in zip(chunks, sources, strict=True):
                    if os.fstat(src.fileno()).st_size != size:
                        raise ValueError(f"chunk {index} is not the recorded size")
                out = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    copy = _COPIER.submit(self._copy_all, sources, chunks, out, state.length)
                    try:
                        for (_, size), src in zip(chunks, sources, strict=True):
                            if size:
                                with mmap.mmap(src.fileno(), size,
                                               access=mmap.ACCESS_COPY) as data:
                                    state.update(data)  # a private mapping: not copied
                    finally:
                        copy.result()
                finally:
                    os.close(out)
            finally:
                for src in sources:
                    src.close()
        return state.save()

    def _copy_all(self, sources: list, chunks: list[tuple[int, int]], out: int,
                  offset: int) -> None:
        for (_, size), src in zip(chunks, sources, strict=True):
            _copy_range(src.fileno(), out, size, offset)
            if self.fsync:  # start writing back now, so completion has little to wait for
                os.posix_fadvise(out, offset, size, os.POSIX_FADV_DONTNEED)
            offset += size

    def hash_data(self, key: str, saved: bytes | None, end: int) -> bytes:
        """Hash the upload's data file (tus) on from where the saved MD5 state stands, up to
        end; the new state. The bytes are hashed where they lie in the page cache (mmap),
        then sent on their way to the disk."""
        state = Md5State(saved)
        with self._disk_errors_and_gone(), open(self._data_path(key), "rb",
                                                buffering=0) as data:
            if os.fstat(data.fileno()).st_size < end:
                raise ValueError("the data file is shorter than its recorded offset")
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

    def assembled(self, key: str, saved: bytes) -> tuple[str, int, str] | None:
        """(path, size, md5) of a durable assembly of everything the state hashed, or None
        if the file is missing or short (then the caller merges from the chunks)."""
        state = Md5State(saved)
        path = os.path.join(self._chunk_dir(key), ASSEMBLY)
        if not self._begun_this_boot(key, ASSEMBLY_BOOT):
            return None
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
            data = os.pread(src, min(size - done, 1 << 20), done)
            if not data:
                raise ValueError("chunk shorter than recorded")
            n = os.pwrite(out, data, offset + done)
        done += n

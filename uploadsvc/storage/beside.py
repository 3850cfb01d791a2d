"""Digests updated on a thread of their own, beside the receive.

Hashing a body as it arrives, in the thread that reads and writes it, makes one stream cost
the sum of reading, hashing and writing. MD5 is the slowest of them and OpenSSL releases the
GIL while it works, so a thread that only hashes runs beside the thread that receives: the
stream then goes as fast as the slowest step alone. The buffers rotate through a small ring;
a buffer is refilled only once its bytes are hashed.
"""
import queue
import threading
from collections.abc import Iterable, Iterator

RING = 3
# Rings of buffers kept for the next bodies, process-wide (a fresh megabyte costs the kernel
# a page fault for every page on its first use, for every body), at most this many.
KEEP = 4
_spare: list[list[memoryview]] = []
_spare_lock = threading.Lock()
# Below this, a thread costs more than the overlap saves: hashed in the caller's thread.
BESIDE_MIN = 4 * 1024 * 1024


class Ring:
    """Buffers to read into, whose bytes `digests` hash on a thread beside the reader.

    Use: ``for view in ring.buffers(): n = read(view); ring.hash(view[:n]); write(view[:n])``
    and ``ring.close()`` (or ``with``) once done: it waits for the hashing to finish and
    re-raises what it raised.
    """

    def __init__(self, digests: Iterable, buffer_size: int, beside: bool = True) -> None:
        self.digests = list(digests)
        beside = beside and bool(self.digests)
        self._views = _take(RING if beside else 1, buffer_size)
        self._free = [threading.Event() for _ in self._views]
        for free in self._free:
            free.set()
        self._thread = None
        self._error: BaseException | None = None
        if beside:
            self._queue: queue.SimpleQueue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="hash-beside", daemon=True)
            self._thread.start()

    def buffers(self) -> Iterator[memoryview]:
        """The ring's buffers in turn, each once its last bytes are hashed (none once
        closed: they are handed on to the next body)."""
        while self._views:
            for slot, view in enumerate(self._views):
                self._free[slot].wait()
                self._raise()
                self._current = slot
                yield view

    def hash(self, data: memoryview) -> None:
        """Hash these bytes of the current buffer (before the buffer is handed out again)."""
        if not self.digests or not data.nbytes:
            return
        if self._thread is None:
            for digest in self.digests:
                digest.update(data)
            return
        self._free[self._current].clear()
        self._queue.put((self._current, data))

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._views:  # no byte of them is being hashed any more
            _give(self._views)
            self._views = []
        self._raise()

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # the caller failed: stop the thread, its result is not wanted
            try:
                self.close()
            except Exception:  # noqa: BLE001, S110 - the caller's error is the one to raise
                pass

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            slot, data = item
            try:
                if self._error is None:
                    for digest in self.digests:
                        digest.update(data)
            except BaseException as exc:  # noqa: BLE001 - handed to the reader
                self._error = exc
            finally:
                self._free[slot].set()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error



def _take(count: int, size: int) -> list[memoryview]:
    with _spare_lock:
        for i, views in enumerate(_spare):
            if len(views) == count and views[0].nbytes == size:
                return _spare.pop(i)
    return [memoryview(bytearray(size)) for _ in range(count)]


def _give(views: list[memoryview]) -> None:
    with _spare_lock:
        if len(_spare) < KEEP:
            _spare.append(views)

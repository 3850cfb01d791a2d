"""Starting the disk's writeback of bytes just written, so that the fsync that makes a
chunk durable has little left to wait for, and dirty pages never pile up.

A chunk or PATCH is acknowledged once its bytes are fsync'd; left to itself the kernel
writes them back only then, so the answer waits for the whole body to reach the disk after
it was received. sync_file_range(SYNC_FILE_RANGE_WRITE) (Linux; what PostgreSQL and RocksDB
use for the same reason) starts writing each buffer back as soon as it is written, beside
the receive, and keeps the pages cached (the prefix hash reads them next). It guarantees
nothing by itself: the fsync still follows. Without fsyncs (FSYNC complete or false) it
keeps dirty pages from piling up: the writer goes at the disk's pace, steadily (on the
machine of docs/performance.md a gigabyte written without it ran at anything from 410 to
4,800 MiB/s from one run to the next; with it at 1,900-2,000). Where the call is missing
this does nothing.
"""
import ctypes
import ctypes.util

SYNC_FILE_RANGE_WRITE = 2


def _load():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_sync_file_range = _load()
AVAILABLE = _sync_file_range is not None


def start(fd: int, offset: int, length: int) -> None:
    """Start writing back [offset, offset + length) of fd; errors are left to the fsync."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


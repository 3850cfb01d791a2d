"""Bench files: random bytes written (and fsync'd) at bench time, with the md5 of each
slice used."""
import hashlib
import os
from pathlib import Path

from .client import Slice

BLOCK = 16 * 1024 * 1024


def make_file(path: Path, size: int, slices: list[tuple[int, int]]) -> list[Slice]:
    """Write size random bytes to path; return the given (offset, size) slices with md5s."""
    hashes = [hashlib.md5() for _ in slices]
    written = 0
    with open(path, "wb", buffering=0) as out:
        while written < size:
            block = os.urandom(min(BLOCK, size - written))
            view = memoryview(block)
            for (offset, length), digest in zip(slices, hashes, strict=True):
                start = max(offset, written)
                end = min(offset + length, written + len(block))
                if start < end:
                    digest.update(view[start - written:end - written])
            while view:
                view = view[out.write(view):]
            written += len(block)
        # On the disk before anything is measured: writing back gigabytes of bench files
        # would otherwise compete with the first workloads for the disk.
        os.fsync(out.fileno())
    return [Slice(str(path), offset, length, digest.hexdigest())
            for (offset, length), digest in zip(slices, hashes, strict=True)]

"""The GCS backend's chunks: each chunk one object, in place or aside (as on S3).

A chunk written in place is the segment at its offset (index × chunk size); one written
aside is ``aside/<index>``, copied to its offset (a compose of the one object) when the
upload completes. Completion then composes the segments, 32 at a time, with no copy of their
bytes through the app. Claims are the store's locker's (the database's leases in the app).

Neither a claim nor a write asks whether the upload still exists: the service finds its row
gone when it records the chunk and removes the upload's objects again, and cleanup removes
what no upload owns. A chunk in place is then one upload, and one delete more (of a copy
aside from an earlier try, which the database does not know of).
"""
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ..capabilities import ChunkFiles
from ..objects import Body, feed
from ..spool import SpoolFile, anonymous_file
from .compose import Composer
from .layout import Piece


class GCSChunkFiles(Composer, ChunkFiles):
    """ChunkFiles in a bucket."""

    @contextmanager
    def claim(self, key: str, index: int) -> Iterator[bool]:
        self._upload_prefix(key)  # (a key the server made, or ValueError)
        with self.locker.claim(key, index) as held:
            yield held

    def write_chunk(self, key: str, index: int, src: BinaryIO, offset: int | None,
                    digests: Iterable = ()) -> int:
        dest = self._aside_name(key, index) if offset is None else \
            self._segment_name(key, offset)
        if isinstance(src, SpoolFile) and not src.closed:
            size = os.fstat(src.fileno()).st_size
            # Hashed where the bytes lie in the page cache, then sent in one upload: the
            # client may read a body more than once (to retry), which a digest must not see.
            feed(list(digests), src.fileno(), size)
            src.seek(0)
            self._put(dest, src, size)
        else:
            body = Body(src, 2 ** 62, digests, self.buffer_size)
            with open(anonymous_file(self.temp_dir), "w+b", buffering=0) as local:
                size = body.fill(local, 2 ** 62)
                local.seek(0)
                self._put(dest, local, size)
        if offset is not None:  # the bytes in place are the chunk now
            self._delete_all([self._aside_name(key, index)])
        return size

    def stored_sizes(self, key: str, chunks: dict[int, int],
                     chunk_size: int | None) -> dict[int, int]:
        listed, exists = self._scan(key)
        if not exists:
            return {}
        asides = self._asides(key)
        segments = {segment.offset: segment.size for segment in listed}
        found = {}
        for index, size in chunks.items():
            if index in asides:
                found[index] = asides[index].size
            elif segments.get(index * (chunk_size or 0), -1) >= size:
                found[index] = size
        return found

    def chunks_aside(self, key: str, indices: Iterable[int]) -> list[int]:
        asides = self._asides(key)
        return sorted(i for i in indices if i in asides)

    def place_chunks(self, key: str, chunk_size: int | None) -> list[int]:
        self._must_exist(key)
        asides = self._asides(key)
        for index, blob in sorted(asides.items()):
            self._join([Piece(blob.name, 0, blob.size, blob.size)],
                       self._segment_name(key, index * (chunk_size or 0)))
        return sorted(asides)

    def drop_chunks(self, key: str, indices: list[int]) -> None:
        self._delete_all([self._aside_name(key, index) for index in indices])

    def clear(self, key: str) -> None:
        self._must_exist(key)
        names = [s.name for s in self._scan(key)[0]] + [
            self._aside_name(key, index) for index in self._asides(key)]
        self._delete_all(names)

"""The object store backend's chunks: each chunk one object, in place or aside.

A chunk written in place is the segment at its offset (index × chunk size); one written
aside is ``aside/<index>``, copied to its offset by the store (CopyObject) when the upload
completes. Completion then joins the segments (join.py): chunks of 5 MiB or more become
parts copied by the store, smaller ones are streamed into parts. Claims are the store's
locker's (the database's leases in the app, so one request on any host claims a chunk).

Neither a claim nor a write asks whether the upload still exists: the service finds its row
gone when it records the chunk and removes the upload's bytes again (delete() lists them),
and cleanup removes what no upload owns. A chunk in place is then one PutObject, and one
DeleteObjects more unless the caller knows that no copy aside of it exists.
"""
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ..capabilities import ChunkFiles
from ..spool import SpoolFile
from .body import put_body, put_file
from .client import s3_errors
from .layout import S3Layout


class S3ChunkFiles(S3Layout, ChunkFiles):
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
            size = put_file(self.joiner, dest, src, digests)
        else:
            size = put_body(self.joiner, dest, src, 2 ** 62, digests).size
            if size == 0:  # an empty chunk is an object too
                with s3_errors("storing a chunk"):
                    self.client.put_object(Bucket=self.bucket, Key=dest, Body=b"")
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
                found[index] = asides[index]["Size"]
            elif segments.get(index * (chunk_size or 0), -1) >= size:
                found[index] = size
        return found

    def chunks_aside(self, key: str, indices: Iterable[int]) -> list[int]:
        asides = self._asides(key)
        return sorted(i for i in indices if i in asides)

    def place_chunks(self, key: str, chunk_size: int | None) -> list[int]:
        self._must_exist(key)
        indices = sorted(self._asides(key))
        for index in indices:
            with s3_errors("putting a chunk in place"):
                self.client.copy_object(
                    Bucket=self.bucket, Key=self._segment_name(key, index * (chunk_size or 0)),
                    CopySource={"Bucket": self.bucket, "Key": self._aside_name(key, index)})
        return indices

    def drop_chunks(self, key: str, indices: list[int]) -> None:
        self._delete_all([self._aside_name(key, index) for index in indices])

    def clear(self, key: str) -> None:
        self._must_exist(key)
        names = [s.key for s in self._segments(key)] + [
            self._aside_name(key, index) for index in self._asides(key)]
        self._delete_all(names)


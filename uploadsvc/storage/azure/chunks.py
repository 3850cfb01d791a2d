"""The Azure backend's chunks: each chunk one staged block of its upload's blob.

A chunk written in place is the block ``p<offset>``, one aside ``a<index>`` (blocks.py);
either is one Put Block, and staging the same id again replaces the earlier copy. Nothing is
committed until completion: place_chunks commits the upload's blocks in order, chunks aside
standing in place, in one Put Block List, and only then can they be read back. Claims are
the store's locker's (the database's leases in the app).

Neither a claim nor a write asks whether the upload still exists: the service finds its row
gone when it records the chunk and removes the upload's blob again, and cleanup lists blobs
that hold only staged blocks too.
"""
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ..capabilities import ChunkFiles
from ..errors import StorageError
from ..objects import Body, feed
from ..spool import SpoolFile, anonymous_file
from .blocks import ASIDE, IN_PLACE, MAX_BLOCK, MAX_BLOCKS, block_id
from .layout import AzureLayout


class AzureChunkFiles(AzureLayout, ChunkFiles):
    """ChunkFiles in a container."""

    @contextmanager
    def claim(self, key: str, index: int) -> Iterator[bool]:
        self._upload_name(key)  # (a key the server made, or ValueError)
        with self.locker.claim(key, index) as held:
            yield held

    def write_chunk(self, key: str, index: int, src: BinaryIO, offset: int | None,
                    digests: Iterable = ()) -> int:
        name = self._upload_name(key)
        block = block_id(ASIDE, index) if offset is None else block_id(IN_PLACE, offset)
        if isinstance(src, SpoolFile) and not src.closed:
            size = os.fstat(src.fileno()).st_size
            if size > MAX_BLOCK:
                raise StorageError("object store: a chunk is larger than Azure's block")
            # Hashed where the bytes lie in the page cache, then sent in one request: the
            # SDK may read a body more than once (to retry), which a digest must not see.
            feed(list(digests), src.fileno(), size)
            src.seek(0)
            if size:  # an empty chunk needs no block (Azure takes none)
                self._stage(name, block, src, size)
            return size
        body = Body(src, MAX_BLOCK, digests, self.buffer_size)
        with open(anonymous_file(self.temp_dir), "w+b", buffering=0) as local:
            size = body.fill(local, MAX_BLOCK + 1)
            if body.overflow:
                raise StorageError("object store: a chunk is larger than Azure's block")
            local.seek(0)
            if size:
                self._stage(name, block, local, size)
        return size

    def stored_sizes(self, key: str, chunks: dict[int, int],
                     chunk_size: int | None) -> dict[int, int]:
        layout = self._layout(key)
        if layout is None:
            return {}
        found = {}
        for index, size in chunks.items():
            segment = layout.in_place.get(index * (chunk_size or 0))
            if size == 0:  # (an empty chunk has no block)
                found[index] = 0
            elif index in layout.aside:
                found[index] = layout.aside[index].size
            elif segment is not None and segment.size >= size:
                found[index] = size
        return found

    def chunks_aside(self, key: str, indices: Iterable[int]) -> list[int]:
        self._upload_name(key)
        layout = self._layout(key)
        return [] if layout is None else sorted(i for i in indices if i in layout.aside)

    def unplaced_chunks(self, key: str, indices: Iterable[int],
                        chunk_size: int | None) -> list[int]:
        # Staged blocks cannot be read back before they are committed (at completion).
        layout = self._layout(key)
        if layout is None:
            return sorted(indices)
        return sorted(i for i in indices if i in layout.aside or not getattr(
            layout.in_place.get(i * (chunk_size or 0)), "committed", False))

    def place_chunks(self, key: str, chunk_size: int | None) -> list[int]:
        self._must_exist(key)
        layout = self._existing(key)
        ids = [segment.id for segment in layout.walk(with_aside=chunk_size or 0)]
        if len(ids) > MAX_BLOCKS:
            raise StorageError(f"object store: an upload of more than {MAX_BLOCKS} chunks "
                               "cannot be one Azure blob")
        if ids != layout.committed_ids():
            self._commit(self._upload_name(key), ids, etag=layout.etag)
        return sorted(layout.aside)

    def drop_chunks(self, key: str, indices: list[int]) -> None:
        # Committed by place_chunks, a copy aside is the bytes in place: nothing else is
        # left of it (one never placed goes with the next commit, or with the blob).
        self._upload_name(key)

    def clear(self, key: str) -> None:
        self._must_exist(key)
        self._commit(self._upload_name(key), [])  # staged blocks go with it

"""The storage interface's optional capabilities: what a service asks a store for with
``isinstance(store, ChunkFiles)`` instead of knowing which backend it is (see base.py)."""
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

from .base import Download, Sealed, Written


class ChunkFiles(ABC):
    """Capability: the chunks of a chunked upload, stored at their index.

    A chunk is written in place in the upload's bytes when the one request that claims it
    knows its offset, or else aside, in a chunk file of its own, and put in place when the
    upload completes. Bytes in place that were hashed never change under the hash.
    """

    @abstractmethod
    def claim(self, key: str, index: int) -> AbstractContextManager[bool]:
        """Claim chunk `index` for a write in place, without waiting; yields whether."""

    @abstractmethod
    def write_chunk(self, key: str, index: int, src: BinaryIO, offset: int | None,
                    digests: Iterable = ()) -> int:
        """Store a chunk in place at offset (the caller claimed it), or aside with offset
        None, replacing an earlier copy, feeding its bytes in order to digests; durable
        unless told otherwise; its size."""

    @abstractmethod
    def stored_sizes(self, key: str, chunks: dict[int, int],
                     chunk_size: int | None) -> dict[int, int]:
        """Of these recorded chunks {index: size}, the sizes found stored; missing ones
        are left out."""

    @abstractmethod
    def chunks_aside(self, key: str, indices: Iterable[int]) -> list[int]:
        """Which of these chunks are stored aside (not yet in place)."""

    def unplaced_chunks(self, key: str, indices: Iterable[int],
                        chunk_size: int | None) -> list[int]:
        """Which of these chunks cannot be read back from where they stand until
        place_chunks: those stored aside, and on a store that reads only what completion
        committed (Azure's staged blocks), every chunk not committed yet."""
        return self.chunks_aside(key, indices)

    @abstractmethod
    def place_chunks(self, key: str, chunk_size: int | None) -> list[int]:
        """Put every chunk stored aside in place, durably; their indices, in order.
        The copies aside stay until drop_chunks."""

    @abstractmethod
    def drop_chunks(self, key: str, indices: list[int]) -> None:
        """Remove copies aside that place_chunks put in place."""

    @abstractmethod
    def clear(self, key: str) -> None:
        """Remove every chunk's bytes; the upload stays, empty."""


class StreamedChunks(ABC):
    """Capability: a chunk written in place while its request part arrives (no spool
    first), on a ChunkFiles store; without it, parts are spooled and stored whole.
    Bytes written at an unrecorded chunk's place harm nothing: nothing reads them until the
    chunk is recorded."""

    @abstractmethod
    def write_in_place(self, key: str, offset: int, src: BinaryIO, limit: int,
                       digests: Iterable = ()) -> Written:
        """Store up to `limit` bytes of src at offset (the caller claimed the chunk there),
        feeding them to digests, never past offset + limit; durable before it returns unless
        the store was told otherwise. A failing read keeps what arrived. A copy aside stays
        (drop_chunks once the chunk is recorded)."""

    @abstractmethod
    def md5_in_place(self, key: str, offset: int, size: int) -> str:
        """The hex MD5 of the size bytes in place at offset (a chunk just written there)."""

    @abstractmethod
    def copy_in_place(self, key: str, offset: int, size: int, out: BinaryIO) -> None:
        """Write the size bytes in place at offset to out (a chunk taken back, to spool)."""


class Concatenation(ABC):
    """Capability: several uploads' bytes joined into one finished file."""

    @abstractmethod
    def concatenate(self, keys: list[str]) -> Sealed:
        """The bytes of keys, in order, as one sealed file, hashed in the same pass."""


class FileListing(ABC):
    """Capability: listing the finished files, so that cleanup can remove those that no
    upload references (a store shared by hosts, where a crash may leave one behind)."""

    @abstractmethod
    def finished_files(self) -> Iterator[tuple[str, float]]:
        """(stored name, last change as a Unix time) of every finished file."""


class FileServer(ABC):
    """Capability: serving a finished file without the service reading it."""

    @abstractmethod
    def serve(self, name: str) -> Download:
        """How to serve the finished file under name (FileGone if there is none)."""


class Presigner(ABC):
    """Capability: a URL that lets a client fetch a finished file from the store itself."""

    @abstractmethod
    def presigned_url(self, name: str, seconds: int, content_type: str,
                      disposition: str) -> str:
        """A URL valid for seconds that GETs the finished file under name (Range included),
        answered with these Content-Type and Content-Disposition headers."""

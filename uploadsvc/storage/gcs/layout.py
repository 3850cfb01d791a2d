"""The GCS backend's names, listings, segments and requests on them.

Under the prefix of ``gs://BUCKET/PREFIX``, as on S3:

- ``chunks/<key>/created``: an empty object that says the upload exists;
- ``chunks/<key>/at/<offset>``: a *segment*, bytes of the upload from that offset (a tus
  PATCH, a block of a longer one, or a chunk written in place), 20 digits so that names
  sort by offset;
- ``chunks/<key>/aside/<index>``: a chunk stored aside, copied to its offset at completion;
- ``sealed/<key>.<random>``: an upload composed into one object, until published, and
  ``sealed/<random>.join``/``.cut``: objects a composition makes and removes;
- ``uploads/<stored name>``: finished files.

An upload's bytes are its segments read in order: each counts from its offset up to the
next segment's (a later offset wins), and the bytes end at the first gap. Every name is
built from a server-made key, a chunk index or a stored name.
"""
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from google.api_core import exceptions as api

from ..errors import UploadGone
from ..object_names import ORPHAN_AGE, ObjectNames
from .client import BucketURL, Client, gcs_errors

# Bytes read at once from a request body or a download: held once per thread moving bytes.
BUFFER_SIZE = 256 * 1024
# Segments a tus PATCH is cut into as it arrives: each is held once in a local file.
BLOCK_SIZE = 16 * 1024 * 1024
# GCS deletes up to 100 objects in one batch request.
BATCH = 100


@dataclass(frozen=True)
class Segment:
    name: str  # the object
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Piece:
    """Bytes [start, end) of an object of object_size bytes."""

    name: str
    start: int
    end: int
    object_size: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end == self.object_size


class GCSLayout(ObjectNames):
    """Names, listings and segments of one bucket prefix."""

    def __init__(self, client, url: BucketURL, data_dir: str, block_size: int = BLOCK_SIZE,
                 buffer_size: int = BUFFER_SIZE, orphan_age: float = ORPHAN_AGE) -> None:
        # client: a Client, or a callable (ProcessClient) that gives one.
        self.clients: Callable[[], Client] = client if callable(client) else (lambda: client)
        self.url = url
        self.bucket, self.prefix = url.bucket, url.prefix
        self.root = os.path.abspath(data_dir)
        self.temp_dir = os.path.join(self.root, "temp")
        self.locks_dir = os.path.join(self.root, "locks")
        os.makedirs(self.temp_dir, exist_ok=True)
        self.block_size, self.buffer_size = block_size, buffer_size
        self.orphan_age = float(orphan_age)

    @property
    def client(self) -> Client:
        """This process's client."""
        return self.clients()

    # -- names ----------------------------------------------------------------------------

    def _scratch_name(self, key: str | None, kind: str = "") -> str:
        return f"{self.prefix}sealed/{key or 'copy'}.{uuid.uuid4().hex}{kind}"

    def _file_name(self, stored_name: str) -> str:
        if stored_name in ("", ".", "..") or "/" in stored_name or "\0" in stored_name:
            raise ValueError("invalid stored name")
        return f"{self.prefix}uploads/{stored_name}"

    # -- requests -------------------------------------------------------------------------

    def _list(self, prefix: str, start: str | None = None,
              delimiter: str | None = None) -> Iterator:
        """Every object under prefix (from the name start on), or with a delimiter the
        prefixes below it as strings."""
        with gcs_errors("listing objects"):
            pages = self.client.client.list_blobs(
                self.bucket, prefix=prefix, start_offset=start, delimiter=delimiter,
                **self.client.options)
            for blob in pages:
                if start is None or blob.name >= start:  # (some emulators ignore it)
                    yield blob
            yield from sorted(pages.prefixes) if delimiter else ()

    def _head(self, name: str):
        with gcs_errors("looking up an object"):
            return self.client.bucket.get_blob(name, **self.client.options)

    def _exists(self, key: str) -> bool:
        return self._head(self._marker(key)) is not None

    def _must_exist(self, key: str) -> None:
        if not self._exists(key):
            raise UploadGone(key)

    def _put(self, name: str, src: BinaryIO, size: int, exclusive: bool = False) -> None:
        """Store a local file's size bytes (from its position) as the object name; with
        exclusive only if no object has that name (ifGenerationMatch=0, else NameTaken)."""
        self.client.put(name, src, size, exclusive)

    def _delete_all(self, names: list[str]) -> None:
        """Remove these objects (gone already is what was asked), a batch at a time."""
        for first in range(0, len(names), BATCH):
            batch = names[first:first + BATCH]
            with gcs_errors("removing objects"):
                if len(batch) == 1:
                    try:
                        self.client.blob(batch[0]).delete(**self.client.options)
                    except api.NotFound:
                        pass
                    continue
                with self.client.client.batch(raise_exception=False):
                    for name in batch:
                        self.client.blob(name).delete()

    def _read(self, pieces: list[Piece]) -> Iterator[bytes]:
        """The pieces' bytes in order, one streamed ranged GET each, in buffers."""
        for piece in pieces:
            if not piece.size:
                continue
            stream = self.client.open_range(piece.name, piece.start, piece.end)
            try:
                left = piece.size
                while left > 0:
                    data = stream.read(min(self.buffer_size, left))
                    if not data:
                        raise UploadGone("an object is shorter than listed")
                    left -= len(data)
                    yield data
            finally:
                stream.close()

    # -- segments -------------------------------------------------------------------------

    def _scan(self, key: str, since: int = 0) -> tuple[list[Segment], bool]:
        """The upload's segments (at offset `since` and after), and whether it exists, in
        one listing: segment names sort after ``aside/`` and before the marker."""
        prefix = self._upload_prefix(key)
        found, exists = [], False
        for blob in self._list(prefix, start=self._segment_name(key, since)):
            name = blob.name[len(prefix):]
            if name.startswith("at/"):
                found.append(Segment(blob.name, int(name[len("at/"):]), blob.size))
            elif blob.name == self._marker(key):
                exists = True
        return sorted(found, key=lambda segment: segment.offset), exists

    def _scan_existing(self, key: str, since: int = 0) -> list[Segment]:
        segments, exists = self._scan(key, since)
        if not exists:
            raise UploadGone(key)
        return segments

    def _asides(self, key: str) -> dict[int, object]:
        prefix = f"{self._upload_prefix(key)}aside/"
        return {int(blob.name[len(prefix):]): blob for blob in self._list(prefix)}

    @staticmethod
    def _pieces(segments: list[Segment], end: int | None = None,
                start: int = 0) -> list[Piece]:
        """The upload's bytes [start, end) as pieces of its segments (to the first gap)."""
        pieces, position = [], start
        for i, segment in enumerate(segments):
            stop = segment.end
            if i + 1 < len(segments):
                stop = min(stop, segments[i + 1].offset)
            if end is not None:
                stop = min(stop, end)
            if segment.offset > position:
                break
            if stop > position:
                pieces.append(Piece(segment.name, position - segment.offset,
                                    stop - segment.offset, segment.size))
                position = stop
        return pieces

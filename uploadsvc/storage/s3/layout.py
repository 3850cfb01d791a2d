"""The object store backend's names, listings and segments.

Under the prefix of ``s3://BUCKET/PREFIX``:

- ``chunks/<key>/created``: an empty object that says the upload exists;
- ``chunks/<key>/at/<offset>``: a *segment*, bytes of the upload from that offset (a tus
  PATCH, or a chunk written in place), 20 digits so that names sort by offset;
- ``chunks/<key>/aside/<index>``: a chunk stored aside, put in place at completion;
- ``sealed/<key>.<random>``: an upload's bytes joined into one object, until published;
- ``uploads/<stored name>``: finished files.

An upload's bytes are its segments read in order: each counts from its offset up to the
next segment's (a later offset wins), and the bytes end at the first gap. Local files (the
data directory's ``temp/``) hold only spooled request parts and a part on its way, both
without a name, so that they go with the process that made them.
Every name is built from a server-made key, a chunk index or a stored name.
"""
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import StorageError, UploadGone
from ..object_names import ORPHAN_AGE, ObjectNames
from .client import MISSING_CODES, BucketURL, ProcessClient, is_missing, s3_errors
from .join import Joiner, Piece

# Bytes read at once from a request body or a GET: held once per thread moving bytes.
BUFFER_SIZE = 256 * 1024
# Parts streamed (PATCH bodies, small chunks joined at completion): bigger parts, fewer
# requests; each is held once in a local file while it is sent.
PART_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Segment:
    key: str  # the object
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


class S3Layout(ObjectNames):
    """Names, listings and segments of one bucket prefix."""

    def __init__(self, client, url: BucketURL, data_dir: str, part_size: int = PART_SIZE,
                 buffer_size: int = BUFFER_SIZE, max_parts: int | None = None,
                 equal_parts: bool = False, orphan_age: float = ORPHAN_AGE) -> None:
        # client: a client, or a ProcessClient that gives each process its own.
        self.clients = client if isinstance(client, ProcessClient) else lambda: client
        self.url = url
        self.bucket, self.prefix = url.bucket, url.prefix
        self.root = os.path.abspath(data_dir)
        self.temp_dir = os.path.join(self.root, "temp")
        self.locks_dir = os.path.join(self.root, "locks")
        os.makedirs(self.temp_dir, exist_ok=True)
        self.buffer_size = buffer_size
        self.orphan_age = float(orphan_age)
        extra = {"max_parts": max_parts} if max_parts else {}
        self.joiner = Joiner(self.clients, self.bucket, f"{self.prefix}sealed/", self.temp_dir,
                             part_size, buffer_size, equal_parts=equal_parts, **extra)

    @property
    def client(self):
        """This process's client."""
        return self.clients()

    # -- names ----------------------------------------------------------------------------

    def _sealed_name(self, key: str | None) -> str:
        return f"{self.prefix}sealed/{key or 'copy'}.{uuid.uuid4().hex}"

    def _file_name(self, stored_name: str) -> str:
        if stored_name in ("", ".", "..") or "/" in stored_name or "\0" in stored_name:
            raise ValueError("invalid stored name")
        return f"{self.prefix}uploads/{stored_name}"

    # -- listings -------------------------------------------------------------------------

    def _list(self, prefix: str, delimiter: str | None = None,
              start_after: str | None = None) -> Iterator[dict]:
        """Every object (and with a delimiter, every common prefix as {"Prefix": ...}), or
        those whose names sort after start_after."""
        extra = {"Delimiter": delimiter} if delimiter else {}
        if start_after:
            extra["StartAfter"] = start_after
        with s3_errors("listing objects"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, **extra)
            for page in pages:
                yield from page.get("Contents", [])
                yield from page.get("CommonPrefixes", [])

    def _multipart_uploads(self, prefix: str) -> Iterator[dict]:
        with s3_errors("listing multipart uploads"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                yield from page.get("Uploads", [])

    def _head(self, name: str) -> dict | None:
        with s3_errors("looking up an object"):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=name)
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise

    def _exists(self, key: str) -> bool:
        return self._head(self._marker(key)) is not None

    def _must_exist(self, key: str) -> None:
        if not self._exists(key):
            raise UploadGone(key)

    def _delete_all(self, names: list[str]) -> None:
        for first in range(0, len(names), 1000):
            batch = [{"Key": name} for name in names[first:first + 1000]]
            with s3_errors("removing objects"):
                answer = self.client.delete_objects(Bucket=self.bucket,
                                                    Delete={"Objects": batch, "Quiet": True})
            # Gone already (another host's cleanup, a DELETE) is what was asked.
            failed = [e for e in answer.get("Errors", []) if e.get("Code") not in MISSING_CODES]
            if failed:
                raise StorageError(f"object store refused removing {failed[0].get('Key')}: "
                                   f"{failed[0].get('Code')}")

    # -- segments -------------------------------------------------------------------------

    def _segments(self, key: str, since: int = 0) -> list[Segment]:
        """The upload's segments, or (since > 0) those at offset `since` and after."""
        return self._scan(key, since)[0]

    def _scan(self, key: str, since: int = 0) -> tuple[list[Segment], bool]:
        """The upload's segments (at offset `since` and after), and whether it exists, in one
        listing: segment names sort as their offsets (zero-padded; "-000...1" before them
        all), after ``aside/`` and before the marker ``created``."""
        prefix = self._upload_prefix(key)
        after = self._segment_name(key, since - 1)
        found, exists = [], False
        for item in self._list(prefix, start_after=after):
            name = item["Key"][len(prefix):]
            if name.startswith("at/"):
                found.append(Segment(item["Key"], int(name[len("at/"):]), item["Size"]))
            elif item["Key"] == self._marker(key):
                exists = True
        return sorted(found, key=lambda segment: segment.offset), exists

    def _scan_existing(self, key: str, since: int = 0) -> list[Segment]:
        """_scan's segments; UploadGone if the upload does not exist."""
        segments, exists = self._scan(key, since)
        if not exists:
            raise UploadGone(key)
        return segments

    def _asides(self, key: str) -> dict[int, dict]:
        prefix = f"{self._upload_prefix(key)}aside/"
        return {int(item["Key"][len(prefix):]): item for item in self._list(prefix)}

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
                pieces.append(Piece(segment.key, position - segment.offset,
                                    stop - segment.offset))
                position = stop
        return pieces

    def _stored(self, key: str) -> int:
        return sum(piece.size for piece in self._pieces(self._segments(key)))

    def _cut(self, key: str, size: int, segments: list[Segment] | None = None) -> None:
        """Drop the upload's bytes from size on: later segments go, one that crosses size
        is stored again, shorter (segments: all of them, if listed already)."""
        segments = self._segments(key) if segments is None else segments
        self._delete_all([s.key for s in segments if s.offset >= size])
        for segment in segments:
            if segment.offset < size < segment.end:
                self.joiner.join([Piece(segment.key, 0, size - segment.offset)], segment.key)

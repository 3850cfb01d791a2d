"""GCSStore: the storage interface on a bucket of Google Cloud Storage.

An upload's bytes are segment objects (layout.py); a tus PATCH is one segment (a segment per
16 MiB of a longer body), stored only if no object took its name meanwhile
(ifGenerationMatch=0, GCS's If-None-Match: *). Sealing composes the segments into one
object under ``sealed/`` (compose.py: 32 sources per request, composes of composes beyond),
hashing them with ranged GETs only past a saved MD5 state; publishing composes that object
into ``uploads/<name>`` with ifGenerationMatch=0, so a name is never taken twice. Nothing
about an upload is kept in this process.

A finished file is served as a stream of ranged GETs (FileServer with no path), or fetched by
the client itself at a V4 signed URL (Presigner, with a service account's key), and the
finished files can be listed (FileListing) for cleanup. Locks and chunk claims are the
locker's: the app gives the store the database's leases, which hold across hosts.
"""
import hashlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..base import Download, Sealed, Store, Written
from ..capabilities import Concatenation, FileListing, FileServer, Presigner
from ..errors import FileGone, LeaseLost, NameTaken, StorageError
from ..locking import FileLocker
from ..md5state import Md5State
from ..objects import Body, RangeReader
from ..spool import SpoolFile, anonymous_file
from .chunks import GCSChunkFiles
from .client import BucketURL, gcs_errors
from .layout import Piece, Segment

SEALED = "sealed/"


class GCSStore(GCSChunkFiles, Store, Concatenation, FileServer, FileListing, Presigner):
    """Uploads' bytes and finished files in one bucket prefix."""

    shared = True  # every host of the service reaches the bucket
    durable = True  # an object is stored whole once its upload is answered, or not at all

    def __init__(self, client, url: BucketURL | str, data_dir: str, **options) -> None:
        url = BucketURL.parse(url) if isinstance(url, str) else url
        super().__init__(client, url, data_dir, **options)
        self.locker = FileLocker(self.locks_dir)

    # -- an upload's bytes ------------------------------------------------------------

    def create(self, key: str) -> None:
        # Made again if it is there: one request, never a lookup first.
        with open(anonymous_file(self.temp_dir), "w+b", buffering=0) as empty:
            self._put(self._marker(key), empty, 0)

    def delete(self, key: str) -> None:
        # Idempotent, as several hosts' cleanups may remove one upload at once.
        names = [blob.name for prefix in (self._upload_prefix(key),
                                          f"{self.prefix}{SEALED}{key}.")
                 for blob in self._list(prefix)]
        self._delete_all(names)
        self.locker.forget(key)

    def write(self, key: str, offset: int, src: BinaryIO, limit: int,
              digests: Iterable = ()) -> Written:
        # One listing from the offset on: whether the upload exists, and segments from the
        # offset on, whose bytes were never recorded: they go. Each block of the body is
        # stored only if no object took its name meanwhile: a write whose lease lapsed while
        # its body arrived, and whose offset another write has filled since, never replaces
        # those bytes.
        later = self._scan_existing(key, since=offset)
        self._delete_all([segment.name for segment in later if segment.offset >= offset])
        body, position = Body(src, limit, digests, self.buffer_size), offset
        try:
            for piece, size in body.pieces(self.temp_dir, self.block_size):
                self._put(self._segment_name(key, position), piece, size, exclusive=True)
                position += size
        except NameTaken:
            raise LeaseLost(f"bytes were stored at offset {position} meanwhile") from None
        if not body.size:
            self._cut(key, offset)
        return body.written()

    def size(self, key: str) -> int:
        return sum(piece.size for piece in self._pieces(self._scan(key)[0]))

    def truncate(self, key: str, size: int) -> None:
        self._cut(key, size, self._scan_existing(key))

    def lost_in_restart(self, key: str) -> bool:
        self._upload_prefix(key)  # (a key the server made, or ValueError)
        return False  # the store keeps what it acknowledged

    def hash_prefix(self, key: str, saved: bytes | None, end: int) -> bytes:
        state = Md5State(saved)
        if state.length > end:
            raise ValueError("the saved MD5 state is past the end")
        # Only the segments from the hashed length on, when one starts there (an upload sent
        # in order): listing them all for every chunk would grow with the upload.
        start, segments = state.length, self._scan_existing(key, since=state.length)
        if not segments or segments[0].offset != start:
            start, segments = 0, self._scan(key)[0]
        pieces = self._pieces(segments, start=start)
        if start + sum(piece.size for piece in pieces) < end:
            raise ValueError("fewer bytes are stored than the hash is asked to reach")
        for data in self._read(_between(pieces, state.length, end, origin=start)):
            state.update(data)
        return state.save()

    def seal(self, key: str, size: int, md5: str | None = None,
             saved: bytes | None = None) -> Sealed:
        segments = self._scan_existing(key)
        stored = sum(piece.size for piece in self._pieces(segments))
        if stored < size:
            raise StorageError(f"upload {key} holds fewer bytes than {size}")
        if stored > size:  # the bytes past the length are no part of the file
            self._cut(key, size, segments)
            segments = self._scan(key)[0]
        pieces = self._pieces(segments, size)
        if md5 is None:
            state = Md5State(saved) if saved is not None else hashlib.md5()
            for data in self._read(_between(pieces, Md5State(saved).length if saved else 0,
                                            size)):
                state.update(data)
            md5 = state.hexdigest()
        name = self._scratch_name(key)
        self._join(pieces, name)
        return Sealed(ref=name, size=size, md5=md5)

    def concatenate(self, keys: list[str]) -> Sealed:
        pieces: list[Piece] = []
        for key in [self._upload_prefix(key) and key for key in keys]:
            pieces += self._pieces(self._scan_existing(key))
        md5 = hashlib.md5()
        for data in self._read(pieces):
            md5.update(data)
        name = self._scratch_name(None)
        self._join(pieces, name)
        return Sealed(ref=name, size=sum(piece.size for piece in pieces), md5=md5.hexdigest())

    # -- finished files ---------------------------------------------------------------

    def publish(self, sealed: Sealed, name: str, replace: bool = False) -> None:
        dest = self._file_name(name)
        # ifGenerationMatch=0 decides a race; the lookup first answers an emulator too.
        if not replace and self._head(dest) is not None:
            raise NameTaken(dest)
        self._join([Piece(sealed.ref, 0, sealed.size, sealed.size)], dest,
                   exclusive=not replace)
        self.discard(sealed)

    def discard(self, sealed: Sealed) -> None:
        self._delete_all([sealed.ref])

    def copy(self, name: str) -> Sealed:
        found = self._head(self._file_name(name))
        if found is None:
            raise FileGone(name)
        sealed = self._scratch_name(None)
        self._join([Piece(found.name, 0, found.size, found.size)], sealed)
        return Sealed(ref=sealed, size=found.size, md5="")

    def has_file(self, name: str) -> bool:
        return self._head(self._file_name(name)) is not None

    def open_file(self, name: str) -> BinaryIO:
        return self.serve(name).open()

    def serve(self, name: str) -> Download:
        blob = self._file_name(name)
        found = self._head(blob)
        if found is None:
            raise FileGone(name)
        client = self.client
        return Download(size=found.size, etag=(found.etag or found.md5_hash or "").strip('"'),
                        modified=found.updated.timestamp(),
                        open=lambda: RangeReader(
                            lambda start, end: client.open_range(blob, start, end),
                            found.size))

    def presigned_url(self, name: str, seconds: int, content_type: str,
                      disposition: str) -> str:
        # Signed here with the service account's key, with no request.
        blob = self._file_name(name)
        with gcs_errors("presigning a download"):
            try:
                return self.client.signed_url(blob, seconds, content_type, disposition)
            except (AttributeError, TypeError, ValueError, OSError) as exc:
                raise StorageError("presigned downloads on GCS need a service account's "
                                   f"key (GOOGLE_APPLICATION_CREDENTIALS): {exc}") from None

    def delete_file(self, name: str) -> None:
        self._delete_all([self._file_name(name)])

    def finished_files(self) -> Iterator[tuple[str, float]]:
        start = len(f"{self.prefix}uploads/")
        for blob in self._list(f"{self.prefix}uploads/"):
            name = blob.name[start:]
            if name and "/" not in name:  # never one of ours otherwise
                yield name, blob.updated.timestamp()

    # -- request bodies and housekeeping -----------------------------------------------

    def spool(self, limit: int | None = None) -> SpoolFile:
        # Sent to the bucket, never taken over as a file: it need never have a name.
        return SpoolFile(self.temp_dir, limit, linkable=False)

    def upload_keys(self) -> Iterator[tuple[str, float]]:
        for prefix in self._list(f"{self.prefix}chunks/", delimiter="/"):
            if isinstance(prefix, str) and len(key := prefix.rstrip("/").rpartition("/")[2]) \
                    == 32:
                times = [blob.updated.timestamp() for blob in self._list(prefix)]
                if times:
                    yield key, max(times)

    def location(self, key: str) -> str:
        return f"gs://{self.bucket}/{self._upload_prefix(key)}"

    def temp_files(self) -> Iterator[tuple[str, float]]:
        for blob in self._list(self.prefix + SEALED):
            yield blob.name[len(self.prefix):], blob.updated.timestamp()

    def remove_temp_file(self, name: str) -> None:
        if name.startswith(SEALED) and name[len(SEALED):] and "/" not in name[len(SEALED):]:
            self._delete_all([self.prefix + name])

    def _cut(self, key: str, size: int, segments: list[Segment] | None = None) -> None:
        """Drop the upload's bytes from size on: later segments go, one that crosses size
        is stored again, shorter (segments: all of them, if listed already)."""
        segments = self._scan(key)[0] if segments is None else segments
        self._delete_all([s.name for s in segments if s.offset >= size])
        for segment in segments:
            if segment.offset < size < segment.end:
                self._join([Piece(segment.name, 0, size - segment.offset, segment.size)],
                           segment.name)


def _between(pieces: list[Piece], start: int, end: int, origin: int = 0) -> list[Piece]:
    """The pieces' bytes [start, end) of the whole they make, which begins at origin."""
    found, position = [], origin
    for piece in pieces:
        low, high = max(start, position), min(end, position + piece.size)
        if low < high:
            found.append(Piece(piece.name, piece.start + low - position,
                               piece.start + high - position, piece.object_size))
        position += piece.size
    return found

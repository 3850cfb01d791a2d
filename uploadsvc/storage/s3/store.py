"""S3Store: the storage interface on a bucket of an S3-compatible object store.

An upload's bytes are segment objects (layout.py); a tus PATCH is one segment, streamed
into parts as it arrives (body.py). Sealing hashes them, with ranged GETs past a saved MD5
state, and names the pieces to join; publishing joins them straight into ``uploads/<name>``
(join.py: UploadPartCopy for pieces of 5 MiB or more, streamed parts for the rest) with
``If-None-Match: *``, so a name is never taken twice and every byte is copied once.
Concatenation and a copy of a finished file are joined into an object under ``sealed/``
first. Nothing about an upload is kept in this process: every call starts from the
objects' names.

A finished file is served as a stream of ranged GETs (FileServer with no path), or fetched
by the client itself at a presigned URL (Presigner), and the finished files can be listed
(FileListing) for cleanup. Locks and chunk claims are the locker's: the app gives the store
the database's leases, which hold across hosts (a store on its own has this host's
FileLocker).
"""
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..base import Download, Sealed, Store, Written
from ..capabilities import Concatenation, FileListing, FileServer, Presigner
from ..errors import FileGone, LeaseLost, NameTaken, StorageError
from ..locking import FileLocker
from ..md5state import Md5State
from ..spool import SpoolFile
from .body import put_body
from .chunks import S3ChunkFiles
from .client import BucketURL, object_reader, s3_errors
from .join import Piece
from .temps import S3Temps


@dataclass(frozen=True)
class Joinable(Sealed):
    """An upload's bytes sealed where they lie: pieces of its segments, joined by publish."""

    pieces: tuple[Piece, ...] = ()


class S3Store(S3ChunkFiles, S3Temps, Store, Concatenation, FileServer, FileListing,
              Presigner):
    """Uploads' bytes and finished files in one bucket prefix."""

    shared = True  # every host of the service reaches the bucket
    durable = True  # an object is stored whole once its PUT is answered, or not at all

    def __init__(self, client, url: BucketURL | str, data_dir: str, **options) -> None:
        url = BucketURL.parse(url) if isinstance(url, str) else url
        super().__init__(client, url, data_dir, **options)
        self.locker = FileLocker(self.locks_dir)

    # -- an upload's bytes ------------------------------------------------------------

    def create(self, key: str) -> None:
        # Made again if it is there: one request, never a HeadObject first.
        with s3_errors("creating an upload"):
            self.client.put_object(Bucket=self.bucket, Key=self._marker(key), Body=b"")

    def delete(self, key: str) -> None:
        # Multipart uploads first: one finishing meanwhile leaves an object listed below.
        # Idempotent, as several hosts' cleanups may remove one upload at once.
        prefixes = (self._upload_prefix(key), f"{self.prefix}sealed/{key}.")
        for prefix in prefixes:
            for upload in self._multipart_uploads(prefix):
                self.joiner.abort(upload["Key"], upload["UploadId"])
        self._delete_all([item["Key"] for prefix in prefixes for item in self._list(prefix)])
        self.locker.forget(key)

    def write(self, key: str, offset: int, src: BinaryIO, limit: int,
              digests: Iterable = ()) -> Written:
        # One listing from the offset on: whether the upload exists, and segments from the
        # offset on, whose bytes were never recorded: they go. The new segment ends one that
        # crosses the offset (a later offset wins); if it holds nothing, the bytes from the
        # offset on are cut as truncate() cuts them. It is stored only if no object took
        # its name meanwhile: a write whose lease lapsed while its body arrived, and whose
        # offset another write has filled since, never replaces those bytes.
        later = self._scan_existing(key, since=offset)
        self._delete_all([segment.key for segment in later if segment.offset >= offset])
        try:
            written = put_body(self.joiner, self._segment_name(key, offset), src, limit,
                               digests, exclusive=True)
        except NameTaken:
            raise LeaseLost(f"bytes were stored at offset {offset} meanwhile") from None
        if not written.size:
            self._cut(key, offset)
        return written

    def size(self, key: str) -> int:
        return self._stored(key)

    def truncate(self, key: str, size: int) -> None:
        self._cut(key, size, self._scan_existing(key))

    def lost_in_restart(self, key: str) -> bool:
        self._upload_prefix(key)  # (a key the server made, or ValueError)
        return False  # the object store keeps what it acknowledged

    def hash_prefix(self, key: str, saved: bytes | None, end: int) -> bytes:
        state = Md5State(saved)
        if state.length > end:
            raise ValueError("the saved MD5 state is past the end")
        # Only the segments from the hashed length on, when one starts there (an upload sent
        # in order): listing them all for every chunk would grow with the upload.
        start, segments = state.length, self._scan_existing(key, since=state.length)
        if not segments or segments[0].offset != start:
            start, segments = 0, self._segments(key)
        pieces = self._pieces(segments, start=start)
        if start + sum(piece.size for piece in pieces) < end:
            raise ValueError("fewer bytes are stored than the hash is asked to reach")
        for data in self.joiner.read(_between(pieces, state.length, end, origin=start)):
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
            segments = self._segments(key)
        pieces = self._pieces(segments, size)
        if md5 is None and saved is not None:
            state = Md5State(saved)
            for data in self.joiner.read(_between(pieces, state.length, size)):
                state.update(data)
            md5 = state.hexdigest()
        elif md5 is None:
            md5 = self._md5(pieces)
        # Joined when published, straight into the finished file: a sealed object between
        # them would copy every byte twice. The caller holds the upload's lock meanwhile.
        return Joinable(ref=self.location(key), size=size, md5=md5, pieces=tuple(pieces))

    def concatenate(self, keys: list[str]) -> Sealed:
        pieces: list[Piece] = []
        for key in keys:
            pieces += self._pieces(self._scan_existing(key))
        md5 = self._md5(pieces)
        name = self._sealed_name(None)
        self.joiner.join(pieces, name)
        return Sealed(ref=name, size=sum(piece.size for piece in pieces), md5=md5)

    # -- finished files ---------------------------------------------------------------

    def publish(self, sealed: Sealed, name: str, replace: bool = False) -> None:
        dest = self._file_name(name)
        pieces = sealed.pieces if isinstance(sealed, Joinable) else \
            [Piece(sealed.ref, 0, sealed.size)]
        self.joiner.join(list(pieces), dest, exclusive=not replace)
        self.discard(sealed)

    def discard(self, sealed: Sealed) -> None:
        if not isinstance(sealed, Joinable):  # its pieces are the upload's, until delete()
            self._delete_all([sealed.ref])

    def copy(self, name: str) -> Sealed:
        head = self._head(self._file_name(name))
        if head is None:
            raise FileGone(name)
        size = head["ContentLength"]
        sealed = self._sealed_name(None)
        self.joiner.join([Piece(self._file_name(name), 0, size)], sealed)
        return Sealed(ref=sealed, size=size, md5="")

    def has_file(self, name: str) -> bool:
        return self._head(self._file_name(name)) is not None

    def open_file(self, name: str) -> BinaryIO:
        head = self._head(self._file_name(name))
        if head is None:
            raise FileGone(name)
        return object_reader(self.client, self.bucket, self._file_name(name),
                            head["ContentLength"])

    def serve(self, name: str) -> Download:
        key = self._file_name(name)
        head = self._head(key)
        if head is None:
            raise FileGone(name)
        size = head["ContentLength"]
        return Download(size=size, etag=head["ETag"].strip('"'),
                        modified=head["LastModified"].timestamp(),
                        open=lambda: object_reader(self.client, self.bucket, key, size))

    def presigned_url(self, name: str, seconds: int, content_type: str,
                      disposition: str) -> str:
        # Signed here, with no request: the client's GET goes to the store's endpoint.
        with s3_errors("presigning a download"):
            return self.client.generate_presigned_url("get_object", ExpiresIn=seconds, Params={
                "Bucket": self.bucket, "Key": self._file_name(name),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition})

    def delete_file(self, name: str) -> None:
        dest = self._file_name(name)
        for upload in self._multipart_uploads(dest):  # a publish that was killed
            if upload["Key"] == dest:
                self.joiner.abort(dest, upload["UploadId"])
        self._delete_all([dest])

    def finished_files(self) -> Iterator[tuple[str, float]]:
        start = len(f"{self.prefix}uploads/")
        for item in self._list(f"{self.prefix}uploads/"):
            name = item["Key"][start:]
            if name and "/" not in name:  # never one of ours otherwise
                yield name, item["LastModified"].timestamp()

    # -- request bodies and housekeeping -----------------------------------------------

    def spool(self, limit: int | None = None) -> SpoolFile:
        # Sent to the bucket, never taken over as a file: it need never have a name.
        return SpoolFile(self.temp_dir, limit, linkable=False)

    def upload_keys(self) -> Iterator[tuple[str, float]]:
        for item in self._list(f"{self.prefix}chunks/", delimiter="/"):
            key = item.get("Prefix", "").rstrip("/").rpartition("/")[2]
            if "Prefix" in item and len(key) == 32:
                times = [o["LastModified"].timestamp() for o in self._list(item["Prefix"])]
                if times:
                    yield key, max(times)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._upload_prefix(key)}"

    def _md5(self, pieces: list[Piece]) -> str:
        digest = hashlib.md5()
        for data in self.joiner.read(pieces):
            digest.update(data)
        return digest.hexdigest()


def _between(pieces: list[Piece], start: int, end: int, origin: int = 0) -> list[Piece]:
    """The pieces' bytes [start, end) of the whole they make, which begins at origin."""
    found, position = [], origin
    for piece in pieces:
        low, high = max(start, position), min(end, position + piece.size)
        if low < high:
            found.append(Piece(piece.key, piece.start + low - position,
                               piece.start + high - position))
        position += piece.size
    return found

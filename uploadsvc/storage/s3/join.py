"""Joining ranges of objects into one object, whatever their sizes.

S3 wants every part but the last to hold at least 5 MiB, at most 5 GiB each, and at most
10,000 parts (plan.py). A range of at least the minimum becomes a part copied by the
store itself (UploadPartCopy, several if it is longer than the maximum); smaller ranges are
streamed, through a local file of at most one part, into parts of ``part_size``. A range
that follows streamed bytes tops them up to the minimum first and is copied from there on.
With ``equal_parts`` (stores such as R2), every part but the last holds exactly
``part_size``: copied where one range covers it, streamed where it spans several.

When that makes more parts than allowed, runs of parts are joined into intermediate objects
first, and those joined (with equal parts, runs of as many parts as make the next round
fit, so that each intermediate object is one part of it). Part numbers and ETags live only
for the one call that makes them: every multipart upload is created, filled and completed
(or aborted) here, never rebuilt from ListParts.
"""
import math
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO

from botocore.exceptions import ClientError

from ..errors import NameTaken, StorageError
from ..spool import anonymous_file
from .client import SmallReads, error_code, s3_errors
from .plan import MAX_COPY, MAX_PARTS, MIN_PART, Part, Piece, plan, plan_equal

__all__ = ["MAX_COPY", "MAX_PARTS", "MIN_PART", "Joiner", "Part", "Piece", "plan",
           "plan_equal"]

# Parts of one join made at once.
PART_THREADS = 4


class Joiner:
    """Joins pieces of objects of one bucket into one object, on the calling process's
    client (clients() gives it)."""

    def __init__(self, clients: Callable[[], object], bucket: str, scratch: str,
                 temp_dir: str, part_size: int, buffer_size: int, max_parts: int = MAX_PARTS,
                 min_part: int = MIN_PART, equal_parts: bool = False) -> None:
        self.clients, self.bucket = clients, bucket
        self.scratch = scratch  # where intermediate objects are made
        self.temp_dir = temp_dir
        self.part_size = part_size
        self.buffer_size = buffer_size
        self.max_parts = max_parts
        self.min_part = min_part
        self.equal_parts = equal_parts

    @property
    def client(self):
        return self.clients()

    def join(self, pieces: list[Piece], dest: str, exclusive: bool = False) -> None:
        """Store the pieces, in order, as the object dest; with exclusive, never over an
        object already there (NameTaken)."""
        pieces = [piece for piece in pieces if piece.size]
        size = self.part_size
        parts = self._plan(pieces, size)
        made: list[str] = []
        try:
            while len(parts) > self.max_parts:
                run = self.max_parts
                if self.equal_parts:  # each intermediate object one part of the next round
                    run = min(math.ceil(len(parts) / self.max_parts), self.max_parts)
                    size *= run
                    if size > MAX_COPY:
                        raise StorageError("object store: too many bytes to join in equal "
                                           "parts; raise UPLOADSVC_S3_PART_SIZE")
                pieces = []
                for first in range(0, len(parts), run):
                    middle = f"{self.scratch}{uuid.uuid4().hex}.join"
                    made.append(middle)
                    group = parts[first:first + run]
                    self._multipart(group, middle, False)
                    pieces.append(Piece(middle, 0, sum(part.size for part in group)))
                parts = self._plan(pieces, size)
            if not parts:
                self._put_empty(dest, exclusive)
            elif len(parts) == 1 and not parts[0].copied:
                with self._streamed(parts[0]) as body:
                    self._put_file(body, dest, exclusive)
            else:
                self._multipart(parts, dest, exclusive)
        finally:
            for key in made:
                with s3_errors("removing an intermediate object"):
                    self.client.delete_object(Bucket=self.bucket, Key=key)

    def _plan(self, pieces: list[Piece], size: int) -> list[Part]:
        if self.equal_parts:
            return plan_equal(pieces, size, self.min_part)
        return plan(pieces, size, self.min_part)

    def read(self, pieces: list[Piece]) -> Iterator[bytes]:
        """The pieces' bytes in order, one streamed GET each, in buffers."""
        for piece in pieces:
            if not piece.size:
                continue
            with s3_errors("reading bytes"):
                body = self.client.get_object(
                    Bucket=self.bucket, Key=piece.key,
                    Range=f"bytes={piece.start}-{piece.end - 1}")["Body"]
                try:
                    left = piece.size
                    while left > 0:
                        data = body.read(min(self.buffer_size, left))
                        if not data:
                            raise StorageError("object store: an object is shorter than "
                                               "recorded")
                        left -= len(data)
                        yield data
                finally:
                    body.close()

    # -- the requests ---------------------------------------------------------------------

    def _multipart(self, parts: list[Part], dest: str, exclusive: bool) -> None:
        with s3_errors("starting a multipart upload"):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=dest)["UploadId"]
        try:
            tags = self._parts(dest, upload_id, parts)
            done = [{"PartNumber": number, "ETag": tag}
                    for number, tag in enumerate(tags, start=1)]
            extra = {"IfNoneMatch": "*"} if exclusive else {}
            with s3_errors("completing a multipart upload"), name_taken(dest):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=dest, UploadId=upload_id,
                    MultipartUpload={"Parts": done}, **extra)
        except BaseException:
            self.abort(dest, upload_id)
            raise

    def _parts(self, dest: str, upload_id: str, parts: list[Part]) -> list[str]:
        """Make the parts, a few at once (a part copied takes the store a while); their
        ETags in order. The first failure stops the rest."""
        if len(parts) == 1:
            return [self._part(dest, upload_id, number, part)
                    for number, part in enumerate(parts, start=1)]
        pool = ThreadPoolExecutor(min(PART_THREADS, len(parts)),
                                  thread_name_prefix="join")
        try:
            futures = [pool.submit(self._part, dest, upload_id, number, part)
                       for number, part in enumerate(parts, start=1)]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _part(self, dest: str, upload_id: str, number: int, part: Part) -> str:
        if part.copied:
            (piece,) = part.pieces
            with s3_errors("copying a part"):
                answer = self.client.upload_part_copy(
                    Bucket=self.bucket, Key=dest, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": piece.key},
                    CopySourceRange=f"bytes={piece.start}-{piece.end - 1}")
            return answer["CopyPartResult"]["ETag"]
        with self._streamed(part) as body, s3_errors("uploading a part"):
            return self.client.upload_part(
                Bucket=self.bucket, Key=dest, UploadId=upload_id, PartNumber=number,
                Body=SmallReads(body, self.buffer_size), ContentLength=part.size)["ETag"]

    def abort(self, dest: str, upload_id: str) -> None:
        """Abort a multipart upload, quietly (a part still arriving may outlive one abort:
        the bucket's lifecycle rule is the backstop)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=dest,
                                               UploadId=upload_id)
        except Exception:  # noqa: BLE001 - the failure that brought us here matters more
            pass

    def _put_empty(self, dest: str, exclusive: bool) -> None:
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        with s3_errors("storing an object"), name_taken(dest):
            self.client.put_object(Bucket=self.bucket, Key=dest, Body=b"", **extra)

    def _put_file(self, body: BinaryIO, dest: str, exclusive: bool) -> None:
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        with s3_errors("storing an object"), name_taken(dest):
            self.client.put_object(Bucket=self.bucket, Key=dest,
                                   Body=SmallReads(body, self.buffer_size),
                                   ContentLength=os.fstat(body.fileno()).st_size, **extra)

    @contextmanager
    def _streamed(self, part: Part) -> Iterator[BinaryIO]:
        """A local file holding a streamed part's bytes, read from its start; it has no
        name, so it goes on exit or with the process."""
        with open(anonymous_file(self.temp_dir), "w+b") as out:
            for block in self.read(list(part.pieces)):
                out.write(block)
            out.flush()
            out.seek(0)
            yield out


class name_taken:
    """PreconditionFailed on an exclusive write: another object holds the name."""

    def __init__(self, dest: str) -> None:
        self.dest = dest

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, ClientError) and error_code(exc) in ("PreconditionFailed", "412"):
            raise NameTaken(self.dest.rpartition("/")[2]) from None
        return False

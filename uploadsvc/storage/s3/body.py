"""A request body streamed into one object: through a local file of at most one part (with
no name, so none outlives its process), so neither memory nor the local disk holds more than
a part whatever the body's length. A body that ends within its first part is one PutObject;
a longer one a multipart upload whose parts are made as the body arrives. A local file
(a spooled chunk) is one PutObject whatever its size, up to S3's 5 GiB."""
import os
from collections.abc import Iterable
from typing import BinaryIO

from ..base import Written
from ..objects import Body, feed
from ..spool import anonymous_file
from .client import SmallReads, s3_errors
from .join import Joiner, name_taken
from .plan import MAX_COPY

# The largest object one PutObject may store (S3's limit, as for a part).
MAX_PUT = MAX_COPY


def put_body(joiner: Joiner, dest: str, src: BinaryIO, limit: int, digests: Iterable = (),
             part_size: int | None = None, exclusive: bool = False) -> Written:
    """Store up to limit bytes of src as the object dest (nothing if none arrived); if
    exclusive, only if no object holds that name by then (NameTaken)."""
    extra = {"IfNoneMatch": "*"} if exclusive else {}
    part_size = max(part_size or joiner.part_size, joiner.min_part)
    body = Body(src, limit, digests, joiner.buffer_size)
    upload_id = None
    number = 0
    parts = []
    try:
        while True:
            # A file with no name: it goes with the process, whatever kills it.
            with open(anonymous_file(joiner.temp_dir), "w+b", buffering=0) as part:
                n = body.fill(part, part_size)
                part.seek(0)
                if upload_id is None and body.ended:
                    if body.size:
                        with s3_errors("storing bytes"), name_taken(dest):
                            joiner.client.put_object(
                                Bucket=joiner.bucket, Key=dest, ContentLength=n,
                                Body=SmallReads(part, joiner.buffer_size), **extra)
                    return body.written()
                if upload_id is None:
                    with s3_errors("starting a multipart upload"):
                        upload_id = joiner.client.create_multipart_upload(
                            Bucket=joiner.bucket, Key=dest)["UploadId"]
                if n:
                    number += 1
                    with s3_errors("uploading a part"):
                        etag = joiner.client.upload_part(
                            Bucket=joiner.bucket, Key=dest, UploadId=upload_id,
                            PartNumber=number, ContentLength=n,
                            Body=SmallReads(part, joiner.buffer_size))["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
            if body.ended:
                break
        with s3_errors("completing a multipart upload"), name_taken(dest):
            joiner.client.complete_multipart_upload(
                Bucket=joiner.bucket, Key=dest, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, **extra)
        return body.written()
    except BaseException:
        if upload_id is not None:
            joiner.abort(dest, upload_id)
        raise


def put_file(joiner: Joiner, dest: str, src: BinaryIO, digests: Iterable = ()) -> int:
    """Store all of a local file (from its start) as the object dest, feeding its bytes to
    digests; its size."""
    size = os.fstat(src.fileno()).st_size
    src.seek(0)
    if size > MAX_PUT:
        return put_body(joiner, dest, src, size, digests).size
    # Hashed where the bytes lie in the page cache, then sent in one request: botocore may
    # read a body more than once (to sign it, to retry), which a digest must not see.
    feed(list(digests), src.fileno(), size)
    with s3_errors("storing bytes"):
        joiner.client.put_object(Bucket=joiner.bucket, Key=dest, ContentLength=size,
                                 Body=SmallReads(src, joiner.buffer_size))
    return size

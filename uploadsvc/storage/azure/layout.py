"""The Azure backend's names and requests on them.

Under the prefix of ``azure://CONTAINER/PREFIX``:

- ``chunks/<key>``: an upload's blob, its bytes in blocks (blocks.py);
- ``sealed/<random>``: joined uploads (tus concatenation) until published;
- ``uploads/<stored name>``: finished files.

Every name is built from a server-made key or a stored name. Local files (the data
directory's ``temp/``) hold only request parts on their way, without a name.
"""
import base64
import os
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError

from ..base import UPLOAD_KEY
from ..errors import LeaseLost, NameTaken, StorageError, UploadGone
from ..object_names import ORPHAN_AGE
from ..objects import SmallReads
from .blocks import Layout
from .client import ContainerURL, azure_errors, is_missing

# Bytes read at once from a request body or a download: held once per thread moving bytes.
BUFFER_SIZE = 256 * 1024
# Blocks of bytes that write() stores (tus PATCH bodies, joined uploads): each is held once
# in a local file while it is sent.
BLOCK_SIZE = 16 * 1024 * 1024
# How long a server-side copy (publishing a file) may take before it is given up.
COPY_WAIT = 600.0
# Answers that say a name is taken, where a request said If-None-Match: *.
TAKEN = {"BlobAlreadyExists", "ConditionNotMet", "TargetConditionNotMet"}


class AzureLayout:
    """Names, block lists and requests of one container prefix."""

    def __init__(self, client, url: ContainerURL, data_dir: str,
                 block_size: int = BLOCK_SIZE, buffer_size: int = BUFFER_SIZE,
                 orphan_age: float = ORPHAN_AGE) -> None:
        # client: a ContainerClient, or a callable (ProcessClient) that gives one.
        self.clients: Callable = client if callable(client) else (lambda: client)
        self.url = url
        self.container, self.prefix = url.container, url.prefix
        self.root = os.path.abspath(data_dir)
        self.temp_dir = os.path.join(self.root, "temp")
        self.locks_dir = os.path.join(self.root, "locks")
        os.makedirs(self.temp_dir, exist_ok=True)
        self.block_size, self.buffer_size = block_size, buffer_size
        self.orphan_age = float(orphan_age)

    @property
    def client(self):
        """This process's container client."""
        return self.clients()

    # -- names ----------------------------------------------------------------------------

    def _upload_name(self, key: str) -> str:
        if not UPLOAD_KEY.fullmatch(key):
            raise ValueError("invalid upload key")
        return f"{self.prefix}chunks/{key}"

    def _file_name(self, stored_name: str) -> str:
        if stored_name in ("", ".", "..") or "/" in stored_name or "\0" in stored_name:
            raise ValueError("invalid stored name")
        return f"{self.prefix}uploads/{stored_name}"

    def _blob(self, name: str):
        return self.client.get_blob_client(name)

    # -- requests -------------------------------------------------------------------------

    def _layout(self, key: str) -> Layout | None:
        """The upload's blocks (one Get Block List), or None if its blob does not exist."""
        blob = self._blob(self._upload_name(key))
        with azure_errors("listing blocks"):
            try:
                # The generated operation, for the blob's ETag beside the lists.
                body, headers = blob._client.block_blob.get_block_list(
                    list_type="all", cls=lambda response, body, headers: (body, headers))
            except HttpResponseError as exc:
                if is_missing(exc) or exc.status_code == 404:
                    return None
                raise
        committed = [(_decode(b.name), b.size) for b in body.committed_blocks or []]
        staged = [(_decode(b.name), b.size) for b in body.uncommitted_blocks or []]
        return Layout(committed, staged, headers.get("ETag"))

    def _existing(self, key: str) -> Layout:
        layout = self._layout(key)
        if layout is None:
            raise UploadGone(key)
        return layout

    def _exists(self, key: str) -> bool:
        """Whether the upload's blob is committed (one of only staged blocks is not: a
        chunk written after its upload was removed)."""
        return self._properties(self._upload_name(key)) is not None

    def _must_exist(self, key: str) -> None:
        if not self._exists(key):
            raise UploadGone(key)

    def _properties(self, name: str):
        with azure_errors("looking up a blob"):
            try:
                return self._blob(name).get_blob_properties()
            except HttpResponseError as exc:
                if is_missing(exc):
                    return None
                raise

    def _stage(self, name: str, block: str, src: BinaryIO, size: int) -> None:
        """Stage a local file's first size bytes (from its position) as a block of a blob."""
        with azure_errors("staging a block"):
            self._blob(name).stage_block(block, SmallReads(src, self.buffer_size), length=size)

    def _commit(self, name: str, ids: list[str], etag: str | None = None,
                exclusive: bool = False) -> str:
        """Commit these blocks, in order, as the blob's bytes (only if the blob's ETag is
        still etag, or with exclusive only if there is none); its new ETag."""
        conditions = ({"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag
                      else {"match_condition": MatchConditions.IfMissing} if exclusive else {})
        with azure_errors("committing blocks"):
            try:
                return self._blob(name).commit_block_list(ids, **conditions)["etag"]
            except HttpResponseError as exc:
                if etag and exc.status_code == 412:  # another writer committed meanwhile
                    raise LeaseLost("the upload's bytes changed meanwhile") from None
                raise

    def _open_range(self, name: str, start: int, end: int) -> "BlockStream":
        """Bytes [start, end) of a committed blob as one streamed GET with Range. (The SDK's
        download_blob holds each 4 MiB it fetches, twice, while it is read.)"""
        with azure_errors("reading bytes"):
            return BlockStream(self._blob(name)._client.blob.download(
                range=f"bytes={start}-{end - 1}"))

    def _read(self, name: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) of a committed blob, in buffers."""
        if end <= start:
            return
        stream = self._open_range(name, start, end)
        try:
            left = end - start
            while left > 0:
                data = stream.read(min(self.buffer_size, left))
                if not data:
                    raise StorageError("object store: a blob is shorter than its blocks")
                left -= len(data)
                yield data
        finally:
            stream.close()

    def _delete_blob(self, name: str) -> bool:
        """Remove a blob (gone already is what was asked); whether it was there."""
        with azure_errors("removing a blob"):
            try:
                self._blob(name).delete_blob()
                return True
            except HttpResponseError as exc:
                if is_missing(exc):
                    return False
                raise

    def _copy(self, source: str, etag: str | None, dest: str, exclusive: bool) -> None:
        """Copy a blob (as it was at etag) to dest in the store, never over another blob
        with exclusive (NameTaken); waits for the copy to end."""
        conditions = {"match_condition": MatchConditions.IfMissing} if exclusive else {}
        if etag:
            conditions.update(source_etag=etag,
                              source_match_condition=MatchConditions.IfNotModified)
        target = self._blob(dest)
        with azure_errors("copying a blob"):
            try:
                answer = target.start_copy_from_url(self._blob(source).url, **conditions)
            except (ResourceExistsError, HttpResponseError) as exc:
                if exclusive and (getattr(exc, "error_code", None) in TAKEN
                                  or exc.status_code in (409, 412)) and \
                        self._properties(dest) is not None:
                    raise NameTaken(dest) from None
                raise
            status, deadline = answer.get("copy_status"), time.monotonic() + COPY_WAIT
            # Within one account a copy is mostly done when answered; else it is polled.
            while status == "pending" and time.monotonic() < deadline:
                time.sleep(0.2)
                status = target.get_blob_properties().copy.status
        if status != "success":
            raise StorageError(f"object store: copying a blob ended {status}")


def _decode(name: str) -> str:
    """A block id as the service lists it (base64 of ours), ours again."""
    try:
        return base64.b64decode(name).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return ""


class BlockStream:
    """A streamed answer (the SDK's iterator of blocks of DATA_BLOCK_SIZE) read as a file:
    one block in memory at most; its failures the store's errors."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.block, self.at = b"", 0

    def read(self, size: int) -> bytes:
        """At most size bytes (fewer at a block's end); b"" at the end of the answer."""
        if self.at >= len(self.block):
            with azure_errors("reading bytes"):
                self.block, self.at = next(self.blocks, b""), 0
        if self.at == 0 and size >= len(self.block):  # the whole block, not a copy
            self.at = len(self.block)
            return self.block
        data = self.block[self.at:self.at + size]
        self.at += len(data)
        return data

    def close(self) -> None:
        response = getattr(self.blocks, "response", None)
        if response is not None:
            response.internal_response.close()

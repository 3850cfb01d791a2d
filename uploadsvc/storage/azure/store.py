"""AzureStore: the storage interface on a container of Azure Blob Storage.

An upload's bytes are the blocks of one blob (blocks.py). A tus PATCH is staged as blocks
as it arrives and committed at once after the blocks it continues (one Put Block List, only
if no other writer committed meanwhile); an /api chunk is one staged block, and the upload's
chunks are committed in order by one Put Block List at completion, with no copy of their
bytes. The committed blob is then the sealed file: only what was not hashed as it passed is
read back, and publishing copies it, in the store, to ``uploads/<name>`` with
If-None-Match: *, so a name is never taken twice.

A finished file is served as ranged reads (FileServer with no path), or fetched by the
client itself with a SAS (Presigner), and the finished files can be listed (FileListing) for
cleanup. Locks and chunk claims are the locker's: the app gives the store the database's
leases, which hold across hosts.
"""
import datetime
import hashlib
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from typing import BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from ..base import Download, Sealed, Store, Written
from ..capabilities import Concatenation, FileListing, FileServer, Presigner
from ..errors import FileGone, StorageError
from ..locking import FileLocker
from ..md5state import Md5State
from ..objects import Body, Chained, RangeReader
from ..spool import SpoolFile, anonymous_file
from .blocks import MAX_BLOCKS, WRITTEN, Layout, block_id, new_token
from .chunks import AzureChunkFiles
from .client import ContainerURL, azure_errors

SEALED = "sealed/"


class AzureStore(AzureChunkFiles, Store, Concatenation, FileServer, FileListing, Presigner):
    """Uploads' bytes and finished files in one container prefix."""

    shared = True  # every host of the service reaches the container
    durable = True  # a block is stored once its Put Block is answered, or not at all
    max_chunks = MAX_BLOCKS  # one committed block each

    def __init__(self, client, url: ContainerURL | str, data_dir: str, **options) -> None:
        url = ContainerURL.parse(url) if isinstance(url, str) else url
        super().__init__(client, url, data_dir, **options)
        self.locker = FileLocker(self.locks_dir)

    # -- an upload's bytes ------------------------------------------------------------

    def create(self, key: str) -> None:
        # An empty committed blob, made only if none is there: one request.
        blob = self._blob(self._upload_name(key))
        with azure_errors("creating an upload"):
            try:
                blob.commit_block_list([], match_condition=MatchConditions.IfMissing)
            except HttpResponseError as exc:
                if exc.status_code not in (409, 412):
                    raise

    def delete(self, key: str) -> None:
        name = self._upload_name(key)
        # A blob of staged blocks only (chunks that came after their upload went) cannot
        # be deleted on Azure until it is committed.
        if not self._delete_blob(name) and self._layout(key) is not None:
            self._commit(name, [])
            self._delete_blob(name)
        self.locker.forget(key)

    def write(self, key: str, offset: int, src: BinaryIO, limit: int,
              digests: Iterable = ()) -> Written:
        # One Get Block List: the committed blocks before the offset are kept (one crossing
        # it is staged again, shorter), the body is staged after them, and all are committed
        # only if no other writer committed since that list: a write whose lease lapsed
        # while its body arrived never replaces the bytes of the write that came after.
        layout = self._existing(key)
        if offset > layout.committed_size:
            raise StorageError(f"upload {key} holds fewer bytes than offset {offset}")
        name, token = self._upload_name(key), new_token()
        ids = self._kept(name, layout, offset, token)
        body = Body(src, limit, digests, self.buffer_size)
        position = offset
        for piece, size in body.pieces(self.temp_dir, self.block_size):
            ids.append(block_id(WRITTEN, position, token))
            self._stage(name, ids[-1], piece, size)
            position += size
        if len(ids) > MAX_BLOCKS:
            raise StorageError(f"object store: more than {MAX_BLOCKS} blocks in one blob")
        if ids != layout.committed_ids():
            self._commit(name, ids, etag=layout.etag)
        return body.written()

    def size(self, key: str) -> int:
        layout = self._layout(key)
        return 0 if layout is None else layout.size()

    def truncate(self, key: str, size: int) -> None:
        layout = self._existing(key)
        self._settle(key, layout, min(size, layout.size()))

    def lost_in_restart(self, key: str) -> bool:
        self._upload_name(key)  # (a key the server made, or ValueError)
        return False  # the store keeps what it acknowledged

    def hash_prefix(self, key: str, saved: bytes | None, end: int) -> bytes:
        state = Md5State(saved)
        if state.length > end:
            raise ValueError("the saved MD5 state is past the end")
        layout = self._existing(key)
        if layout.size() < end:
            raise ValueError("fewer bytes are stored than the hash is asked to reach")
        if not layout.readable(state.length, end):
            raise ValueError("staged chunks are read back only once placed")
        for data in self._read(self._upload_name(key), state.length, end):
            state.update(data)
        return state.save()

    def seal(self, key: str, size: int, md5: str | None = None,
             saved: bytes | None = None) -> Sealed:
        self._must_exist(key)
        layout = self._existing(key)
        if layout.size() < size:
            raise StorageError(f"upload {key} holds fewer bytes than {size}")
        etag = self._settle(key, layout, size)  # the blob is the file now: committed, cut
        name = self._upload_name(key)
        if md5 is None:
            state = Md5State(saved) if saved is not None else hashlib.md5()
            for data in self._read(name, Md5State(saved).length if saved else 0, size):
                state.update(data)
            md5 = state.hexdigest()
        return Sealed(ref=f"{name}#{etag}", size=size, md5=md5)

    def concatenate(self, keys: list[str]) -> Sealed:
        names = [self._upload_name(key) for key in keys]
        layouts = [self._existing(key) for key in keys]
        sizes = [layout.size() for layout in layouts]
        if not all(layout.readable(0, n) for layout, n in zip(layouts, sizes, strict=True)):
            raise StorageError("object store: an upload to join holds staged chunks")
        # No block of one blob can be committed in another: the bytes pass through.
        source = Chained(self._read(name, 0, n) for name, n in zip(names, sizes, strict=True))
        dest, token, md5 = f"{self.prefix}{SEALED}{uuid.uuid4().hex}", new_token(), hashlib.md5()
        ids, position = [], 0
        for piece, size in Body(source, sum(sizes), [md5], self.buffer_size).pieces(
                self.temp_dir, self.block_size):
            ids.append(block_id(WRITTEN, position, token))
            self._stage(dest, ids[-1], piece, size)
            position += size
        self._commit(dest, ids)
        return Sealed(ref=dest, size=position, md5=md5.hexdigest())

    # -- finished files ---------------------------------------------------------------

    def publish(self, sealed: Sealed, name: str, replace: bool = False) -> None:
        dest = self._file_name(name)
        source, _, etag = sealed.ref.partition("#")
        self._copy(source, etag or None, dest, exclusive=not replace)
        self.discard(sealed)

    def discard(self, sealed: Sealed) -> None:
        if sealed.ref.startswith(self.prefix + SEALED):  # not an upload's blob nor a file
            self._delete_blob(sealed.ref)

    def copy(self, name: str) -> Sealed:
        found = self._properties(self._file_name(name))
        if found is None:
            raise FileGone(name)
        return Sealed(ref=f"{self._file_name(name)}#{found.etag}", size=found.size, md5="")

    def has_file(self, name: str) -> bool:
        return self._properties(self._file_name(name)) is not None

    def open_file(self, name: str) -> BinaryIO:
        return self.serve(name).open()

    def serve(self, name: str) -> Download:
        blob = self._file_name(name)
        found = self._properties(blob)
        if found is None:
            raise FileGone(name)

        return Download(size=found.size, etag=found.etag.strip('"'),
                        modified=found.last_modified.timestamp(),
                        open=lambda: RangeReader(partial(self._open_range, blob), found.size))

    def presigned_url(self, name: str, seconds: int, content_type: str,
                      disposition: str) -> str:
        # Signed here with the account key, with no request: the client's GET goes to Azure.
        blob = self._blob(self._file_name(name))
        key = getattr(blob.credential, "account_key", None)
        if not key:
            raise StorageError("presigned downloads on Azure need the account key "
                               "(AZURE_STORAGE_KEY or a connection string with one)")
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
        sas = generate_blob_sas(blob.account_name, self.container, blob.blob_name,
                                account_key=key, permission=BlobSasPermissions(read=True),
                                expiry=expiry, content_type=content_type,
                                content_disposition=disposition)
        return f"{blob.url}?{sas}"

    def delete_file(self, name: str) -> None:
        self._delete_blob(self._file_name(name))

    def finished_files(self) -> Iterator[tuple[str, float]]:
        start = len(f"{self.prefix}uploads/")
        for name, changed in self._list(f"{self.prefix}uploads/"):
            if name[start:] and "/" not in name[start:]:  # never one of ours otherwise
                yield name[start:], changed

    # -- request bodies and housekeeping -----------------------------------------------

    def spool(self, limit: int | None = None) -> SpoolFile:
        # Sent to the store, never taken over as a file: it need never have a name.
        return SpoolFile(self.temp_dir, limit, linkable=False)

    def upload_keys(self) -> Iterator[tuple[str, float]]:
        start = len(f"{self.prefix}chunks/")
        for name, changed in self._list(f"{self.prefix}chunks/", staged=True):
            if len(name) - start == 32 and "/" not in name[start:]:
                yield name[start:], changed

    def location(self, key: str) -> str:
        return f"azure://{self.container}/{self._upload_name(key)}"

    def temp_files(self) -> Iterator[tuple[str, float]]:
        for name, changed in self._list(self.prefix + SEALED):
            yield name[len(self.prefix):], changed

    def remove_temp_file(self, name: str) -> None:
        if name.startswith(SEALED) and name[len(SEALED):] and "/" not in name[len(SEALED):]:
            self._delete_blob(self.prefix + name)

    # -- helpers ------------------------------------------------------------------------

    def _list(self, prefix: str, staged: bool = False) -> Iterator[tuple[str, float]]:
        """(name, last change) of the blobs under prefix; with staged, those of staged
        blocks only too."""
        with azure_errors("listing blobs"):
            for blob in self.client.list_blobs(name_starts_with=prefix,
                                               include=["uncommittedblobs"] if staged else None):
                yield blob.name, blob.last_modified.timestamp()

    def _kept(self, name: str, layout: Layout, offset: int, token: str) -> list[str]:
        """The committed blocks before offset; one that crosses it is staged again, cut."""
        ids = []
        for segment in layout.committed:
            if segment.end <= offset:
                ids.append(segment.id)
            else:
                if segment.offset < offset:
                    ids.append(self._restage(name, segment.offset, offset, token))
                break
        return ids

    def _restage(self, name: str, start: int, end: int, token: str) -> str:
        """Stage the committed bytes [start, end) again as a block of their own; its id."""
        block = block_id(WRITTEN, start, token)
        with open(anonymous_file(self.temp_dir), "w+b", buffering=0) as local:
            for data in self._read(name, start, end):
                local.write(data)
            local.seek(0)
            self._stage(name, block, local, end - start)
        return block

    def _settle(self, key: str, layout: Layout, size: int) -> str | None:
        """Commit the upload's first size bytes, and nothing else, as its blob; its ETag."""
        name = self._upload_name(key)
        segments = layout.walk(size)
        if segments and segments[-1].end > size and not segments[-1].committed:
            # A staged block to cut: committed first, so that it can be read.
            self._commit(name, [segment.id for segment in segments], etag=layout.etag)
            layout = self._existing(key)
            segments = layout.walk(size)
        ids = [segment.id for segment in segments]
        if segments and segments[-1].end > size:
            ids[-1] = self._restage(name, segments[-1].offset, size, new_token())
        if ids == layout.committed_ids():
            return layout.etag
        return self._commit(name, ids, etag=layout.etag)

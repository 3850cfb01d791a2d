"""The storage interface: a core every backend implements, and a Locker (the optional
capabilities are in capabilities.py).

As tusd composes its stores, a service asks a store for a capability (``isinstance(store,
ChunkFiles)``) instead of knowing which backend it is. An upload's *bytes* are named by its
upload key (32 hex digits the server made); a *finished file* by the stored name the service
chose. Nothing here tells whether they are files or objects, or where they live.
"""
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from .errors import LockBusy


@dataclass(frozen=True)
class Written:
    """What write() stored: bytes written, whether the source held more than allowed, and
    whether reading it failed midway (the bytes before the failure are kept)."""

    size: int
    overflow: bool
    interrupted: bool


@dataclass(frozen=True)
class Sealed:
    """An upload's finished bytes, hashed, waiting to be published under a name."""

    ref: str  # the backend's own handle on the bytes
    size: int
    md5: str


@dataclass(frozen=True)
class Download:
    """How to serve a finished file: from a path on this host, or (path None) as a seekable
    stream that open() gives, with the store's ETag and last change; Range either way."""

    size: int
    path: str | None = None
    open: Callable[[], BinaryIO] | None = None
    etag: str | None = None
    modified: float | None = None


# An upload key: 32 hex digits the server made (uuid4().hex); paths and object names are
# built only from keys that match it.
UPLOAD_KEY = re.compile(r"[0-9a-f]{32}")
# A lock is named by an upload key, "<key>", or by a key and one of these purposes,
# "<key>.<purpose>": "hash" is held by whoever hashes the upload's bytes.
PURPOSES = ("hash",)
LOCK_NAME = re.compile(rf"{UPLOAD_KEY.pattern}(\.({'|'.join(PURPOSES)}))?")


class Locker(ABC):
    """Named locks that every worker of the service honours, shared or exclusive, and
    claims of single chunks of an upload."""

    # Whether a hold can be taken in the caller's open database transaction, after what
    # the lock guards was read in it under a row lock (the database's own leases): that
    # read then still stands once the hold is, and needs no second read.
    joins_transaction: bool = False

    @abstractmethod
    def hold(self, name: str, exclusive: bool = True, timeout: float = 0.0,
             chunk: int | None = None) -> AbstractContextManager[None]:
        """Hold the lock `name`, waiting at most `timeout` seconds (then LockBusy).
        A holder that dies loses it. A shared hold may name the chunk its holder is about
        to write, so that claim() of that chunk can be decided with the hold itself."""

    @abstractmethod
    def claim(self, key: str, index: int) -> AbstractContextManager[bool]:
        """Claim chunk `index` of upload `key` without waiting; yields whether. At most one
        holder claims a chunk at a time."""

    def ending(self, name: str) -> None:  # noqa: B027 - most lockers release as the hold ends
        """The caller's next commit of what the lock `name` guards ends its work under this
        thread's hold: a locker kept with that state may release the hold with it."""

    def forget(self, key: str) -> None:  # noqa: B027 - most lockers keep nothing per upload
        """Drop what is kept for the locks of an upload that is finished or gone."""

    def names(self) -> Iterator[tuple[str, float]]:
        """(name, last change) of locks this host keeps as files; none by default."""
        return iter(())

    @contextmanager
    def try_hold(self, name: str, timeout: float = 0.0) -> Iterator[bool]:
        """Hold the lock exclusively if it can be had within `timeout`; yields whether."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.hold(name, True, timeout))
            except LockBusy:
                yield False
                return
            yield True


class Store(ABC):
    """The core: an upload's bytes as they arrive, and the finished files they become."""

    locker: Locker
    # Whether hosts other than this one reach its bytes: then the app gives it locks that
    # every host honours (the database's leases); a store on one host's disk keeps its own.
    shared: bool = False
    # Whether bytes a write returned for survive any crash (an object store's): then an
    # offset recorded after the write needs no check against what the store holds.
    durable: bool = False
    # Seconds after which cleanup removes what no row owns (bytes of no upload, temporary
    # files); None: after the idle time cleanup is given, at least a minute. A store shared
    # by several hosts sets its own, so that no host takes what a request on another uses.
    orphan_age: float | None = None
    # The most chunks one upload may have here (Azure commits at most 50,000 blocks per
    # blob); None: no limit of the store's own. The app lowers MAX_TOTAL_CHUNKS to it.
    max_chunks: int | None = None

    # -- an upload's bytes ------------------------------------------------------------

    @abstractmethod
    def create(self, key: str) -> None:
        """Make room for an upload's bytes (idempotent)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove everything kept for an upload's bytes (idempotent)."""

    @abstractmethod
    def write(self, key: str, offset: int, src: BinaryIO, limit: int,
              digests: Iterable = ()) -> Written:
        """Store up to `limit` bytes of src at offset (what lay past offset is dropped),
        feeding them to digests; durable before it returns unless the store was told
        otherwise. A failing read keeps what arrived."""

    @abstractmethod
    def size(self, key: str) -> int:
        """How many of the upload's bytes, from the start, can be trusted (0 if none)."""

    @abstractmethod
    def truncate(self, key: str, size: int) -> None:
        """Drop the upload's bytes past size (a refused write)."""

    @abstractmethod
    def lost_in_restart(self, key: str) -> bool:
        """Whether the machine restarted since bytes of this upload were written without
        being made durable: then none of them can be trusted."""

    @abstractmethod
    def hash_prefix(self, key: str, saved: bytes | None, end: int) -> bytes:
        """Advance a saved MD5 state (None: a new one) over the upload's bytes up to end;
        the new state. ValueError if fewer bytes are stored or the state is past end."""

    @abstractmethod
    def seal(self, key: str, size: int, md5: str | None = None,
             saved: bytes | None = None) -> Sealed:
        """The upload's first size bytes as a finished file, hashed (only past a saved
        prefix state; not at all if md5 is given) and durable; the upload's bytes stay
        until delete(). A backend may leave the bytes where they are until publish() or
        discard(): the caller holds the upload's lock, so nothing changes them meanwhile."""

    # -- finished files ---------------------------------------------------------------

    @abstractmethod
    def publish(self, sealed: Sealed, name: str, replace: bool = False) -> None:
        """Store a sealed file under name, never over another file unless replace (the
        name is reserved for this very upload); NameTaken otherwise."""

    @abstractmethod
    def discard(self, sealed: Sealed) -> None:
        """Drop a sealed file that will not be published."""

    @abstractmethod
    def copy(self, name: str) -> Sealed:
        """The finished file under name, sealed anew to be published under another (its md5
        is left empty: the caller knows it from the file's upload)."""

    @abstractmethod
    def has_file(self, name: str) -> bool:
        """Whether a finished file is stored under name."""

    @abstractmethod
    def open_file(self, name: str) -> BinaryIO:
        """The finished file under name, to read (FileGone if there is none)."""

    @abstractmethod
    def delete_file(self, name: str) -> None:
        """Remove the finished file under name (idempotent)."""

    # -- request bodies and housekeeping -----------------------------------------------

    @abstractmethod
    def spool(self, limit: int | None = None) -> BinaryIO:
        """A temporary file for an incoming request part of at most limit bytes
        (PartTooLarge beyond), gone on close (or with its process) unless a write took it
        over; it has no name that temp_files() could list where the filesystem allows."""

    @abstractmethod
    def upload_keys(self) -> Iterator[tuple[str, float]]:
        """(key, last change as a Unix time) of every upload with bytes kept."""

    @abstractmethod
    def location(self, key: str) -> str:
        """Where an upload's bytes are kept, for people (cleanup's report)."""

    @abstractmethod
    def temp_files(self) -> Iterator[tuple[str, float]]:
        """(name, last change) of temporary files: files being sealed, and spooled parts
        that have a name (made by earlier versions, or where the filesystem needs one)."""

    @abstractmethod
    def remove_temp_file(self, name: str) -> None:
        """Remove a temporary file that temp_files() named."""

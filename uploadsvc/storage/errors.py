"""The store's errors. Each says what happened to the bytes, never how they are kept;
the HTTP layer turns them into answers in one place (uploadsvc.http.errors)."""


class StorageError(Exception):
    """Base of the store's errors."""


class StorageFull(StorageError):
    """The disk (or its quota) is full: nothing partial was kept."""


class PartTooLarge(StorageError):
    """A spooled request part grew past its limit; what was written is removed."""


class UploadGone(StorageError):
    """The upload's bytes are gone: deleted, completed, or never made."""


class FileGone(StorageError):
    """No finished file is stored under this name (any more)."""


class LockBusy(StorageError):
    """Another request holds the lock for longer than we may wait."""


class LeaseLost(LockBusy):
    """The lock's lease lapsed (and may be held by another request now): what was done under
    it is not committed; try again."""


class NameTaken(StorageError):
    """A different file is already stored under this name."""


class StorageUnavailable(StorageError):
    """The object store cannot be reached or is busy now: nothing was kept; try again."""

"""The Azure Blob Storage backend: an upload's bytes as the blocks of one blob (blocks,
layout), chunks as staged blocks (chunks), the store (store), its client and errors
(client)."""
from ..errors import StorageError
from ..objects import ProcessClient
from .client import ContainerURL, check_container, make_client
from .store import AzureStore

__all__ = ["AzureStore", "open_container"]


def open_container(storage_url: str, data_dir: str, timeout: float = 30.0,
                   orphan_age: float | None = None) -> AzureStore:
    """The store in the container an azure://CONTAINER/PREFIX URL names, checked now
    (StorageError if it cannot be used)."""
    try:
        url = ContainerURL.parse(storage_url)
        client = ProcessClient(lambda: make_client(url.container, timeout))
        check = client()
    except ValueError as exc:
        raise StorageError(f"{exc} (UPLOADSVC_STORAGE_URL)") from None
    check_container(check, url)
    options = {} if orphan_age is None else {"orphan_age": float(orphan_age)}
    return AzureStore(client, url, data_dir, **options)

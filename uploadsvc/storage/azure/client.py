"""The Azure backend's client: where the container is, how the SDK reaches it, what its
errors mean.

The account and credentials come from the variables Azure's own tools read: a connection
string (AZURE_STORAGE_CONNECTION_STRING, which names the endpoint too: Azurite's, or a
sovereign cloud's), or an account (AZURE_STORAGE_ACCOUNT) with its key
(AZURE_STORAGE_KEY) or a SAS token (AZURE_STORAGE_SAS_TOKEN), at AZURE_STORAGE_BLOB_ENDPOINT
if set. A process has one client, which all its threads share, made in that process on first
use (objects.ProcessClient).
"""
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

# The SDK imports its aiohttp transport wherever aiohttp is installed (tuspy brings it), for
# an isinstance check of async clients: some 8 MiB in every worker for a transport this
# backend never uses (it sends with requests). Absent, the SDK does without it.
sys.modules.setdefault("azure.core.pipeline.transport._aiohttp", None)

from azure.core.exceptions import (  # noqa: E402 - after the line above
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport  # noqa: E402
from azure.storage.blob import ContainerClient, ExponentialRetry  # noqa: E402

from ..errors import StorageError, StorageFull, StorageUnavailable  # noqa: E402
from ..objects import pool_size  # noqa: E402

# Azure's rule for container names: 3-63 lowercase letters, digits and single hyphens.
CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
# Answers that say "try again later", as against a request or a setting that is wrong.
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
# Answers that say the store has no room for the bytes (Azurite's, when its in-memory
# store is at its limit).
FULL_CODES = {"MemoryExtentStoreAtSizeLimit"}
SETTINGS = ("AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY "
            "or AZURE_STORAGE_SAS_TOKEN")


@dataclass(frozen=True)
class ContainerURL:
    """azure://CONTAINER/PREFIX: the container, and the prefix every blob name starts with."""

    container: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> "ContainerURL":
        parts = urlsplit(url)
        if parts.scheme != "azure" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"not an azure://CONTAINER/PREFIX URL: {url!r}")
        if not CONTAINER.fullmatch(parts.netloc):
            raise ValueError(f"{parts.netloc!r} is not an Azure container name")
        prefix = parts.path.strip("/")
        if prefix and any(piece in ("", ".", "..") for piece in prefix.split("/")):
            raise ValueError(f"the prefix of {url!r} has an empty, . or .. part")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"azure://{self.container}/{self.prefix}"


def make_client(container: str, timeout: float = 30.0, attempts: int = 3) -> ContainerClient:
    """A client of the container, from Azure's standard variables (ValueError if they name
    no account)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    options = {"transport": RequestsTransport(session=session, session_owner=True,
                                              connection_timeout=timeout, read_timeout=timeout),
               # The SDK's own first retry waits 15 s: a store that stopped answering
               # is a 503 soon instead, after attempts of at most timeout each.
               "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2,
                                                retry_total=max(attempts - 1, 0),
                                                random_jitter_range=1),
               "max_single_get_size": 4 * 1024 * 1024}
    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        return ContainerClient.from_connection_string(connection, container, **options)
    account = os.environ.get("AZURE_STORAGE_ACCOUNT")
    if not account:
        raise ValueError(f"no Azure storage account is configured; set {SETTINGS}")
    endpoint = (os.environ.get("AZURE_STORAGE_BLOB_ENDPOINT")
                or f"https://{account}.blob.core.windows.net").rstrip("/")
    key, sas = os.environ.get("AZURE_STORAGE_KEY"), os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if key:
        credential = {"account_name": account, "account_key": key}
    elif sas:
        credential = sas.lstrip("?")
    else:
        raise ValueError(f"no credentials for the Azure account {account}; set {SETTINGS}")
    return ContainerClient(endpoint, container, credential=credential, **options)


def error_code(exc: HttpResponseError) -> str:
    return str(getattr(exc, "error_code", "") or "")


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """The SDK's failures as the store's errors: StorageUnavailable for what may pass
    (unreachable, timed out, busy), StorageError for the rest."""
    try:
        yield
    except ClientAuthenticationError as exc:
        raise StorageError(f"Azure refused the credentials ({what})") from exc
    except HttpResponseError as exc:
        if error_code(exc) in FULL_CODES:
            raise StorageFull(f"object store full ({what}: {error_code(exc)})") from exc
        if (exc.status_code or 0) in TRANSIENT_STATUSES:
            raise StorageUnavailable(f"object store unavailable ({what}: "
                                     f"{exc.status_code})") from exc
        raise StorageError(f"object store refused {what}: {error_code(exc) or exc.status_code}"
                           ) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable(f"object store unreachable ({what})") from exc
    except AzureError as exc:
        raise StorageUnavailable(f"object store failed ({what}: {type(exc).__name__})") from exc


def is_missing(exc: BaseException) -> bool:
    return isinstance(exc, ResourceNotFoundError)


def check_container(client: ContainerClient, url: ContainerURL) -> None:
    """Fail now, in one clear sentence, when the container cannot be used."""
    where = f"{url} at {client.primary_endpoint}"
    try:
        client.get_container_properties(retry_total=0)  # one answer at start is enough
    except ResourceNotFoundError:
        raise StorageError(f"the container of {where} does not exist; create it or fix "
                           "UPLOADSVC_STORAGE_URL") from None
    except ClientAuthenticationError:
        raise StorageError(f"Azure refused the credentials for {where}; check "
                           f"{SETTINGS}") from None
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise StorageError(f"Azure refused the credentials for {where}; check "
                               f"{SETTINGS}") from None
        raise StorageError(f"cannot use {where}: {error_code(exc) or exc.status_code}"
                           ) from None
    except AzureError as exc:
        raise StorageError(f"cannot reach Azure for {where} ({type(exc).__name__}); check "
                           "the endpoint and that the store is running") from None

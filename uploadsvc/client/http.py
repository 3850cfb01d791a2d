"""HTTP to the upload API: one requests Session whose adapter retries with backoff."""
import json
from collections.abc import Iterator

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Statuses worth a retry at the transport level: the server or a proxy in front is briefly
# unavailable. Every call of the API is idempotent, so POSTs are retried too.
RETRY_STATUSES = (500, 502, 503, 504)
BACKOFF_MAX = 30.0


class ClientError(Exception):
    """A failure to report in one sentence, without a traceback."""


class ServerUnreachable(ClientError):
    """No connection to the server, or no answer in time: later files cannot fare better."""


class ConnectionDropped(ClientError):
    """The connection broke while the answer was read; the request can be sent again."""


class ApiError(ClientError):
    """The server answered with an error in the API's JSON shape (or none at all)."""

    def __init__(self, status: int, code: str, message: str, body: dict | None) -> None:
        super().__init__(f"the server answered {status} {code}: {message}")
        self.status, self.code, self.body = status, code, body or {}

    @property
    def retryable(self) -> bool:
        """A merge of the same upload is running: the API asks to retry in a moment."""
        return self.status == 409 and self.code == "merge_in_progress"


def make_session(retries: int, backoff: float, pool_size: int, user_agent: str) -> requests.Session:
    """A session that retries refused connections, broken requests and 5xx with backoff."""
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=retries,
                  allowed_methods=None, status_forcelist=RETRY_STATUSES,
                  backoff_factor=backoff, backoff_max=BACKOFF_MAX,
                  raise_on_status=False, respect_retry_after_header=True)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def reason(exc: BaseException) -> str:
    """Why a connection failed, in words: 'Connection refused', 'timed out', ..."""
    causes = list(_causes(exc))
    for cause in causes:  # first: a refused connection is also a "connect timeout" to urllib3
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    if any(isinstance(cause, (TimeoutError, urllib3.exceptions.TimeoutError))
           for cause in causes):
        return "timed out"
    return type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen, todo = set(), [exc]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__]
        todo += [arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException)]


class Api:
    """The upload API of one server."""

    def __init__(self, base_url: str, session: requests.Session, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout

    def check_chunks(self, md5: str, name: str, total: int) -> dict:
        return self.call("POST", "/api/check-chunks",
                         json={"md5": md5, "fileName": name, "totalChunks": total})

    def upload_chunk(self, md5: str, name: str, total: int, index: int, data: bytes) -> dict:
        fields = {"chunkIndex": str(index), "md5": md5, "fileName": name,
                  "totalChunks": str(total)}
        return self.call("POST", "/api/upload-chunk", data=fields,
                         files={"chunk": ("blob", data, "application/octet-stream")})

    def complete(self, md5: str, name: str, total: int) -> dict:
        return self.call("POST", "/api/complete-upload",
                         json={"md5": md5, "fileName": name, "totalChunks": total})

    def status(self, md5: str, name: str) -> dict:
        quoted = requests.utils.quote(name, safe="")
        return self.call("GET", f"/api/upload-status/{md5}/{quoted}")

    def call(self, method: str, path: str, **kwargs) -> dict:
        """One request; the JSON answer on success, ClientError subclasses otherwise."""
        try:
            response = self.session.request(method, self.base_url + path,
                                            timeout=self.timeout, **kwargs)
            body = _json(response)
        except requests.exceptions.ChunkedEncodingError as exc:
            raise ConnectionDropped(f"the connection to {self.base_url} broke: "
                                    f"{reason(exc)}") from None
        except requests.exceptions.Timeout:
            raise ServerUnreachable(f"{self.base_url} did not answer within "
                                    f"{self.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:  # also timeouts, once retried
            why = reason(exc)
            if why == "timed out":
                raise ServerUnreachable(f"{self.base_url} did not answer within "
                                        f"{self.timeout:g} s") from None
            raise ServerUnreachable(f"cannot reach {self.base_url}: {why}") from None
        except requests.exceptions.RequestException as exc:
            raise ClientError(f"request to {self.base_url} failed: {exc}") from None
        if response.ok and isinstance(body, dict):
            return body
        body = body if isinstance(body, dict) else {}
        message = body.get("message") or response.reason or "no explanation given"
        raise ApiError(response.status_code, body.get("error", "error"), message, body)


def _json(response: requests.Response):
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None

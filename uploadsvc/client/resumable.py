"""Upload one file with the IETF resumable upload draft (interop 9) on /files/.

A careful creation (Upload-Complete: ?0, the file's length, name and MD5 as Repr-Digest),
then appends of chunk_size bytes, the last with Upload-Complete: ?1. A request that fails
(no answer, a 5xx) is resumed from the offset a HEAD gives; the upload's URL is kept between
runs, so that the next run of the same command goes on from there.
"""
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import requests

from .chunked import Options, Result
from .files import Source
from .http import ApiError, ClientError, ServerUnreachable, reason
from .tus import state_file

INTEROP = "9"
PARTIAL = "application/partial-upload"


def upload(api, source: Source, md5: str, options: Options,
           progress: Callable[[int], object], resumed: Callable[[int], object]) -> Result:
    """Upload source, resuming the upload kept for it when the server still has it."""
    state = Path(str(state_file()).replace("tus-uploads", "ietf-uploads"))
    key = f"{api.base_url} {md5} {source.size} {source.name}"
    urls = _load(state)
    url, offset = urls.get(key), 0
    if url:
        found = _request(api, "HEAD", url)
        if found.status_code == 204:
            offset = int(found.headers["Upload-Offset"])
        else:
            url = None
    if url is None:
        url = _create(api, source, md5)
        urls[key] = url
        _save(state, urls)
    resumed(offset)
    start, tries = offset, 0
    with open(source.path, "rb") as f:
        while True:
            size = min(source.chunk_size, source.size - offset)
            last = offset + size >= source.size
            f.seek(offset)
            try:
                answer = _append(api, url, offset, f.read(size), last)
            except ClientError as exc:
                # 409: the server kept part of a body whose answer was lost; resume at its
                # offset. Other 4xx will not go better.
                if tries >= options.retries or (isinstance(exc, ApiError) and exc.status != 409):
                    raise
                tries += 1
                time.sleep(options.backoff * 2 ** tries)
                offset = _offset(api, url)
                continue
            offset = int(answer.headers["Upload-Offset"])
            progress(size)
            if last:
                break
    urls.pop(key, None)
    _save(state, urls)
    path = answer.headers.get("Content-Location", url)
    sent = -(-(source.size - start) // source.chunk_size) or 1
    return Result(path, md5, source.size, sent, source.total_chunks)


def _create(api, source: Source, md5: str) -> str:
    answer = _request(api, "POST", api.base_url + "/files/", headers={
        "Upload-Complete": "?0", "Upload-Length": str(source.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(source.name)}",
        "Repr-Digest": f"md5=:{base64.b64encode(bytes.fromhex(md5)).decode()}:"})
    _check(answer, 201)
    return answer.headers["Location"]


def _append(api, url: str, offset: int, body: bytes, last: bool) -> requests.Response:
    answer = _request(api, "PATCH", url, data=body, headers={
        "Upload-Offset": str(offset), "Upload-Complete": "?1" if last else "?0",
        "Content-Type": PARTIAL})
    if answer.status_code >= 500:
        raise ServerUnreachable(f"the server answered {answer.status_code}")
    _check(answer, 201 if last else 204)
    return answer


def _offset(api, url: str) -> int:
    answer = _request(api, "HEAD", url)
    _check(answer, 204)
    return int(answer.headers["Upload-Offset"])


def _request(api, method: str, url: str, headers: dict | None = None,
             data: bytes | None = None) -> requests.Response:
    try:
        return api.session.request(method, url, data=data, timeout=api.timeout, headers={
            "Upload-Draft-Interop-Version": INTEROP, **(headers or {})})
    except requests.RequestException as exc:
        raise ServerUnreachable(f"cannot reach {url}: {reason(exc)}") from None


def _check(answer: requests.Response, status: int) -> None:
    if answer.status_code != status:
        try:
            body = answer.json()
        except ValueError:
            body = {}
        raise ApiError(answer.status_code, body.get("error", "error"),
                       body.get("message", answer.reason), body)


def _load(state: Path) -> dict:
    try:
        return json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save(state: Path, urls: dict) -> None:
    temp = state.with_suffix(".tmp")
    temp.write_text(json.dumps(urls))
    temp.replace(state)

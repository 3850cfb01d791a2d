"""The pre-create hook: asked, synchronously, before a new upload is created (check-chunks or
the first chunk of a new /api upload, tus creation), whether it may be.

A 2xx answer admits the upload; any other refuses it (403 upload_refused, with the hook's
own message when it gives one: a JSON "message", or a short text body). A hook that times
out or cannot be reached refuses (pre_create_unavailable) or admits, by
PRE_CREATE_HOOK_FAIL. Uploads that exist already are never asked about again.
"""
import json
import logging
from typing import TYPE_CHECKING

from flask import current_app

from ...core.extensions import db
from ...version import __version__
from .. import access, metrics
from ..errors import PreCreateUnavailable, UploadRefused
from .outbox import decode_metadata
from .signatures import SIGNATURE_HEADER, sign

if TYPE_CHECKING:  # requests (5 MiB of memory) is loaded only by a process that asks a hook
    import requests

log = logging.getLogger(__name__)

EVENT = "upload.pre_create"
MAX_MESSAGE = 500  # characters of the hook's message passed on to the client
MAX_ANSWER = 64 * 1024  # bytes of the hook's answer read


def admit(protocol: str, file_name: str, **known) -> None:
    """Ask the pre-create hook, if there is one, about a new upload; raise if refused."""
    url = current_app.config["PRE_CREATE_HOOK_URL"]
    if not url:
        return
    import requests

    db.session.commit()  # no transaction (on SQLite: no write lock) stays open while it runs
    upload = {"protocol": protocol, "fileName": file_name, **known}
    if "metadata" in upload:
        upload["metadata"] = decode_metadata(upload["metadata"])
    if current_app.config["AUTH_REQUIRED"]:
        upload["owner"] = access.owner_id()
    body = json.dumps({"type": EVENT, "upload": upload}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": f"uploadsvc/{__version__}",
               "Uploadsvc-Event": EVENT}
    secret = current_app.config["HOOK_SECRET"]
    if secret:
        headers[SIGNATURE_HEADER] = sign(str(secret), body)
    try:
        with requests.post(url, data=body, headers=headers, stream=True, allow_redirects=False,
                           timeout=current_app.config["PRE_CREATE_HOOK_TIMEOUT"]) as answer:
            if 200 <= answer.status_code < 300:
                metrics.pre_create_checked("admitted")
                return
            message = _message(answer)
    except requests.RequestException as exc:
        admitted = current_app.config["PRE_CREATE_HOOK_FAIL"] == "open"
        metrics.pre_create_checked("unavailable")
        log.warning("pre-create hook %s did not answer (%s): upload %s", url,
                    type(exc).__name__, "admitted" if admitted else "refused")
        if admitted:
            return
        raise PreCreateUnavailable() from None
    metrics.pre_create_checked("refused")
    log.info("pre-create hook refused an upload of %r (HTTP %d)", file_name, answer.status_code)
    raise UploadRefused(message)


def _message(answer: "requests.Response") -> str | None:
    """The refusal's message for a person: the answer's JSON "message", or its text."""
    raw = answer.raw.read(MAX_ANSWER, decode_content=True) or b""
    text = raw.decode("utf-8", "replace").strip()
    if "json" in answer.headers.get("Content-Type", ""):
        try:
            found = json.loads(text)
        except ValueError:
            found = None
        text = found.get("message") if isinstance(found, dict) else None
        if not isinstance(text, str):
            return None
    elif not answer.headers.get("Content-Type", "").startswith("text/plain"):
        return None
    # One line of printable text: it goes into a JSON answer and maybe a log.
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:MAX_MESSAGE] or None

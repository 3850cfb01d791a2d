"""Prometheus metrics of uploads, counted where things happen (served by http.metrics).

Under gunicorn each worker is a process of its own. With PROMETHEUS_MULTIPROC_DIR set (by
gunicorn.conf.py) prometheus_client has every process write its values to files there, and
/metrics adds them up, so whichever worker answers reports the whole server.

Each upload metric is counted twice: in its family, which keeps its name and labels (the
dashboards and alerts of before read them), and by the upload's protocol in a twin named
uploadsvc_protocol_... (one family cannot hold a series without the label beside series
with it); the twin's series, summed over protocol, are the family's.
"""
import os

from prometheus_client import Counter, Histogram

from ..core.models import API, IETF, TUS

# prometheus_client decides at import whether values live in files; decide alike.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:  # the metrics below open their files there as they are defined
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
PROTOCOLS = (API, TUS, IETF)
CHUNK_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
MERGE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

BYTES_RECEIVED = Counter("uploadsvc_bytes_received", "Bytes stored (chunks, tus PATCH bodies).")
UPLOADS_CREATED = Counter("uploadsvc_uploads_created", "Uploads started.")
UPLOADS_COMPLETED = Counter("uploadsvc_uploads_completed",
                            "Uploads completed (merged and verified, or from a stored copy).")
UPLOADS_FAILED = Counter("uploadsvc_uploads_failed",
                         "Completions refused because the merged file failed MD5 verification.")
UPLOADS_REMOVED = Counter("uploadsvc_uploads_removed", "Uploads deleted or expired.", ["reason"])
CHUNK_WRITE_SECONDS = Histogram(
    "uploadsvc_chunk_write_seconds", "Time to store a chunk durably (lock, write, fsync, row).",
    buckets=CHUNK_WRITE_BUCKETS)
MERGE_SECONDS = Histogram(
    "uploadsvc_merge_seconds", "Time to merge, hash and place a completed upload.",
    buckets=MERGE_BUCKETS)

PROTOCOL_BYTES_RECEIVED = Counter(
    "uploadsvc_protocol_bytes_received",
    "Bytes stored (/api chunks, tus and draft PATCH and POST bodies), by protocol.", ["protocol"])
PROTOCOL_UPLOADS_CREATED = Counter("uploadsvc_protocol_uploads_created",
                                   "Uploads started, by protocol.", ["protocol"])
PROTOCOL_UPLOADS_COMPLETED = Counter("uploadsvc_protocol_uploads_completed",
                                     "Uploads completed, by protocol.", ["protocol"])
PROTOCOL_UPLOADS_FAILED = Counter(
    "uploadsvc_protocol_uploads_failed",
    "Completions refused because the whole upload failed its check (the /api MD5 and size, "
    "the draft's Repr-Digest), by protocol.", ["protocol"])
PROTOCOL_UPLOADS_REMOVED = Counter("uploadsvc_protocol_uploads_removed",
                                   "Uploads removed, by protocol and reason.",
                                   ["protocol", "reason"])
PROTOCOL_CHUNK_WRITE_SECONDS = Histogram(
    "uploadsvc_protocol_chunk_write_seconds",
    "Time to store a chunk or a PATCH body durably (lock, write, fsync, row), by protocol.",
    ["protocol"], buckets=CHUNK_WRITE_BUCKETS)
PROTOCOL_MERGE_SECONDS = Histogram(
    "uploadsvc_protocol_merge_seconds",
    "Time to merge, hash and place a completed upload, by protocol (only /api merges).",
    ["protocol"], buckets=MERGE_BUCKETS)
# Each protocol's series exist from the start, at 0, so that rate() and absent() find them
# before its first upload; only where the protocol can count at all (tus has no check of a
# whole upload; only /api uploads are merged). Reasons of removal are not known in advance.
for _protocol in PROTOCOLS:
    for _family in (PROTOCOL_BYTES_RECEIVED, PROTOCOL_UPLOADS_CREATED,
                    PROTOCOL_UPLOADS_COMPLETED, PROTOCOL_CHUNK_WRITE_SECONDS):
        _family.labels(_protocol)
for _protocol in (API, IETF):
    PROTOCOL_UPLOADS_FAILED.labels(_protocol)
PROTOCOL_MERGE_SECONDS.labels(API)

HOOK_DELIVERIES = Counter(
    "uploadsvc_hook_deliveries",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, to be retried), "
    "failed (given up after HOOK_RETRY_FOR).", ["outcome"])
HOOK_RETRIES = Counter("uploadsvc_hook_retries",
                       "Webhook delivery attempts that repeated an earlier failed one.")
PRE_CREATE_CHECKS = Counter("uploadsvc_pre_create_checks",
                            "Pre-create hook answers: admitted, refused, unavailable.",
                            ["outcome"])


# -- what the service reports (protocol: the upload's, as its row says) -----------------------


def upload_created(protocol: str) -> None:
    UPLOADS_CREATED.inc()
    PROTOCOL_UPLOADS_CREATED.labels(protocol).inc()


def chunk_stored(protocol: str, size: int, seconds: float) -> None:
    BYTES_RECEIVED.inc(size)
    PROTOCOL_BYTES_RECEIVED.labels(protocol).inc(size)
    CHUNK_WRITE_SECONDS.observe(seconds)
    PROTOCOL_CHUNK_WRITE_SECONDS.labels(protocol).observe(seconds)


def merged(protocol: str, seconds: float) -> None:
    MERGE_SECONDS.observe(seconds)
    PROTOCOL_MERGE_SECONDS.labels(protocol).observe(seconds)


def upload_completed(protocol: str) -> None:
    UPLOADS_COMPLETED.inc()
    PROTOCOL_UPLOADS_COMPLETED.labels(protocol).inc()


def verification_failed(protocol: str) -> None:
    UPLOADS_FAILED.inc()
    PROTOCOL_UPLOADS_FAILED.labels(protocol).inc()


def upload_removed(protocol: str, reason: str) -> None:
    UPLOADS_REMOVED.labels(reason).inc()
    PROTOCOL_UPLOADS_REMOVED.labels(protocol, reason).inc()


def hook_attempt(outcome: str, retried: bool) -> None:
    HOOK_DELIVERIES.labels(outcome).inc()
    if retried:
        HOOK_RETRIES.inc()


def pre_create_checked(outcome: str) -> None:
    PRE_CREATE_CHECKS.labels(outcome).inc()

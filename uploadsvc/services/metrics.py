"""Prometheus metrics of uploads, counted where things happen (served by http.metrics).

Under gunicorn each worker is a process of its own. With PROMETHEUS_MULTIPROC_DIR set (by
gunicorn.conf.py) prometheus_client has every process write its values to files there, and
/metrics adds them up, so whichever worker answers reports the whole server.
"""
import os

from prometheus_client import Counter, Histogram

# prometheus_client decides at import whether values live in files; decide alike.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:  # the metrics below open their files there as they are defined
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
BYTES_RECEIVED = Counter("uploadsvc_bytes_received", "Bytes stored (chunks, tus PATCH bodies).")
UPLOADS_CREATED = Counter("uploadsvc_uploads_created", "Uploads started.")
UPLOADS_COMPLETED = Counter("uploadsvc_uploads_completed",
                            "Uploads completed (merged and verified, or from a stored copy).")
UPLOADS_FAILED = Counter("uploadsvc_uploads_failed",
                         "Completions refused because the merged file failed MD5 verification.")
UPLOADS_REMOVED = Counter("uploadsvc_uploads_removed", "Uploads deleted or expired.", ["reason"])
CHUNK_WRITE_SECONDS = Histogram(
    "uploadsvc_chunk_write_seconds", "Time to store a chunk durably (lock, write, fsync, row).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
HOOK_DELIVERIES = Counter(
    "uploadsvc_hook_deliveries",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, to be retried), "
    "failed (given up after HOOK_RETRY_FOR).", ["outcome"])
HOOK_RETRIES = Counter("uploadsvc_hook_retries",
                       "Webhook delivery attempts that repeated an earlier failed one.")
PRE_CREATE_CHECKS = Counter("uploadsvc_pre_create_checks",
                            "Pre-create hook answers: admitted, refused, unavailable.",
                            ["outcome"])
MERGE_SECONDS = Histogram(
    "uploadsvc_merge_seconds", "Time to merge, hash and place a completed upload.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))


# -- what the service reports ---------------------------------------------------------------


def upload_created() -> None:
    UPLOADS_CREATED.inc()


def chunk_stored(size: int, seconds: float) -> None:
    BYTES_RECEIVED.inc(size)
    CHUNK_WRITE_SECONDS.observe(seconds)


def merged(seconds: float) -> None:
    MERGE_SECONDS.observe(seconds)


def upload_completed() -> None:
    UPLOADS_COMPLETED.inc()


def verification_failed() -> None:
    UPLOADS_FAILED.inc()


def upload_removed(reason: str) -> None:
    UPLOADS_REMOVED.labels(reason).inc()


def hook_attempt(outcome: str, retried: bool) -> None:
    HOOK_DELIVERIES.labels(outcome).inc()
    if retried:
        HOOK_RETRIES.inc()


def pre_create_checked(outcome: str) -> None:
    PRE_CREATE_CHECKS.labels(outcome).inc()

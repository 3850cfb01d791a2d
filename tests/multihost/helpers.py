"""What the multi-host tests share: the hosts' settings, the bucket as the tests read it,
and requests of the seed API and tus sent to any host."""
import hashlib
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import requests

from ..cluster import Cluster
from ..helpers import TestFile
from ..live import sql
from ..resumable_helpers import PARTIAL, draft
from ..seaweedfs import BUCKET
from ..tus_helpers import TUS, metadata

KiB = 1024
MiB = 1024 * KiB
LEASE_SECONDS = 2
# Short leases, so that what a killed host held is free again within seconds; a short
# timeout for the object store, so that it answers 503 soon while the store is stopped.
# The most parts of one multipart upload, S3's 10,000 lowered so that joins in rounds take
# a few chunks of 5 MiB, not 10,001 of them.
MAX_PARTS = 3
# Behind nginx, as deploy/uploadsvc.service: no 104 (docs/resumable.md).
ENV = {"UPLOADSVC_LEASE_SECONDS": str(LEASE_SECONDS), "UPLOADSVC_S3_TIMEOUT": "2",
       "UPLOADSVC_LOCK_WAIT_SECONDS": "10", "UPLOADSVC_S3_MAX_PARTS": str(MAX_PARTS),
       "UPLOADSVC_RESUMABLE_INTERIM": "false"}
# How long a client carries on retrying what a host answered "try again" (409, 423, 502,
# 503) or a dead host did not answer, before the test fails.
RETRY_FOR = 30


class Bucket:
    """What the hosts keep in the bucket, under their prefix."""

    def __init__(self, client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def keys(self, under: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=self.prefix + under)
        return sorted(item["Key"][len(self.prefix):] for page in pages
                      for item in page.get("Contents", []))

    def multipart_uploads(self) -> list[str]:
        found = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=self.prefix)
        return sorted(item["Key"][len(self.prefix):] for item in found.get("Uploads", []))

    def published(self, stem: str) -> list[str]:
        """Finished files whose stored name starts with stem."""
        return self.keys(f"uploads/{stem}")


def new_file(size: int, chunk_size: int, tag: str) -> TestFile:
    """Random bytes under a name no other test uses (its stem is the name less .bin)."""
    return TestFile(os.urandom(size), chunk_size, f"{tag}-{uuid.uuid4().hex[:8]}.bin")


def stem(f: TestFile) -> str:
    return f.name.removesuffix(".bin")


# -- the seed API, as the upload page and the command-line client send it --


def fields(f: TestFile, index: int) -> dict:
    return {"chunkIndex": str(index), "md5": f.md5, "fileName": f.name,
            "totalChunks": str(f.total)}


def send_chunk(base: str, f: TestFile, index: int, session=None) -> requests.Response:
    """One chunk as multipart/form-data: the fields, then the file part named chunk."""
    return (session or requests).post(f"{base}/api/upload-chunk", data=fields(f, index),
                                      files={"chunk": ("blob", f.chunk(index))}, timeout=60)


def check_chunks(base: str, f: TestFile, **overrides) -> requests.Response:
    return requests.post(f"{base}/api/check-chunks", json=f.ident(**overrides), timeout=60)


def complete(base: str, f: TestFile, timeout: float = 120) -> requests.Response:
    return requests.post(f"{base}/api/complete-upload", json=f.ident(), timeout=timeout)


def status(base: str, f: TestFile) -> requests.Response:
    return requests.get(f"{base}/api/upload-status/{f.md5}/{quote(f.name)}", timeout=30)


def retrying(call, wanted: int = 200) -> requests.Response:
    """call() again while the service says "try again" (409 merge_in_progress, 423, 502 from
    nginx for a host that died under it, 503) or a host it named is gone, as clients do."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            response = call()
            if response.status_code == wanted or response.status_code not in (409, 423, 502,
                                                                                 503):
                return response
            if response.status_code == 409 and response.json().get("error") not in (
                    "merge_in_progress", "upload_locked"):
                return response
        except requests.ConnectionError:
            response = None
        assert time.monotonic() < deadline, f"still not {wanted}: {response and response.text}"
        time.sleep(0.2)


def send_all(cluster: Cluster, f: TestFile, order=None, in_flight: int = 3) -> list[int]:
    """Send the chunks (in order's order) through nginx, in_flight at a time, each thread
    on its own kept-open connection, as the page sends them; which host stored each."""
    local = threading.local()

    def send(index: int) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = retrying(lambda: send_chunk(cluster.url, f, index, local.session))
        assert response.status_code == 200, response.text
        assert response.json()["chunkIndex"] == index
        return cluster.host_of(response)

    with ThreadPoolExecutor(in_flight) as pool:
        return list(pool.map(send, range(f.total) if order is None else order))


def assert_served_everywhere(cluster: Cluster, path: str, data: bytes) -> None:
    """Every host, and nginx, serves the finished file's bytes at path, and a Range."""
    for base in [cluster.url, *(host.url for host in cluster.hosts)]:
        whole = requests.get(base + path, timeout=60)
        assert whole.status_code == 200 and whole.content == data, base
        if len(data) > 2:
            start, end = len(data) // 3, len(data) // 3 + len(data) // 4
            part = requests.get(base + path, headers={"Range": f"bytes={start}-{end}"},
                                timeout=60)
            assert part.status_code == 206 and part.content == data[start:end + 1], base


def upload_key(cluster: Cluster, f: TestFile) -> str:
    rows = sql(cluster.database_url, "SELECT `key` FROM uploads WHERE md5 = :md5 AND "
               "file_name = :name", md5=f.md5, name=f.name)
    assert len(rows) == 1, rows
    return rows[0][0]


def completed_events(cluster: Cluster, key: str) -> int:
    return sql(cluster.database_url, "SELECT COUNT(*) FROM upload_events WHERE upload_key = "
               ":key AND kind = 'completed'", key=key)[0][0]


def leases(cluster: Cluster, key: str) -> list[tuple]:
    """(name, kind) of the leases held now on the upload's locks."""
    return sql(cluster.database_url, "SELECT name, kind FROM leases WHERE name LIKE :key "
               "AND holder <> ''", key=f"{key}%")  # (a name's gate row holds nothing)


def wait_for(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)
    return found



# -- tus --


def tus_create(base: str, length: int, name: str) -> str:
    created = requests.post(base + "/files/", timeout=30, headers={
        **TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(filename=name)})
    assert created.status_code == 201, created.text
    return urlsplit(created.headers["Location"]).path


def tus_patch(base: str, path: str, offset: int, body: bytes) -> requests.Response:
    return requests.patch(base + path, data=body, timeout=60, headers={
        **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})


def tus_offset(base: str, path: str) -> int:
    answer = requests.head(base + path, headers=TUS, timeout=30)
    assert answer.status_code == 200, answer.headers
    return int(answer.headers["Upload-Offset"])


def tus_finished(cluster: Cluster, path: str, data: bytes) -> None:
    """Every host says the upload is whole, with its md5, and serves its bytes."""
    for host in cluster.hosts:
        answer = requests.head(host.url + path, headers=TUS, timeout=30)
        assert answer.headers["Upload-Offset"] == str(len(data))
        assert answer.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert_served_everywhere(cluster, answer.headers["Upload-Path"], data)



# -- the IETF draft --


def draft_append(base: str, path: str, offset: int, body: bytes,
                 complete: bool = False) -> requests.Response:
    return requests.patch(base + path, data=body, timeout=60, headers=draft(
        9, Upload_Offset=str(offset), Upload_Complete="?1" if complete else "?0",
        Content_Type=PARTIAL))


def draft_offset(base: str, path: str) -> int:
    answer = requests.head(base + path, headers=draft(9), timeout=30)
    assert answer.status_code == 204, answer.headers
    return int(answer.headers["Upload-Offset"])


def quietly(call):
    """call(), or None if its host died under it."""
    try:
        return call()
    except requests.ConnectionError:
        return None

"""One upload across three app hosts: bytes in the bucket (SeaweedFS), state in MariaDB,
every request to whichever host nginx picks in turn (no sticky sessions), or to the host a
test names. Hosts die (SIGKILL), race each other and lose the object store for a while;
every test checks the bytes that end up published."""
import hashlib
import os
import random
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import pytest
import requests
from tusclient import client as tus_client

from .browser_page import drive
from .cluster import Cluster
from .helpers import TestFile
from .live import at_once, sql
from .seaweedfs import BUCKET
from .servers import BIN
from .tus_helpers import TUS, metadata

KiB = 1024
MiB = 1024 * KiB
LEASE_SECONDS = 2
# Short leases, so that what a killed host held is free again within seconds; a short
# timeout for the object store, so that it answers 503 soon while the store is stopped.
# The most parts of one multipart upload, S3's 10,000 lowered so that joins in rounds take
# a few chunks of 5 MiB, not 10,001 of them.
MAX_PARTS = 3
ENV = {"UPLOADSVC_LEASE_SECONDS": str(LEASE_SECONDS), "UPLOADSVC_S3_TIMEOUT": "2",
       "UPLOADSVC_LOCK_WAIT_SECONDS": "10", "UPLOADSVC_S3_MAX_PARTS": str(MAX_PARTS)}
# How long a client carries on retrying what a host answered "try again" (409, 423, 502,
# 503) or a dead host did not answer, before the test fails.
RETRY_FOR = 30


@pytest.fixture(scope="module")
def cluster(mariadb, s3_env, tmp_path_factory):
    """Three hosts (2 workers each) started at once on a new database, which each migrates
    as it starts, behind nginx; the session's bucket under a prefix of their own."""
    url = mariadb.create_database("multihost")
    storage = f"s3://{BUCKET}/multihost-{uuid.uuid4().hex[:8]}"
    with Cluster(tmp_path_factory.mktemp("cluster"), url, storage, ENV) as running:
        yield running


@pytest.fixture(scope="module")
def bucket(cluster, s3_env):
    return Bucket(s3_env.client(), urlsplit(cluster.storage_url).path.strip("/") + "/")


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


# -- the tests --


def test_the_hosts_migrated_one_database_at_once(cluster):
    """Three `flask db upgrade`s ran together as the hosts started: one schema, at the head."""
    versions = sql(cluster.database_url, "SELECT version_num FROM alembic_version")
    assert len(versions) == 1
    for host in cluster.hosts:
        assert requests.get(host.url + "/api/health", timeout=10).json()["status"] == "ok"


# Chunk sizes: the smallest S3 part (5 MiB), one byte short of it, and either side; each
# file has a short last chunk.
@pytest.mark.parametrize("chunk_size, chunks", [
    (256 * KiB, 6), (1 * MiB, 4), (5 * MiB - 1, 3), (5 * MiB, 3), (8 * MiB, 3)],
    ids=["256KiB", "1MiB", "5MiB-1", "5MiB", "8MiB"])
def test_chunks_spread_over_the_hosts_in_random_order(cluster, bucket, chunk_size, chunks):
    f = new_file((chunks - 1) * chunk_size + chunk_size // 3 + 1, chunk_size, "spread")
    order = list(range(f.total))
    random.shuffle(order)
    assert check_chunks(cluster.url, f).json()["uploadedChunks"] == []
    hosts = send_all(cluster, f, order)
    assert set(hosts) == {0, 1, 2}  # round robin: every host stored some of them
    answer = check_chunks(cluster.url, f).json()
    assert answer["uploadedChunks"] == list(range(f.total)) and answer["progress"] == 100
    done = complete(cluster.url, f)
    assert done.status_code == 200, done.text
    assert done.json()["md5"] == f.md5 and done.json()["size"] == len(f.data)
    assert_served_everywhere(cluster, done.json()["path"], f.data)
    assert bucket.published(stem(f)) == [done.json()["path"].removeprefix("/")]


@pytest.mark.parametrize("size", [0, 1000], ids=["zero-byte", "one-chunk"])
def test_a_one_chunk_file_through_any_host(cluster, size):
    f = new_file(size, 1 * MiB, "single")
    assert f.total == 1
    stored = send_chunk(cluster.hosts[0].url, f, 0)
    assert stored.status_code == 200 and stored.json()["progress"] == 100
    done = complete(cluster.hosts[1].url, f)
    assert done.status_code == 200, done.text
    assert (done.json()["md5"], done.json()["size"]) == (f.md5, size)
    assert_served_everywhere(cluster, done.json()["path"], f.data)


def test_a_zero_byte_file_as_the_pages_send_it(cluster):
    """totalChunks 0: check-chunks on one host, complete-upload on another."""
    f = new_file(0, 1 * MiB, "empty")
    answer = check_chunks(cluster.hosts[0].url, f, totalChunks=0).json()
    assert (answer["uploadedChunks"], answer["progress"]) == ([], 100)
    done = requests.post(f"{cluster.hosts[1].url}/api/complete-upload", timeout=60,
                         json=f.ident(totalChunks=0))
    assert done.status_code == 200 and done.json()["size"] == 0, done.text
    assert requests.get(cluster.hosts[2].url + done.json()["path"], timeout=30).content == b""


def test_more_pieces_than_a_multipart_upload_may_have_parts(cluster, bucket):
    """Chunks of 5 MiB or more become parts copied by the store; with more of them than a
    multipart upload may have parts (S3's 10,000, lowered to MAX_PARTS for the hosts here,
    so that it takes seconds), completion joins them in rounds."""
    f = new_file((3 * MAX_PARTS + 1) * 5 * MiB - 1000, 5 * MiB, "rounds")
    assert f.total > 3 * MAX_PARTS
    order = random.sample(range(f.total), f.total)
    assert set(send_all(cluster, f, order)) == {0, 1, 2}
    done = complete(cluster.hosts[1].url, f)
    assert done.status_code == 200, done.text
    assert done.json()["md5"] == f.md5
    assert_served_everywhere(cluster, done.json()["path"], f.data)
    assert bucket.multipart_uploads() == []


def test_a_thousand_small_chunks_listed_in_pages(cluster, bucket):
    """1,050 chunks of 16 bytes: more chunk objects than one listing page holds (1,000),
    stored, found and read back to be joined. (10,050 of them, more than S3 allows parts,
    take about 200 s here, and are joined the same way.)"""
    f = new_file(1_050 * 16 - 5, 16, "many")
    assert f.total == 1_050
    hosts = send_all(cluster, f, in_flight=8)
    assert set(hosts) == {0, 1, 2}
    answer = check_chunks(cluster.hosts[2].url, f).json()
    assert answer["uploadedChunks"] == list(range(f.total))
    done = complete(cluster.url, f)
    assert done.status_code == 200, done.text
    assert done.json()["md5"] == f.md5
    served = requests.get(cluster.hosts[0].url + done.json()["path"], timeout=60)
    assert served.content == f.data
    assert bucket.published(stem(f)) == [done.json()["path"].removeprefix("/")]


def test_a_host_that_stored_nothing_knows_the_upload(cluster):
    f = new_file(5 * 100 * KiB, 100 * KiB, "elsewhere")
    for index in (0, 3):
        assert send_chunk(cluster.hosts[0].url, f, index).status_code == 200
    assert send_chunk(cluster.hosts[1].url, f, 1).status_code == 200
    other = cluster.hosts[2].url
    assert check_chunks(other, f).json()["uploadedChunks"] == [0, 1, 3]
    seen = status(other, f).json()
    assert (seen["uploaded"], seen["total"], seen["status"]) == (3, 5, "uploading")
    missing = complete(other, f)
    assert missing.status_code == 400 and missing.json()["missingChunks"] == [2, 4]
    for index in (2, 4):
        assert send_chunk(cluster.hosts[1].url, f, index).status_code == 200
    done = complete(other, f)
    assert done.status_code == 200 and done.json()["md5"] == f.md5
    assert status(cluster.hosts[0].url, f).json()["status"] == "completed"


def test_the_same_chunk_on_two_hosts_at_once(cluster, bucket):
    f = new_file(3 * 5 * MiB - 1000, 5 * MiB, "twice")
    answers = at_once([lambda host=host: send_chunk(host.url, f, 1)
                       for host in cluster.hosts[:2]])
    for answer in answers:  # both stored it, or one was told to try again (and does)
        assert answer.status_code in (200, 409), answer.text
        if answer.status_code == 409:
            assert answer.json()["error"] == "merge_in_progress"
    assert 200 in [answer.status_code for answer in answers]
    assert check_chunks(cluster.hosts[2].url, f).json()["uploadedChunks"] == [1]
    send_all(cluster, f, [0, 2])
    done = complete(cluster.url, f)
    assert done.status_code == 200 and done.json()["md5"] == f.md5
    assert_served_everywhere(cluster, done.json()["path"], f.data)


def test_concurrent_completes_on_every_host_merge_once(cluster, bucket):
    f = new_file(12 * MiB + 17, 1 * MiB, "race")
    order = list(range(f.total))
    random.shuffle(order)  # out of order: completion reads every byte back to hash it
    send_all(cluster, f, order)
    answers = at_once([lambda host=host: complete(host.url, f) for host in cluster.hosts])
    done = [answer.json() for answer in answers if answer.status_code == 200]
    others = [answer for answer in answers if answer.status_code != 200]
    assert done, [answer.text for answer in answers]
    assert all(answer.status_code == 409 and answer.json()["error"] == "merge_in_progress"
               for answer in others), [answer.text for answer in others]
    # Those told to try again do, and are answered the same success.
    done += [retrying(lambda: complete(cluster.url, f)).json() for _ in others]
    assert {(a["md5"], a["size"], a["path"]) for a in done} == {
        (f.md5, len(f.data), done[0]["path"])}
    assert bucket.published(stem(f)) == [done[0]["path"].removeprefix("/")]
    assert completed_events(cluster, upload_key(cluster, f)) == 1
    assert_served_everywhere(cluster, done[0]["path"], f.data)


def test_an_md5_mismatch_publishes_nothing(cluster, bucket):
    f = new_file(3 * MiB + 5, 1 * MiB, "mismatch")
    sent = f.data[:-1] + bytes([f.data[-1] ^ 1])  # not the bytes the md5 names
    for index in range(f.total):
        answer = requests.post(f"{cluster.hosts[index % 3].url}/api/upload-chunk",
                               data=fields(f, index), timeout=60, files={
                                   "chunk": ("blob", sent[index * MiB:(index + 1) * MiB])})
        assert answer.status_code == 200, answer.text
    answer = complete(cluster.url, f)
    assert answer.status_code == 422 and answer.json()["error"] == "md5_mismatch", answer.text
    assert bucket.published(stem(f)) == []
    assert status(cluster.hosts[0].url, f).json()["status"] == "uploading"


def test_instant_upload_of_a_known_file_through_another_host(cluster):
    f = new_file(2 * MiB + 3, 1 * MiB, "known")
    for index in range(f.total):
        assert send_chunk(cluster.hosts[0].url, f, index).status_code == 200
    first = complete(cluster.hosts[0].url, f)
    assert first.status_code == 200
    again = TestFile(f.data, f.chunk_size, f"again-{f.name}")
    answer = check_chunks(cluster.hosts[1].url, again).json()
    assert answer["instantUpload"] is True and answer["completed"] is True
    assert answer["uploadedChunks"] == list(range(f.total)) and answer["progress"] == 100
    assert answer["path"] != first.json()["path"]
    assert_served_everywhere(cluster, answer["path"], f.data)


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


def test_tus_patches_alternate_between_hosts(cluster):
    data = os.urandom(7 * MiB + 333)
    a, b, c = (host.url for host in cluster.hosts)
    path = tus_create(c, len(data), f"alternate-{uuid.uuid4().hex[:8]}.bin")
    offset = 0
    for n, size in enumerate((1, 5 * MiB - 1, 17, 256 * KiB, 777 * KiB)):
        answer = tus_patch((a, b)[n % 2], path, offset, data[offset:offset + size])
        assert offset + size < len(data)
        assert answer.status_code == 204, answer.text
        offset += size
        assert tus_offset(c, path) == offset
    assert tus_patch(b, path, offset, data[offset:]).status_code == 204
    tus_finished(cluster, path, data)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_tuspy_through_the_load_balancer(cluster, tmp_path):
    """tuspy's PATCHes go to each host in turn."""
    data = os.urandom(2 * MiB + 99)
    source = tmp_path / "tuspy.bin"
    source.write_bytes(data)
    uploader = tus_client.TusClient(cluster.url + "/files/").uploader(
        str(source), chunk_size=256 * KiB, metadata={"filename": "tuspy.bin"})
    uploader.upload()
    tus_finished(cluster, urlsplit(uploader.url).path, data)


def test_two_patches_at_one_offset_on_two_hosts(cluster):
    data = os.urandom(8 * MiB)
    half = len(data) // 2
    path = tus_create(cluster.url, len(data), f"same-offset-{uuid.uuid4().hex[:8]}.bin")
    answers = at_once([lambda host=host: tus_patch(host.url, path, 0, data[:half])
                       for host in cluster.hosts[:2]])
    codes = sorted(answer.status_code for answer in answers)
    assert codes[0] == 204 and codes[1] in (409, 423), [a.text for a in answers]
    for host in cluster.hosts:
        assert tus_offset(host.url, path) == half
    assert tus_patch(cluster.hosts[2].url, path, half, data[half:]).status_code == 204
    tus_finished(cluster, path, data)


# -- hosts that die --


def test_a_host_killed_mid_chunk(cluster, s3_env):
    """A host dies while it writes a chunk to the store, holding the chunk's lease (the
    store is held still until then, so that the host is caught there); the client sends the
    chunk again through the others, which store it once the dead host's lease expires."""
    f = new_file(4 * MiB - 100, 1 * MiB, "killed-chunk")
    send_all(cluster, f, [0, 1, 3])
    key = upload_key(cluster, f)
    s3_env.pause()
    try:
        writing = threading.Thread(target=quietly, args=(
            lambda: send_chunk(cluster.hosts[0].url, f, 2),))
        writing.start()
        wait_for(lambda: leases(cluster, key), "a lease on the chunk being written")
        cluster.kill(0)
        writing.join()
    finally:
        s3_env.resume()
    try:
        send_all(cluster, f, [2])
        # Acknowledged is stored, wherever the dead host's copy was.
        assert check_chunks(cluster.url, f).json()["uploadedChunks"] == [0, 1, 2, 3]
        done = retrying(lambda: complete(cluster.url, f))
        assert done.status_code == 200 and done.json()["md5"] == f.md5, done.text
    finally:
        cluster.restart(0)
    assert_served_everywhere(cluster, done.json()["path"], f.data)


def test_a_host_killed_mid_complete(cluster, bucket, s3_env):
    """A host dies while it merges (the store held still once its merge has begun, so
    that it dies inside the merge, whatever step it is at); completion on the others waits
    for its lease to expire and merges once."""
    f = new_file(24 * MiB + 5, 1 * MiB, "killed-complete")
    order = list(range(f.total))
    random.shuffle(order)  # out of order: completion reads every byte back to hash it
    send_all(cluster, f, order)
    key = upload_key(cluster, f)
    victim = cluster.hosts[1]
    outcome = []
    merging = threading.Thread(target=lambda: outcome.append(
        quietly(lambda: complete(victim.url, f))))
    merging.start()
    try:
        wait_for(lambda: ("x" in [kind for _, kind in leases(cluster, key)]
                          or outcome), "the merge's exclusive lease")
        s3_env.pause()
        try:
            cluster.kill(1)
        finally:
            s3_env.resume()
    finally:
        merging.join()
    try:
        done = retrying(lambda: complete(cluster.url, f))
        assert done.status_code == 200 and done.json()["md5"] == f.md5, done.text
    finally:
        cluster.restart(1)
    assert bucket.published(stem(f)) == [done.json()["path"].removeprefix("/")]
    assert completed_events(cluster, key) == 1
    assert_served_everywhere(cluster, done.json()["path"], f.data)


def quietly(call):
    """call(), or None if its host died under it."""
    try:
        return call()
    except requests.ConnectionError:
        return None


# -- the object store --


def test_the_object_store_stopped_for_a_moment(cluster, s3_env):
    f = new_file(3 * MiB + 1, 1 * MiB, "paused")
    send_all(cluster, f, [0])
    s3_env.pause()
    try:
        answer = send_chunk(cluster.url, f, 1)
    finally:
        s3_env.resume()
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["error"] == "storage_unavailable"
    send_all(cluster, f, [1, 2, 3])
    done = retrying(lambda: complete(cluster.url, f))
    assert done.status_code == 200 and done.json()["md5"] == f.md5, done.text
    assert_served_everywhere(cluster, done.json()["path"], f.data)


# -- cleanup --


def test_cleanup_on_every_host_at_once_leaves_an_empty_prefix(cluster, bucket):
    """With every upload deleted or expired, cleanup run on the three hosts together leaves
    no object and no multipart upload under the prefix."""
    finished = new_file(2 * MiB + 1, 1 * MiB, "cleanup-done")
    send_all(cluster, finished)
    assert complete(cluster.url, finished).status_code == 200
    unfinished = new_file(3 * MiB, 1 * MiB, "cleanup-left")
    send_all(cluster, unfinished, [0, 2])
    tus_path = tus_create(cluster.url, 3 * MiB, "cleanup-tus.bin")
    assert tus_patch(cluster.url, tus_path, 0, os.urandom(MiB)).status_code == 204
    # Delete every finished upload (their files go too), and every unfinished tus upload.
    rows = sql(cluster.database_url, "SELECT md5, file_name, protocol, `key`, status "
               "FROM uploads")
    for md5, name, protocol, key, state in rows:
        if protocol == "tus":
            answer = requests.delete(f"{cluster.url}/files/{key}", headers=TUS, timeout=60)
            assert answer.status_code == 204, answer.text
        elif state == "completed":
            answer = requests.delete(f"{cluster.url}/api/upload/{md5}/{quote(name)}", timeout=60)
            assert answer.status_code == 200, answer.text
    # Nothing else runs now: whatever no upload owns is debris, however young.
    runs = [cluster.flask(i, "cleanup", "--older-than", "0s",
                          env={"UPLOADSVC_S3_ORPHAN_AGE": "0s"}) for i in range(3)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert sql(cluster.database_url, "SELECT COUNT(*) FROM uploads") == [(0,)]
    assert bucket.keys() == []
    assert bucket.multipart_uploads() == []


# -- the page and the command-line client, as users run them, through the load balancer --

def test_the_command_line_client_through_the_load_balancer(cluster, tmp_path):
    files = []
    for name, size in (("report.bin", 3 * MiB + 17), ("notes.bin", MiB), ("empty.bin", 0)):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        files.append(path)
    result = subprocess.run(
        [str(BIN / "uploadsvc-upload"), *map(str, files), "--chunk-size", "256KiB",
         "--parallel", "3", "--url", cluster.url],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(files), result.stdout
    for path, line in zip(files, lines, strict=True):
        data = path.read_bytes()
        assert line.startswith(f"{path}: /uploads/") and hashlib.md5(data).hexdigest() in line
        assert_served_everywhere(cluster, line.split(": ", 1)[1].split()[0], data)


def test_the_upload_page_through_the_load_balancer(cluster, tmp_path):
    """Chromium on the page, its connection cut part-way: it carries on, whichever host
    each of its chunks and its completion land on."""
    original = tmp_path / "survey-data.bin"
    original.write_bytes(os.urandom(3 * MiB))
    seen = drive("offline", cluster.url, original, 256 * 1024, throttle=MiB,
                 dropName="dropped notes.txt", dropText="dropped on the page\n")
    done = seen["done"]
    assert done["state"] == "done"
    assert done["md5"] == hashlib.md5(original.read_bytes()).hexdigest()
    assert_served_everywhere(cluster, done["path"], original.read_bytes())
    assert seen["dropped"]["state"] == "done"
    assert_served_everywhere(cluster, seen["dropped"]["path"], b"dropped on the page\n")

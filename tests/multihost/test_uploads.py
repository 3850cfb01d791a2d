"""Uploads spread over the hosts, in random order, in many pieces, at once on several hosts,
and tus and IETF draft PATCHes alternating between them; every test checks the bytes that
end up published."""
import os
import random
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client

from ..helpers import TestFile
from ..live import at_once, sql
from .helpers import (
    LEASE_SECONDS,
    MAX_PARTS,
    KiB,
    MiB,
    assert_served_everywhere,
    check_chunks,
    complete,
    completed_events,
    draft_append,
    draft_offset,
    fields,
    new_file,
    retrying,
    send_all,
    send_chunk,
    status,
    stem,
    tus_create,
    tus_finished,
    tus_offset,
    tus_patch,
    upload_key,
)


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


def test_draft_appends_alternate_between_hosts_behind_nginx(cluster):
    """Created through nginx (one answer: nginx would take a 104 for the final one), then
    appended on each host in turn."""
    data = os.urandom(6 * MiB + 5)
    a, b, c = (host.url for host in cluster.hosts)
    with socket.create_connection(("127.0.0.1", urlsplit(cluster.url).port), 10) as sock:
        sock.sendall(b"POST /files/ HTTP/1.1\r\nHost: uploads\r\nContent-Length: 0\r\n"
                     b"Upload-Draft-Interop-Version: 9\r\nUpload-Complete: ?0\r\n"
                     b"Content-Disposition: attachment; filename=alternate-draft.bin\r\n\r\n")
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 201 "), answer
    location = next(line for line in answer.split("\r\n") if line.startswith("Location:"))
    path = urlsplit(location.partition(":")[2].strip()).path
    offset = 0
    for n, size in enumerate((5 * MiB + 1, 17, 256 * KiB)):
        assert draft_append((a, b)[n % 2], path, offset, data[offset:offset + size]
                            ).status_code == 204
        offset += size
        assert draft_offset(c, path) == offset
    done = draft_append(c, path, offset, data[offset:], complete=True)
    assert done.status_code == 201 and done.headers["Upload-Complete"] == "?1"
    assert_served_everywhere(cluster, done.headers["Content-Location"], data)


def test_a_stalled_draft_append_on_one_host_is_ended_by_another(cluster):
    """The HEAD on host b ends host a's stalled request within a moment: not the lock wait
    (10 s), not the body timeout (30 s), and the lease is renewed all the while."""
    data = os.urandom(2 * MiB)
    a, b = (urlsplit(host.url) for host in cluster.hosts[:2])
    created = requests.post(b.geturl() + "/files/", timeout=10, headers={
        "Upload-Draft-Interop-Version": "9", "Upload-Complete": "?0"})
    path = urlsplit(created.headers["Location"]).path
    with socket.create_connection((a.hostname, a.port), 10) as stalled:
        stalled.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: {a.netloc}\r\nContent-Length: {len(data)}\r\n"
            "Upload-Draft-Interop-Version: 9\r\nUpload-Offset: 0\r\nUpload-Complete: ?1\r\n"
            "Content-Type: application/partial-upload\r\n\r\n".encode() + data[:MiB])
        time.sleep(2 * LEASE_SECONDS)  # renewed meanwhile: the lease alone would not end it
        started = time.monotonic()
        offset = draft_offset(b.geturl(), path)
        assert time.monotonic() - started < 5
        assert offset <= MiB
        done = draft_append(b.geturl(), path, offset, data[offset:], complete=True)
        assert done.status_code == 201, done.text
    assert_served_everywhere(cluster, done.headers["Content-Location"], data)

"""Hosts die (SIGKILL) mid-chunk and mid-merge, the object store stops for a while, cleanup
runs on every host at once, and the page and the command-line client go through the load
balancer; every test checks the bytes that end up published."""
import hashlib
import os
import random
import subprocess
import threading
from urllib.parse import quote

import requests

from ..browser_page import drive
from ..live import sql
from ..servers import BIN
from ..tus_helpers import TUS
from .helpers import (
    MiB,
    assert_served_everywhere,
    check_chunks,
    complete,
    completed_events,
    leases,
    new_file,
    quietly,
    retrying,
    send_all,
    send_chunk,
    stem,
    tus_create,
    tus_patch,
    upload_key,
    wait_for,
)

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

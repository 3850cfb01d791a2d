"""Three hosts on Azure Blob Storage (Azurite) and on Google Cloud Storage (the GCS
emulator) instead of S3: chunks and tus PATCHes through every host, a host killed mid-chunk,
the store stopped for a moment, and cleanup on every host at once leaving nothing under the
prefix. Each store's cluster runs its tests in one worker."""
import io
import os
import random
import threading
import uuid
from urllib.parse import quote

import pytest
import requests

from uploadsvc.storage.gcs.client import Client as GCSClient

from ..cluster import Cluster
from ..gcsemulator import BUCKET
from ..live import sql
from ..tus_helpers import TUS
from .helpers import (
    ENV,
    MiB,
    assert_served_everywhere,
    check_chunks,
    complete,
    leases,
    new_file,
    quietly,
    retrying,
    send_all,
    send_chunk,
    tus_create,
    tus_finished,
    tus_offset,
    tus_patch,
    upload_key,
    wait_for,
)


class Stored:
    """What the hosts keep under their prefix of a container or bucket, as names below it."""

    def __init__(self, kind: str, server, prefix: str) -> None:
        self.kind, self.server, self.prefix = kind, server, prefix

    def names(self) -> list[str]:
        if self.kind == "azure":  # blobs of staged blocks only too
            found = self.server.container().list_blobs(name_starts_with=self.prefix,
                                                        include=["uncommittedblobs"])
        else:
            found = GCSClient(BUCKET).client.list_blobs(BUCKET, prefix=self.prefix)
        return sorted(blob.name[len(self.prefix):] for blob in found)

    def leave_debris(self) -> None:
        """What a host that died may leave: a chunk staged on a blob of no upload (Azure),
        an object of a composition never removed (GCS)."""
        key = uuid.uuid4().hex
        if self.kind == "azure":
            blob = self.server.container().get_blob_client(f"{self.prefix}chunks/{key}")
            blob.stage_block(f"a{0:020d}{'0' * 8}", b"orphan")
        else:
            GCSClient(BUCKET).blob(f"{self.prefix}sealed/{key}.join").upload_from_file(
                io.BytesIO(b"orphan"), size=6)


@pytest.fixture(scope="module", params=["azure", "gcs"])
def store(request):
    """The emulator of the store the cluster runs on, its variables set."""
    return request.param, request.getfixturevalue(f"{request.param}_env")


@pytest.fixture(scope="module")
def cluster(store, mariadb, tmp_path_factory):
    kind, server = store
    url = mariadb.create_database(f"multihost_stores_{kind}")
    storage = server.url().replace("app-", f"multihost-{kind}-")
    # One worker a host (what these tests ask of a host, one does), and a store that stops
    # answering is a 503 within a few seconds.
    with Cluster(tmp_path_factory.mktemp("cluster"), url, storage,
                 {**ENV, "UPLOADSVC_S3_TIMEOUT": "1"}, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def stored(store, cluster):
    kind, server = store
    return Stored(kind, server, cluster.storage_url.split("/", 3)[3] + "/")


def test_chunks_and_patches_through_every_host(cluster):
    f = new_file(3 * MiB + 77, 1 * MiB, "spread")
    order = list(range(f.total))
    random.shuffle(order)
    assert set(send_all(cluster, f, order)) == {0, 1, 2}
    done = complete(cluster.url, f)
    assert done.status_code == 200 and done.json()["md5"] == f.md5, done.text
    assert_served_everywhere(cluster, done.json()["path"], f.data)
    data = os.urandom(2 * MiB + 333)
    a, b, c = (host.url for host in cluster.hosts)
    path = tus_create(c, len(data), f"alternate-{uuid.uuid4().hex[:8]}.bin")
    offset = 0
    for n, size in enumerate((1, MiB - 1, 17, 256 * 1024)):
        assert tus_patch((a, b)[n % 2], path, offset, data[offset:offset + size]
                         ).status_code == 204
        offset += size
        assert tus_offset(c, path) == offset
    assert tus_patch(b, path, offset, data[offset:]).status_code == 204
    tus_finished(cluster, path, data)


def test_a_host_killed_mid_chunk(cluster, store):
    """A host dies while it writes a chunk to the store, holding the chunk's lease (the
    store is held still until then); the client sends the chunk again through the others,
    which store it once the dead host's lease expires."""
    server = store[1]
    f = new_file(4 * MiB - 100, 1 * MiB, "killed-chunk")
    send_all(cluster, f, [0, 1, 3])
    key = upload_key(cluster, f)
    server.pause()
    try:
        writing = threading.Thread(target=quietly, args=(
            lambda: send_chunk(cluster.hosts[0].url, f, 2),))
        writing.start()
        wait_for(lambda: leases(cluster, key), "a lease on the chunk being written")
        cluster.kill(0)
        writing.join()
    finally:
        server.resume()
    try:
        send_all(cluster, f, [2])
        assert check_chunks(cluster.url, f).json()["uploadedChunks"] == [0, 1, 2, 3]
        done = retrying(lambda: complete(cluster.url, f))
        assert done.status_code == 200 and done.json()["md5"] == f.md5, done.text
    finally:
        cluster.restart(0)
    assert_served_everywhere(cluster, done.json()["path"], f.data)


def test_the_store_stopped_for_a_moment(cluster, store):
    server = store[1]
    f = new_file(3 * MiB + 1, 1 * MiB, "paused")
    send_all(cluster, f, [0])
    server.pause()
    try:
        answer = send_chunk(cluster.url, f, 1)
    finally:
        server.resume()
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["error"] == "storage_unavailable"
    send_all(cluster, f, [1, 2, 3])
    done = retrying(lambda: complete(cluster.url, f))
    assert done.status_code == 200 and done.json()["md5"] == f.md5, done.text
    assert_served_everywhere(cluster, done.json()["path"], f.data)


def test_cleanup_on_every_host_at_once_leaves_nothing(cluster, stored):
    """With every upload deleted or expired, cleanup run on the three hosts together leaves
    nothing under the prefix: no blob of staged blocks, no leftover of a composition."""
    finished = new_file(2 * MiB + 1, 1 * MiB, "cleanup-done")
    send_all(cluster, finished)
    assert complete(cluster.url, finished).status_code == 200
    unfinished = new_file(3 * MiB, 1 * MiB, "cleanup-left")
    send_all(cluster, unfinished, [0, 2])
    tus_path = tus_create(cluster.url, 3 * MiB, "cleanup-tus.bin")
    assert tus_patch(cluster.url, tus_path, 0, os.urandom(MiB)).status_code == 204
    stored.leave_debris()
    rows = sql(cluster.database_url, "SELECT md5, file_name, protocol, `key`, status "
               "FROM uploads")
    for md5, name, protocol, key, state in rows:
        if protocol == "tus":
            answer = requests.delete(f"{cluster.url}/files/{key}", headers=TUS, timeout=60)
            assert answer.status_code == 204, answer.text
        elif state == "completed":
            answer = requests.delete(f"{cluster.url}/api/upload/{md5}/{quote(name)}",
                                     timeout=60)
            assert answer.status_code == 200, answer.text
    assert stored.names()  # the unfinished upload, the debris
    runs = [cluster.flask(i, "cleanup", "--older-than", "0s",
                          env={"UPLOADSVC_S3_ORPHAN_AGE": "0s"}) for i in range(3)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert sql(cluster.database_url, "SELECT COUNT(*) FROM uploads") == [(0,)]
    assert stored.names() == []

"""compose.yaml with docker-compose against podman: the default server on SQLite and its
volume, then the scale-out profile (MariaDB, SeaweedFS, three replicas behind nginx), with a
replica killed in the middle of an upload; one compose project for both."""
import subprocess
import time
from pathlib import Path

import pytest
import requests

from ..multihost.helpers import check_chunks, new_file, send_chunk
from .conftest import wait_healthy
from .test_image import CHUNK, until, upload

pytestmark = pytest.mark.xdist_group("containers")

REPLICAS = ("app1", "app2", "app3")
CHUNK_POSTS = '"POST /api/upload-chunk '
# The object and its MD5 as the replicas' own S3 client reads them from the bucket.
READ_BUCKET = """\
import hashlib, sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
key = "uploads/" + sys.argv[1]
print(key, hashlib.md5(s3.get_object(Bucket="uploadsvc", Key=key)["Body"].read()).hexdigest())
"""


def published(compose, variable: str) -> str:
    return f"http://{compose.env[variable]}"


def test_default_is_one_server_on_sqlite_in_its_volume_with_cleanup(compose, tmp_path):
    started = time.monotonic()
    compose("up", "-d")
    url = published(compose, "UPLOADSVC_PUBLISH")
    wait_healthy(url)
    compose.podman.timings["compose: default up"] = round(time.monotonic() - started, 1)
    assert compose.running() == {"uploadsvc"}  # the other profiles' services stay down

    f = new_file(2 * CHUNK + 10, CHUNK, "compose")
    (tmp_path / f.name).write_bytes(f.data)
    assert f"md5 {f.md5}" in upload(tmp_path / f.name, url)
    volume = Path(compose.podman.inspect("volume", f"{compose.name}_data")["Mountpoint"])
    assert (volume / "uploads" / f.name).read_bytes() == f.data
    assert (volume / "uploadsvc.sqlite3").read_bytes()[:16] == b"SQLite format 3\0"

    status, output = compose.one_shot("cleanup")
    assert status == 0 and "removed 0 expired uploads" in output, output
    compose("stop", "uploadsvc")


def test_scaleout_spreads_chunks_over_replicas_and_survives_one_killed(compose, tmp_path):
    started = time.monotonic()
    compose("--profile", "scaleout", "up", "-d", "nginx")
    url = published(compose, "UPLOADSVC_NGINX_PUBLISH")
    # Each replica migrated (one at a time, under the lock) and listens.
    until(lambda: all("Listening at" in compose.logs(app) for app in REPLICAS),
          "the replicas to listen", 180)
    wait_healthy(url)
    compose.podman.timings["compose: scale-out up"] = round(time.monotonic() - started, 1)
    assert {"db", "s3", "nginx", *REPLICAS} <= compose.running()

    # Chunks one after another through nginx until every replica has stored some of them.
    f = new_file(24 * CHUNK, CHUNK, "scaleout")
    assert check_chunks(url, f).status_code == 200
    sent = 0
    while not all(CHUNK_POSTS in compose.logs(replica) for replica in REPLICAS):
        assert sent < 12, "nginx did not pass chunks to every replica in turn"
        assert send_chunk(url, f, sent).status_code == 200
        sent += 1

    # One replica dies (SIGKILL) in the middle of the upload; the client finishes it through
    # nginx, on the replicas left.
    compose.podman("kill", compose.container("app2"))
    (tmp_path / f.name).write_bytes(f.data)
    started = time.monotonic()
    assert f"md5 {f.md5}" in upload(tmp_path / f.name, url)
    compose.podman.timings["compose: upload with a replica killed"] = round(
        time.monotonic() - started, 1)
    assert requests.get(f"{url}/uploads/{f.name}", timeout=60).content == f.data
    in_bucket = compose.podman("exec", compose.container("app1"), "python3", "-c",
                               READ_BUCKET, f.name)
    assert in_bucket.stdout.split() == [f"uploads/{f.name}", f.md5]

    status, output = compose.one_shot("scaleout-cleanup")
    assert status == 0 and "removed 0 expired uploads" in output, output


def test_compose_file_names_images_users_can_replace(compose):
    """Every service of the scale-out profile takes its image from a variable, so that the
    official images (mariadb, chrislusf/seaweedfs, nginx) or a mirror's can be named."""
    config = subprocess.run([*compose.command, "config"], env={
        **compose.env, "MARIADB_IMAGE": "mariadb:11", "SEAWEEDFS_IMAGE": "chrislusf/seaweedfs",
        "NGINX_IMAGE": "nginx:1.27", "UPLOADSVC_IMAGE": "registry.example/uploadsvc:1"},
        capture_output=True, text=True, timeout=60, check=True).stdout
    for image in ("mariadb:11", "chrislusf/seaweedfs", "nginx:1.27",
                  "registry.example/uploadsvc:1"):
        assert f"image: {image}" in config

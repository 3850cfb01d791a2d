"""The session's podman, its images (built once, the base from a cache kept between runs),
the server's container and the one compose project every compose scenario shares."""
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ..servers import free_port
from .compose import Compose
from .podman import CACHE, PROJECT, Podman

APP_IMAGE = "localhost/uploadsvc:test"
# The images of the scale-out profile's other services; users pull the official ones.
STORE_IMAGES = ("mariadb", "nginx", "seaweedfs")


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    engine = Podman(tmp_path_factory.mktemp("podman"))
    yield engine
    engine.reset()
    # What the builds and scenarios took, for docs/testing.md's figures.
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "timings.json").write_text(json.dumps(engine.timings, indent=1))


@pytest.fixture(scope="session")
def builds(podman):
    """The base, then the app's image and (beside it, in a thread) the other services'.
    The thread builds seaweedfs last: by then its Python stage, the same as the app's, is
    in the cache."""
    base = podman.base()
    with ThreadPoolExecutor(1) as pool:
        others = pool.submit(lambda: {
            name: podman.build(f"localhost/uploadsvc-{name}:test",
                               PROJECT / "deploy" / "containers" / name, base)
            for name in STORE_IMAGES})
        app = podman.build(APP_IMAGE, PROJECT, base)
        yield app, others


@pytest.fixture(scope="session")
def app_image(builds) -> str:
    return builds[0]


@pytest.fixture(scope="session")
def store_images(builds) -> dict[str, str]:
    return builds[1].result()


def wait_healthy(url: str, timeout: float = 120) -> dict:
    """GET url/api/health until it answers 200 (the container migrates, then gunicorn)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = requests.get(f"{url}/api/health", timeout=5)
            if answer.status_code == 200:
                return answer.json()
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} did not become healthy"
        time.sleep(0.3)


@pytest.fixture(scope="session")
def compose(podman, app_image, store_images):
    """compose.yaml as one project, its images the session's, its ports on 127.0.0.1."""
    project = Compose(podman, f"uploadsvc-test-{os.getpid()}", {
        "UPLOADSVC_IMAGE": app_image,
        "MARIADB_IMAGE": store_images["mariadb"],
        "SEAWEEDFS_IMAGE": store_images["seaweedfs"],
        "NGINX_IMAGE": store_images["nginx"],
        "UPLOADSVC_PUBLISH": f"127.0.0.1:{free_port()}",
        "UPLOADSVC_NGINX_PUBLISH": f"127.0.0.1:{free_port()}",
        "UPLOADSVC_DB_PASSWORD": secrets.token_hex(8),
        "UPLOADSVC_S3_SECRET": secrets.token_hex(8),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4"})
    yield project
    project.down()

"""The cluster of a test module: three hosts behind nginx, and what they keep in the bucket."""
import uuid
from urllib.parse import urlsplit

import pytest

from ..cluster import Cluster
from ..seaweedfs import BUCKET
from .helpers import ENV, Bucket


@pytest.fixture(scope="module")
def cluster(request, mariadb, s3_env, tmp_path_factory):
    """Three hosts (2 workers each) started at once on a new database, which each migrates
    as it starts, behind nginx; the session's bucket under a prefix of their own."""
    name = request.module.__name__.rpartition(".")[2]
    url = mariadb.create_database(f"multihost_{name}")
    storage = f"s3://{BUCKET}/multihost-{name}-{uuid.uuid4().hex[:8]}"
    with Cluster(tmp_path_factory.mktemp("cluster"), url, storage, ENV) as running:
        yield running


@pytest.fixture(scope="module")
def bucket(cluster, s3_env):
    return Bucket(s3_env.client(), urlsplit(cluster.storage_url).path.strip("/") + "/")

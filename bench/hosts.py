"""The object store workloads: uploadsvc on three hosts behind nginx (round robin, kept-open
connections, bodies streamed through), bytes in SeaweedFS and state in MariaDB, as
docs/scaleout.md deploys it; and the store's own ceiling in the same run, a plain boto3
multipart upload of the same bytes to the same SeaweedFS."""
import io
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from tests.cluster import Cluster
from tests.mariadb import MariaDBServer
from tests.seaweedfs import BUCKET, SeaweedFS

from . import client
from .client import Slice
from .report import MiB, Settings
from .servers import PeakMemory

HOSTS = 3
# Per host: 2 workers of 4 threads (6 workers in all on this 2-core machine).
WORKERS, THREADS = 2, 4
# boto3's parts: the service's own part size (UPLOADSVC_S3_PART_SIZE's default), boto3's
# default 10 threads per file.
CEILING = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=16 * MiB)


class SliceReader(io.RawIOBase):
    """A file's slice as a stream that boto3 reads in parts, not seekable."""

    def __init__(self, data: Slice) -> None:
        self.file = open(data.path, "rb", buffering=0)  # noqa: SIM115 - closed with this
        self.file.seek(data.offset)
        self.left = data.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)[:self.left]
        count = self.file.readinto(view)
        self.left -= count
        return count

    def close(self) -> None:
        self.file.close()
        super().close()


class Workers:
    """Every gunicorn worker of the cluster's hosts, for PeakMemory."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def pids(self) -> list[int]:
        return [pid for host in self.cluster.hosts for pid in host.worker_pids()]


def store_ceiling(weed: SeaweedFS, data: Slice, key: str) -> float:
    """Seconds of boto3's multipart upload of data to the store; the object checked, then
    removed."""
    s3 = weed.client()
    started = time.perf_counter()
    with SliceReader(data) as stream:
        s3.upload_fileobj(stream, BUCKET, key, Config=CEILING)
    seconds = time.perf_counter() - started
    size = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    s3.delete_object(Bucket=BUCKET, Key=key)
    if size != data.size:
        raise RuntimeError(f"the store kept {size} of {data.size} bytes")
    return seconds


def measure_hosts(s: Settings, one: Slice, parts: list[Slice], results) -> None:
    """The seed API (chunks in flight as the page sends them) and tus (one stream per file)
    through nginx before three hosts on the object store, and the store's ceiling."""
    base = s.workdir / "hosts"
    # At the priority of the servers it serves, unlike the tests' own.
    weed = SeaweedFS(base / "seaweedfs", nice=False).start()
    # In /tmp: the server's unix socket path must stay under 108 bytes.
    database = MariaDBServer(Path(tempfile.mkdtemp(prefix="uploadsvc-bench-db-")))
    try:
        database.start()
        results.add("s3_ceiling_one_mib_s", rate(s.size, store_ceiling(weed, one, "ceiling")))
        wall = _concurrently(list(enumerate(parts)), lambda job: store_ceiling(
            weed, job[1], f"ceiling-{job[0]}"))
        results.add("s3_ceiling_many_mib_s", rate(s.concurrent_size * s.concurrency, wall))
        cluster = Cluster(base / "cluster", database.create_database("bench"),
                          f"s3://{BUCKET}/bench", weed.environment(), hosts=HOSTS,
                          workers=WORKERS, threads=THREADS)
        with cluster:
            _measure(cluster.nginx.port, s, one, parts, Workers(cluster), results)
    finally:
        database.stop()
        shutil.rmtree(database.base_dir, ignore_errors=True)
        weed.stop()


def _measure(port: int, s: Settings, one: Slice, parts: list[Slice], workers: Workers,
             results) -> None:
    def seed(data: Slice, name: str) -> None:
        client.seed_upload(port, data, s.chunk, name, in_flight=s.in_flight)
        client.seed_delete(port, data, name)

    with PeakMemory(workers) as memory:
        started = time.perf_counter()
        seed(one, "one.bin")
        results.add("s3_seed_inflight_mib_s", rate(s.size, time.perf_counter() - started))
        wall = _concurrently(list(enumerate(parts)),
                             lambda job: seed(job[1], f"part{job[0]}.bin"))
        results.add("s3_seed_many_mib_s", rate(s.concurrent_size * s.concurrency, wall))
    results.add("s3_seed_rss_mib", memory.peak / MiB)
    results.add("s3_workers", len(memory.peaks))
    with PeakMemory(workers) as memory:
        timing, path = client.tus_upload(port, one, s.chunk, "one.bin")
        client.tus_delete(port, path)
        results.add("s3tus_one_mib_s", rate(s.size, timing.total))
        paths = []
        wall = _concurrently(list(enumerate(parts)), lambda job: paths.append(
            client.tus_upload(port, job[1], s.chunk, f"part{job[0]}.bin")[1]))
        for path in paths:
            client.tus_delete(port, path)
        results.add("s3tus_many_mib_s", rate(s.concurrent_size * s.concurrency, wall))
    results.add("s3tus_rss_mib", memory.peak / MiB)


def rate(size: int, seconds: float) -> float:
    return size / MiB / seconds


def _concurrently(jobs: list, work) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, len(jobs))) as pool:
        for _ in pool.map(work, jobs):  # re-raises the first failure
            pass
    return time.perf_counter() - started


def disk_needed(s: Settings) -> int:
    """Bytes the store's volumes may hold at once: SeaweedFS reclaims deleted objects'
    space only when it vacuums, so every workload's bytes count, twice for the seed API's
    (the chunks, then the joined file)."""
    data = s.size + s.concurrent_size * s.concurrency
    return data * (1 + 2 + 1)


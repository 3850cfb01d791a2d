"""The object store workloads, every byte in one SeaweedFS: uploadsvc on one host, and on
three hosts behind nginx (round robin, kept-open connections, bodies streamed through), the
state in MariaDB, as docs/scaleout.md deploys it; @tus/server with @tus/s3-store on one host;
and the store's own ceiling, a plain boto3 multipart upload of the same bytes. The store's S3
requests are counted around every workload (bench/store.py). Then uploadsvc on one host and
on three again, on Azurite and on the GCS emulator, their requests counted by a proxy
(bench/emulators.py)."""
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.cluster import Cluster
from tests.mariadb import MariaDBServer
from tests.seaweedfs import BUCKET
from tests.servers import GunicornServer

from . import client, tus_js
from .client import Slice
from .emulators import Emulated
from .report import MiB, Settings, requests_key
from .servers import PeakMemory, TusS3Reference
from .store import (
    Counted,
    MeteredSeaweedFS,
    ceiling_parts,
    ceiling_requests,
    ceiling_upload,
    check_object,
)

HOSTS = 3
# Per host: 2 workers of 4 threads (6 workers in all on this 2-core machine).
WORKERS, THREADS = 2, 4
# The other object stores measured after S3, each on its emulator (bench/emulators.py).
OTHER_STORES = ("azure", "gcs")
# Uploaded bytes after which the store frees what was removed (bench/store.py: reclaim);
# each upload leaves about twice its size in the store's volumes until then.
RECLAIM_AFTER = 8 * 1024 ** 3
# @tus/s3-store names its objects by upload id alone, so it has a bucket of its own.
PEER_BUCKET = "tus-node"

# send(data, name) uploads data as name; returns its seconds and what removes it.
Send = Callable[[Slice, str], tuple[float, Callable[[], None]]]


class Workers:
    """Every gunicorn worker of some hosts, for PeakMemory."""

    def __init__(self, hosts: list[GunicornServer]) -> None:
        self.hosts = hosts

    def pids(self) -> list[int]:
        return [pid for host in self.hosts for pid in host.worker_pids()]


class Workloads:
    """Runs workloads on the store, recording each one's MiB/s and the S3 requests the store
    received per chunk the client sent (in results.store, the requests by method)."""

    def __init__(self, s: Settings, store: MeteredSeaweedFS | Emulated, results) -> None:
        self.s = s
        self.store = store
        self.results = results
        self.unreclaimed = 0  # bytes uploaded since the store last freed removed ones

    def measure(self, key: str, jobs: list[tuple[Slice, str]], send: Send,
                pieces: Callable[[Slice], int] | None = None, repeat: int = 1) -> Counted:
        """Send every job at once: key's MiB/s (one job: its upload's own seconds), and its
        requests per piece (by default the client's chunks); the uploads removed after.
        With repeat, that many runs, and the figures of the one whose time is the median."""
        runs = sorted((self._run(jobs, send) for _ in range(repeat)), key=lambda run: run[0])
        seconds, counted = runs[len(runs) // 2]
        pieces = pieces or (lambda data: max(1, -(-data.size // self.s.chunk)))
        count = sum(pieces(data) for data, _ in jobs)
        self.results.add(key, rate(sum(data.size for data, _ in jobs), seconds))
        self.results.add(requests_key(key), counted.total / count)
        self.results.store[key] = {"pieces": count, "requests": dict(sorted(
            counted.requests.items()))}
        return counted

    def _run(self, jobs: list[tuple[Slice, str]], send: Send) -> tuple[float, Counted]:
        done = []
        with Counted(self.store) as counted:
            wall = _concurrently(jobs, lambda job: done.append(send(*job)))
        for _, remove in done:
            remove()
        # The store's removed bytes freed before they could fill its volumes.
        self.unreclaimed += sum(data.size for data, _ in jobs)
        if self.unreclaimed >= RECLAIM_AFTER and hasattr(self.store, "reclaim"):
            self.store.reclaim()
            self.unreclaimed = 0
        return (done[0][0] if len(jobs) == 1 else wall), counted

    def one_and_many(self, prefix: str, one: Slice, parts: list[Slice], send: Send,
                     repeat: int = 1) -> None:
        """One file, then the parts at once: {prefix}_one_mib_s, {prefix}_many_mib_s."""
        self.measure(f"{prefix}_one_mib_s", [(one, "one.bin")], send, repeat=repeat)
        self.measure(f"{prefix}_many_mib_s", [(part, f"part{i}.bin")
                                              for i, part in enumerate(parts)], send,
                     repeat=repeat)


def measure_hosts(s: Settings, one: Slice, parts: list[Slice], results) -> None:
    """The store's ceiling; uploadsvc on one host (the first of three, addressed directly,
    the others idle) and @tus/server beside it; uploadsvc on the three hosts through nginx."""
    base = s.workdir / "hosts"
    # At the priority of the servers it serves, unlike the tests' own.
    store = MeteredSeaweedFS(base / "seaweedfs").start()
    # In /tmp: the server's unix socket path must stay under 108 bytes.
    database = MariaDBServer(Path(tempfile.mkdtemp(prefix="uploadsvc-bench-db-")))
    try:
        database.start()
        work = Workloads(s, store, results)
        _measure_ceiling(work, one, parts)
        cluster = Cluster(base / "cluster", database.create_database("bench"),
                          f"s3://{BUCKET}/bench", store.environment(), hosts=HOSTS,
                          workers=WORKERS, threads=THREADS)
        with cluster:
            first = cluster.hosts[0]
            _measure_uploadsvc(work, first.port, "s3one", one, parts, Workers([first]),
                               with_tus_js=True, repeat=s.repeat)
            _measure_peer(work, one, parts)
            _measure_uploadsvc(work, cluster.nginx.port, "s3", one, parts,
                               Workers(cluster.hosts), with_tus_js=False)
        for kind in OTHER_STORES:
            _measure_other_store(s, kind, database, base, one, parts, results)
    finally:
        database.stop()
        shutil.rmtree(database.base_dir, ignore_errors=True)
        store.stop()


def _measure_other_store(s: Settings, kind: str, database: MariaDBServer, base: Path,
                         one: Slice, parts: list[Slice], results) -> None:
    """uploadsvc on one host and on three, every byte in an emulator of Azure Blob Storage or
    GCS (its requests counted by a proxy in front of it), the state in MariaDB."""
    store = Emulated(kind, base / kind).start()
    try:
        work = Workloads(s, store, results)
        cluster = Cluster(base / f"cluster-{kind}", database.create_database(f"bench_{kind}"),
                          store.server.url(), store.environment(), hosts=HOSTS,
                          workers=WORKERS, threads=THREADS)
        with cluster:
            first = cluster.hosts[0]
            _measure_uploadsvc(work, first.port, f"{kind}one", one, parts, Workers([first]),
                               with_tus_js=False)
            _measure_uploadsvc(work, cluster.nginx.port, kind, one, parts,
                               Workers(cluster.hosts), with_tus_js=False)
    finally:
        store.stop()


def _measure_ceiling(work: Workloads, one: Slice, parts: list[Slice]) -> None:
    """boto3's multipart upload of the same files; the store must count each of its requests
    (its parts, and the upload's creation and completion), or no count of it is believed."""
    def send(data: Slice, key: str) -> tuple[float, Callable[[], None]]:
        return ceiling_upload(work.store, data, key), lambda: _remove_object(work, data, key)

    for key, jobs in (("s3_ceiling_one_mib_s", [(one, "ceiling")]),
                      ("s3_ceiling_many_mib_s", [(part, f"ceiling-{i}")
                                                 for i, part in enumerate(parts)])):
        counted = work.measure(key, jobs, send, lambda data: ceiling_parts(data.size),
                               repeat=work.s.repeat)
        expected = sum(ceiling_requests(data.size) for data, _ in jobs)
        if counted.total != expected:
            raise RuntimeError(f"the store counted {dict(counted.requests)} for boto3's "
                               f"{expected} requests")


def _remove_object(work: Workloads, data: Slice, key: str) -> None:
    s3 = work.store.client()
    size = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    s3.delete_object(Bucket=BUCKET, Key=key)
    if size != data.size:
        raise RuntimeError(f"the store kept {size} of {data.size} bytes")


def _measure_uploadsvc(work: Workloads, port: int, prefix: str, one: Slice,
                       parts: list[Slice], workers: Workers, with_tus_js: bool,
                       repeat: int = 1) -> None:
    """The seed API with chunks in flight as the page sends them, and tus with one kept-open
    stream per file (and with tus-js-client), each with its workers' peak RSS; the figures
    with targets (one host on S3) are the median of s.repeat runs."""
    s = work.s

    def seed(data: Slice, name: str) -> tuple[float, Callable[[], None]]:
        timing = client.seed_upload(port, data, s.chunk, name, in_flight=s.in_flight)
        return timing.total, lambda: client.seed_delete(port, data, name)

    with PeakMemory(workers) as memory:
        work.measure(f"{prefix}_seed_inflight_mib_s", [(one, "one.bin")], seed, repeat=repeat)
        work.measure(f"{prefix}_seed_many_mib_s", [(part, f"part{i}.bin")
                                                   for i, part in enumerate(parts)], seed,
                     repeat=repeat)
    work.results.add(f"{prefix}_seed_rss_mib", memory.peak / MiB)
    work.results.add(f"{prefix}_workers", len(memory.peaks))
    with PeakMemory(workers) as memory:
        work.one_and_many(f"{prefix}tus", one, parts, _tus(port, s.chunk), repeat)
        if with_tus_js:
            _measure_tus_js(work, f"{prefix}tusjs_one_mib_s", port, one)
    work.results.add(f"{prefix}tus_rss_mib", memory.peak / MiB)


def _measure_peer(work: Workloads, one: Slice, parts: list[Slice]) -> None:
    """@tus/server with @tus/s3-store on its own bucket, one process, as uploadsvc's tus
    workloads above; every file read back from the store and its MD5 checked."""
    prefix = "tusnodes3"
    if not TusS3Reference.available():
        for key in ("_one_mib_s", "_many_mib_s", "_tusjs_one_mib_s"):
            work.results.add(prefix + key, None)
            work.results.add(requests_key(prefix + key), None)
        work.results.add(f"{prefix}_rss_mib", None)
        return
    work.store.client().create_bucket(Bucket=PEER_BUCKET)

    def check(data: Slice, path: str) -> None:
        check_object(work.store, PEER_BUCKET, path.rsplit("/", 1)[1], data)

    with TusS3Reference(work.s.workdir, PEER_BUCKET, work.store.environment()) as node:
        with PeakMemory(node) as memory:
            work.one_and_many(prefix, one, parts, _tus(node.port, work.s.chunk, check),
                              work.s.repeat)
            _measure_tus_js(work, f"{prefix}_tusjs_one_mib_s", node.port, one, check)
        work.results.add(f"{prefix}_rss_mib", memory.peak / MiB)


def _tus(port: int, chunk: int, check: Callable[[Slice, str], None] | None = None) -> Send:
    """tus through the bench's client; check(data, path) before the upload is removed."""
    def send(data: Slice, name: str) -> tuple[float, Callable[[], None]]:
        timing, path = client.tus_upload(port, data, chunk, name)
        return timing.total, lambda: _remove_tus(port, path, data, check)

    return send


def _measure_tus_js(work: Workloads, key: str, port: int, one: Slice,
                    check: Callable[[Slice, str], None] | None = None) -> None:
    if not tus_js.available():
        work.results.add(key, None)
        work.results.add(requests_key(key), None)
        return

    def send(data: Slice, name: str) -> tuple[float, Callable[[], None]]:
        upload = tus_js.upload(port, data, work.s.chunk, name)
        return upload.seconds, lambda: _remove_tus(port, upload.path, data, check)

    work.measure(key, [(one, "one-js.bin")], send)


def _remove_tus(port: int, path: str, data: Slice,
                check: Callable[[Slice, str], None] | None) -> None:
    if check is not None:
        check(data, path)
    client.tus_delete(port, path)


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
    space only when it vacuums, so every workload's bytes count: the ceiling's, twice for
    each of uploadsvc's seed API runs (the chunks, then the joined file), once for each tus
    run (uploadsvc's two and @tus/server's), and the files tus-js-client sends."""
    data = s.size + s.concurrent_size * s.concurrency
    return data * (1 + 2 * 3 + 1) + s.size * 2

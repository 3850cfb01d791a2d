"""The object store of the bench: SeaweedFS with its Prometheus metrics on, so that the S3
requests it receives during a workload are counted (by method), and the store's own ceiling,
boto3's multipart upload, whose known number of requests checks that the counters count."""
import hashlib
import io
import json
import re
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from tests.seaweedfs import BUCKET, SeaweedFS, free_ports

from .client import Slice
from .report import MiB

# Every S3 request SeaweedFS's S3 gateway answered, by bucket, status and method ("type":
# GET counts HEAD and ListParts too, POST counts CreateMultipartUpload and its completion).
METRIC = "SeaweedFS_s3_request_total"
LABEL = re.compile(r'(\w+)="([^"]*)"')
# boto3's parts: the service's own part size (UPLOADSVC_S3_PART_SIZE's default), boto3's
# default 10 threads per file.
CEILING = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=16 * MiB)


class MeteredSeaweedFS(SeaweedFS):
    """weed mini as the tests run it, at the servers' priority, with its metrics served on
    a port of their own (`-metricsPort`)."""

    def __init__(self, base_dir: Path) -> None:
        super().__init__(base_dir, nice=False)
        (self.ports["metricsPort"],) = free_ports(1)

    def requests(self) -> Counter:
        """Every S3 request the store has answered since it started, by method."""
        url = f"http://127.0.0.1:{self.ports['metricsPort']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        counts: Counter = Counter()
        for line in text.splitlines():
            if line.startswith(METRIC + "{"):
                labels, value = line[len(METRIC):].rsplit(" ", 1)
                counts[dict(LABEL.findall(labels))["type"]] += int(float(value))
        return counts

    def reclaim(self, timeout: float = 60) -> None:
        """Free the bytes of removed objects now: once the volumes' deleted bytes stop
        growing (the filer deletes an object's chunks a moment after its answer), the
        master's vacuum compacts them. The bench writes and removes tens of GiB, the store
        reclaims them on its own only every 14 minutes, and it has only as many volumes as
        its disk's free space allows (a write then fails, and the service answers 503)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            stored, deleted = self.volume_bytes()
            live = stored - deleted
            if live == last:
                break
            last = live
            time.sleep(1)
        url = f"http://127.0.0.1:{self.ports['master.port']}/vol/vacuum?garbageThreshold=0.01"
        with urllib.request.urlopen(url, timeout=600) as answer:
            answer.read()

    def volume_bytes(self) -> tuple[int, int]:
        """The bytes the store's volumes hold, and how many of them are of deleted objects."""
        url = f"http://127.0.0.1:{self.ports['volume.port']}/status"
        with urllib.request.urlopen(url, timeout=10) as answer:
            volumes = json.load(answer).get("Volumes") or []
        return (sum(volume["Size"] for volume in volumes),
                sum(volume["DeletedByteCount"] for volume in volumes))

    def settled(self, timeout: float = 10) -> Counter:
        """requests() once two readings 0.1 s apart agree: a server's work after its answer,
        and the store's count of its last answer, are in."""
        last = self.requests()
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(0.1)
            now = self.requests()
            if now == last or time.monotonic() > deadline:
                return now
            last = now


@dataclass
class Counted:
    """The S3 requests a store received during a block, by method."""

    store: MeteredSeaweedFS
    before: Counter = field(default_factory=Counter)
    requests: Counter = field(default_factory=Counter)

    def __enter__(self) -> "Counted":
        self.before = self.store.settled()
        return self

    def __exit__(self, *exc) -> None:
        self.requests = self.store.settled() - self.before

    @property
    def total(self) -> int:
        return sum(self.requests.values())


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


def ceiling_parts(size: int) -> int:
    """How many parts boto3 sends a file of size in (one PUT below the threshold)."""
    if size < CEILING.multipart_threshold:
        return 1
    return -(-size // CEILING.multipart_chunksize)


def ceiling_requests(size: int) -> int:
    """The requests of boto3's upload of size: its parts, and a multipart upload's creation
    and completion."""
    parts = ceiling_parts(size)
    return parts if size < CEILING.multipart_threshold else parts + 2


def ceiling_upload(store: SeaweedFS, data: Slice, key: str) -> float:
    """Seconds of boto3's upload of data to the store, as key."""
    started = time.perf_counter()
    with SliceReader(data) as stream:
        store.client().upload_fileobj(stream, BUCKET, key, Config=CEILING)
    return time.perf_counter() - started


def check_object(store: SeaweedFS, bucket: str, key: str, data: Slice) -> None:
    """The object must hold data's bytes: its MD5, read back, must be theirs."""
    body = store.client().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.md5()
    for piece in body.iter_chunks(MiB):
        digest.update(piece)
    if digest.hexdigest() != data.md5:
        raise RuntimeError(f"{bucket}/{key} has md5 {digest.hexdigest()} != {data.md5}")

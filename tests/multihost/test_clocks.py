"""Hosts whose clocks are wrong, on one database and one bucket: one host on time, one 10
minutes ahead and one 10 minutes behind (libfaketime, Debian's `faketime`, preloaded into
their gunicorn). A lease is timed by the database's clock, so every host sees the same
holds: a host ahead must not take what another holds, a host behind must not have its holds
ignored, and a hold that lapsed (its host stopped with SIGSTOP past its lease) is free to
every host, while its holder's late commit is refused.

Each test holds an upload with a tus PATCH whose body is sent in part and kept open: the
host holds the upload's lease until the rest arrives."""
import email.utils
import glob
import hashlib
import http.client
import os
import signal
import socket
import time
import uuid
from contextlib import contextmanager

import pytest
import requests

from ..cluster import Cluster
from ..live import sql
from ..seaweedfs import BUCKET
from ..servers import GunicornServer
from ..tus_helpers import TUS
from .helpers import KiB, leases, tus_create, tus_finished, tus_offset, tus_patch, wait_for

# Short, so that a stopped host's lease lapses soon; long enough that a host starved of the
# CPU for a moment (2 busy cores) still renews it in time (every third of it).
LEASE_SECONDS = 4
ENV = {"UPLOADSVC_LEASE_SECONDS": str(LEASE_SECONDS),
       # A busy upload answers 423 soon: the tests try it many times.
       "UPLOADSVC_LOCK_WAIT_SECONDS": "0.5",
       # A held body may pause for as long as a test needs (30 s by default, then 408).
       "UPLOADSVC_BODY_TIMEOUT": "300"}
SKEW = 600  # seconds
# The hosts: on time, ahead and behind.
ON_TIME, AHEAD, BEHIND = 0, 1, 2
CLOCKS = {ON_TIME: "on-time", AHEAD: "ahead", BEHIND: "behind"}
# As the faketime command preloads it ($LIB: the dynamic loader's library directory); the
# thread-safe build, for gunicorn's threads.
LIBFAKETIME = "/usr/$LIB/faketime/libfaketimeMT.so.1"
# How long a host may take to write an upload whose lease lapsed: the lease, then a few
# tries; a host that goes by its own clock 10 minutes off would wait 10 minutes.
TAKE_WITHIN = 45
SIZE = 256 * KiB


# libfaketime 0.9.10 (Debian 12's) makes the deadline that Python's time.sleep gives
# clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) negative (EINVAL) when the monotonic clock
# is left real (0.9.11 fixed it): a skewed process sleeps by a timed wait on a lock instead,
# whose deadline is on the real monotonic clock. (Faking the monotonic clock too is no way
# out: lock waits, not intercepted, would then wait for ever.)
SLEEP_BY_WAITING = """\
import threading
import time


def sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)


time.sleep = sleep
"""


def skewed(offset: str, directory) -> dict:
    """The environment that runs a process (and the processes it forks) offset from the
    real time, e.g. "+600" seconds: its wall clock (time.time, datetime.now, the Date
    header) only; its monotonic clock is left alone (gunicorn's timeouts, the app's waits).
    Python's startup hook is written to directory."""
    if not any(glob.glob(LIBFAKETIME.replace("$LIB", lib)) for lib in ("lib*", "lib*/*")):
        raise RuntimeError("libfaketime not found: install faketime (make test-deps)")
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(SLEEP_BY_WAITING)
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": path}


def clock_of(host: GunicornServer) -> float:
    """How far the host's clock is from this one's (seconds), from its Date header."""
    answer = requests.get(host.url + "/api/health", timeout=30)
    return email.utils.parsedate_to_datetime(answer.headers["Date"]).timestamp() - time.time()


@pytest.fixture(scope="module")
def cluster(mariadb, s3_env, tmp_path_factory):
    """Three hosts of one worker each (the one process a test stops), on time, 10 minutes
    ahead and 10 minutes behind, on a new database and a bucket prefix of their own."""
    url = mariadb.create_database("multihost_clocks")
    storage = f"s3://{BUCKET}/multihost-clocks-{uuid.uuid4().hex[:8]}"
    base = tmp_path_factory.mktemp("clocks")
    host_env = {AHEAD: skewed(f"+{SKEW}", base / "site"),
                BEHIND: skewed(f"-{SKEW}", base / "site")}
    with Cluster(base, url, storage, ENV, workers=1, host_env=host_env) as running:
        for index, skew in ((ON_TIME, 0), (AHEAD, SKEW), (BEHIND, -SKEW)):
            assert abs(clock_of(running.hosts[index]) - skew) < 60, CLOCKS[index]
        yield running


class HeldPatch:
    """A tus PATCH of the whole upload on a connection of its own, half its body sent and
    the rest held back: the host holds the upload's lease until finish()."""

    def __init__(self, host: GunicornServer, path: str, data: bytes) -> None:
        self.data = data
        self.sock = socket.create_connection(("127.0.0.1", host.port), timeout=60)
        head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{host.port}\r\n"
                f"Tus-Resumable: {TUS['Tus-Resumable']}\r\nUpload-Offset: 0\r\n"
                f"Content-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        self.sock.sendall(head.encode() + data[:len(data) // 2])

    def finish(self) -> http.client.HTTPResponse:
        """Send the rest of the body; the host's answer."""
        self.sock.sendall(self.data[len(self.data) // 2:])
        answer = http.client.HTTPResponse(self.sock)
        answer.begin()
        answer.read()
        return answer

    def close(self) -> None:
        self.sock.close()


def new_upload(cluster: Cluster, tag: str) -> tuple[str, str]:
    """A new tus upload of SIZE bytes: its path and key."""
    path = tus_create(cluster.hosts[ON_TIME].url, SIZE, f"clocks-{tag}.bin")
    return path, path.rpartition("/")[2]


@contextmanager
def held(cluster: Cluster, holder: int, path: str, key: str, data: bytes):
    """The holder's PATCH of data, paused mid-body once its host holds the upload's lease."""
    patch = HeldPatch(cluster.hosts[holder], path, data)
    try:
        wait_for(lambda: [kind for _, kind in leases(cluster, key)] == ["x"],
                 f"the {CLOCKS[holder]} host's lease on the upload")
        yield patch
    finally:
        patch.close()


@contextmanager
def stopped(host: GunicornServer):
    """The host's worker stopped (SIGSTOP), as a machine that hangs: its lease is renewed no
    more; continued (SIGCONT) at the end of the block."""
    pids = host.worker_pids()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def refused_while_held(cluster: Cluster, holder: int, path: str, others: list[int],
                       seconds: float = 0.0, delete: bool = True) -> None:
    """Each other host, asked for the upload (time after time, for `seconds`), answers 423
    to a PATCH at the offset HEAD gives, and to a DELETE; the offset stays 0."""
    intruder = os.urandom(KiB)
    until = time.monotonic() + seconds
    while True:
        for other in others:
            base = cluster.hosts[other].url
            offset = tus_offset(base, path)
            assert offset == 0, f"the {CLOCKS[other]} host sees bytes no PATCH recorded"
            answer = tus_patch(base, path, offset, intruder)
            assert answer.status_code == 423, (
                f"the {CLOCKS[other]} host answered a PATCH {answer.status_code} while the "
                f"{CLOCKS[holder]} host held the upload")
            if delete:
                answer = requests.delete(base + path, headers=TUS, timeout=60)
                assert answer.status_code == 423, (
                    f"the {CLOCKS[other]} host answered a DELETE {answer.status_code} "
                    f"while the {CLOCKS[holder]} host held the upload")
        if time.monotonic() > until:
            return


def take(cluster: Cluster, taker: int, holder: int, path: str,
         data: bytes) -> requests.Response:
    """The taker's PATCH of data at offset 0, sent again while the upload is held (423)."""
    since = time.monotonic()
    while (answer := tus_patch(cluster.hosts[taker].url, path, 0, data)).status_code == 423:
        waited = time.monotonic() - since
        assert waited < TAKE_WITHIN, (
            f"the {CLOCKS[taker]} host still finds the upload held {waited:.0f} s after the "
            f"{CLOCKS[holder]} host stopped renewing its {LEASE_SECONDS} s lease")
    print(f"taken {time.monotonic() - since:.1f} s after the holder stopped")
    return answer


def chunks_recorded(cluster: Cluster, key: str) -> int:
    return sql(cluster.database_url, "SELECT COUNT(*) FROM upload_events WHERE upload_key = "
               ":key AND kind = 'chunk_stored'", key=key)[0][0]


@pytest.mark.parametrize("holder", [ON_TIME, AHEAD, BEHIND], ids=CLOCKS.get)
def test_a_held_upload_is_refused_on_every_clock(cluster, holder):
    """While one host holds an upload (its PATCH mid-body), every other host, whatever its
    clock, answers 423 to a PATCH or a DELETE, for longer than a lease; then the holder's
    PATCH ends and the upload is its bytes, exactly."""
    path, key = new_upload(cluster, f"held-{CLOCKS[holder]}")
    data = os.urandom(SIZE)
    with held(cluster, holder, path, key, data) as patch:
        # For longer than a lease: the holder's renewals count on every clock too.
        refused_while_held(cluster, holder, path, [i for i in CLOCKS if i != holder],
                           1.5 * LEASE_SECONDS)
        answer = patch.finish()
    assert answer.status == 204, answer.status
    assert answer.headers["Upload-Offset"] == str(SIZE)
    assert chunks_recorded(cluster, key) == 1
    tus_finished(cluster, path, data)


@pytest.mark.parametrize("holder, taker", [(BEHIND, ON_TIME), (ON_TIME, BEHIND),
                                           (AHEAD, ON_TIME), (ON_TIME, AHEAD)],
                         ids=lambda i: CLOCKS[i])
def test_a_lapsed_lease_is_taken_and_its_holder_fenced(cluster, holder, taker):
    """A host holds an upload, and another is refused; the holder stops (SIGSTOP) and its
    lease lapses by the database's clock, and the other takes the upload and finishes it;
    the holder, continued, has its late PATCH refused, and what it sent is recorded
    nowhere."""
    path, key = new_upload(cluster, f"lapsed-{CLOCKS[holder]}-{CLOCKS[taker]}")
    late, data = os.urandom(SIZE), os.urandom(SIZE)
    with held(cluster, holder, path, key, late) as patch:
        refused_while_held(cluster, holder, path, [taker], delete=False)
        with stopped(cluster.hosts[holder]):
            answer = take(cluster, taker, holder, path, data)
        refused = patch.finish()
    assert answer.status_code == 204, answer.text
    assert refused.status in (409, 423), refused.status
    assert hashlib.md5(data).hexdigest() == answer.headers["Upload-MD5"]
    assert chunks_recorded(cluster, key) == 1
    tus_finished(cluster, path, data)

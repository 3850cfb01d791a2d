"""Webhooks from real gunicorn workers to a real receiver, on SQLite and MariaDB: every
worker runs a deliverer. Workers killed with SIGKILL after an event was committed and while
it is being sent, a receiver down for longer than the workers live, three workers delivering
one backlog, and concurrent completions of one upload.

One server with 3 workers per database for the module, and one receiver; each test uses
files of its own, and looks only at their events."""
import base64
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from .conftest import DATABASES
from .helpers import random_file
from .hookreceiver import HookReceiver
from .hooks_helpers import SECRET
from .live import at_once, complete, sql, upload
from .servers import GunicornServer

WORKERS = 3
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def receiver():
    with HookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture(scope="module", params=DATABASES)
def server(request, new_database, tmp_path_factory, receiver):
    url = new_database(request.param, "uploadsvc_hooks")
    env = {"UPLOADSVC_HOOK_URLS": receiver.url, "UPLOADSVC_HOOK_SECRET": SECRET,
           # A killed sender's events go to another worker 12 s on; an attempt may take 10 s
           # (the test kills the sender well within that).
           "UPLOADSVC_HOOK_LEASE": "12s", "UPLOADSVC_HOOK_TIMEOUT": "10",
           "UPLOADSVC_HOOK_RETRY_DELAY": "0.1s", "UPLOADSVC_HOOK_POLL_INTERVAL": "0.1"}
    server = GunicornServer(tmp_path_factory.mktemp("hooks") / "data", workers=WORKERS,
                            threads=4, env=env, database_url=url).start()
    server.backend = request.param
    yield server
    server.stop()


def tus_upload(server: GunicornServer, name: str, data: bytes = b"hooked bytes",
               finish: bool = True, delete: bool = False) -> str:
    """Create (and fill, and delete) a tus upload; its key."""
    encoded = base64.b64encode(name.encode()).decode()
    created = requests.post(server.url + "/files/", timeout=30, headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": f"filename {encoded}"})
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    if finish:
        written = requests.patch(location, data=data, timeout=30, headers={
            **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
        assert written.status_code == 204, written.text
    if delete:
        assert requests.delete(location, headers=TUS, timeout=30).status_code == 204
    return location.rsplit("/", 1)[1]


def rows_of(server: GunicornServer, key: str) -> list[tuple]:
    """(event_id, kind, status, attempts) of an upload's deliveries, oldest first."""
    return sql(server.database_url, "SELECT event_id, kind, status, attempts FROM "
               "hook_deliveries WHERE upload_key = :key ORDER BY id", key=key)


def wait_until(condition, timeout: float = 60, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def arrivals(receiver: HookReceiver, event_id: str) -> list:
    return [r for r in list(receiver.received) if r.event_id == event_id]


def replace_workers(server: GunicornServer, pids: list[int]) -> None:
    """SIGKILL these workers and wait until the master has replaced them."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not set(pids) & set(server.worker_pids())
               and len(server.worker_pids()) == WORKERS, 30, "the workers to be replaced")


def sender_of(server: GunicornServer, port: int) -> int:
    """The worker with a connection open to the receiver's port."""
    def find():
        for pid in server.worker_pids():
            try:
                connections = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.raddr and c.raddr.port == port for c in connections):
                return pid
        return None
    return wait_until(find, 30, "a worker sending to the receiver")


def test_an_event_committed_before_its_workers_are_killed_arrives_after(server, receiver):
    """The receiver is down for longer than the workers live: the event was committed, tried
    and failed; every worker is killed with SIGKILL and replaced, and the new ones try again;
    once the receiver is back the event arrives, once, signed."""
    receiver.stop()
    try:
        key = tus_upload(server, f"down-{server.backend}.tus", finish=False)
        [(event_id, kind, _, _)] = wait_until(
            lambda: [r for r in rows_of(server, key) if r[3] >= 1], 30, "a failed attempt")
        assert kind == "created"
        tried = rows_of(server, key)[0][3]
        replace_workers(server, server.worker_pids())
        wait_until(lambda: rows_of(server, key)[0][3] > tried, 30,
                   "an attempt by the new workers")
        assert rows_of(server, key)[0][2] == "pending"
    finally:
        receiver.start()
    receiver.wait_for(lambda _: any(r.status == 204 for r in arrivals(receiver, event_id)),
                      60, "the event after the receiver came back")
    wait_until(lambda: rows_of(server, key)[0][2] == "delivered", 30, "the row delivered")
    [got] = arrivals(receiver, event_id)
    assert got.signed and got.json["upload"]["id"] == key


def test_a_worker_killed_while_sending_leaves_the_event_to_another(server, receiver):
    """The receiver holds the request; the worker sending it is killed with SIGKILL. After
    the lease lapses another worker sends the same event (same id, same body) again."""
    with receiver.changed:
        receiver.holding = True
    try:
        key = tus_upload(server, f"held-{server.backend}.tus", finish=False)
        [first] = receiver.wait_for(
            lambda got: [r for r in got if r.body and r.json["upload"]["id"] == key], 30,
            "the held delivery")
        pid = sender_of(server, receiver.port)
        with receiver.changed:
            receiver.holding = False  # the next attempt is answered
        replace_workers(server, [pid])
    finally:
        receiver.release()  # the held request's sender is gone: its answer goes nowhere
    receiver.wait_for(lambda _: len(arrivals(receiver, first.event_id)) >= 2, 60,
                      "the event sent again")
    wait_until(lambda: rows_of(server, key)[0][2] == "delivered", 30, "the row delivered")
    again = arrivals(receiver, first.event_id)[1]
    assert again.body == first.body and again.signed
    assert again.headers["Uploadsvc-Delivery-Attempt"] == "1"  # the killed one never settled
    assert [r[1] for r in rows_of(server, key)] == ["created"]


def test_three_workers_deliver_a_backlog_without_loss_in_order(server, receiver):
    """Events pile up while the receiver is down; then every worker's deliverer takes from
    the backlog at once. Each event arrives, and each upload's events in order."""
    receiver.stop()
    try:
        names = [f"backlog-{server.backend}-{n}.tus" for n in range(12)]
        with ThreadPoolExecutor(4) as pool:
            keys = list(pool.map(
                lambda name: tus_upload(server, name, name.encode() * 10, delete=True), names))
    finally:
        receiver.start()
    expected = {row[0]: key for key in keys for row in rows_of(server, key)}
    assert len(expected) == 3 * len(keys)

    def all_arrived(got):
        ids = {r.event_id for r in got if r.status == 204}
        return set(expected) <= ids
    receiver.wait_for(all_arrived, 120, "every event of the backlog")
    wait_until(lambda: all(row[2] == "delivered" for key in keys for row in rows_of(server, key)),
               30, "every row delivered")
    first_arrivals: dict[str, list[str]] = {}
    seen = set()
    for got in receiver.delivered():
        if got.event_id in expected and got.event_id not in seen:
            seen.add(got.event_id)
            first_arrivals.setdefault(expected[got.event_id], []).append(got.json["type"])
    assert first_arrivals == {key: ["upload.created", "upload.completed", "upload.deleted"]
                              for key in keys}
    assert all(r.signed for r in receiver.delivered() if r.event_id in expected)


def test_concurrent_completions_report_completed_once(server, receiver):
    test_file = random_file(3 * 64 * 1024, 64 * 1024, f"raced-{server.backend}.bin")
    upload(server.url, test_file)
    answers = at_once([lambda: complete(server.url, test_file) for _ in range(8)])
    assert {a.status_code for a in answers} <= {200, 409}
    assert any(a.status_code == 200 for a in answers)
    [(key,)] = sql(server.database_url, "SELECT `key` FROM uploads WHERE md5 = :md5",
                   md5=test_file.md5)
    kinds = [row[1] for row in rows_of(server, key)]
    assert kinds == ["created", "completed"]
    completed_id = rows_of(server, key)[1][0]
    receiver.wait_for(lambda _: any(r.status == 204 for r in arrivals(receiver, completed_id)),
                      60, "the completed event")
    assert [r.json["type"] for r in receiver.delivered()
            if r.body and r.json["upload"]["id"] == key] == ["upload.created",
                                                               "upload.completed"]

"""What a stored chunk costs the database on MariaDB, counted by the server itself (its
Com_* status counters): every statement is a round trip, across hosts a network one, and
they serialise a single stream."""
import collections

import pytest
from sqlalchemy import select, text

from uploadsvc.core import database
from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload

from .helpers import random_file, send_chunk

CHUNKS = 20
# What any stored chunk or tus PATCH may cost, everything the server runs for it included
# (its hashing, and on a store that several hosts share the lease of its upload's lock).
STATEMENTS = 10
COMMITS = 2
# On a store of several hosts, a chunk or PATCH holds its upload's lock: a lease, taken in
# the transaction that read the upload's row under its row lock (the gate's SELECT ... FOR
# UPDATE, the INSERT, and that transaction's COMMIT, which a read ends anyway before the
# body), and released by a DELETE in the transaction that records the work. The row is
# then not read again under the lock. On one host's disk the lock is a file lock, which
# costs the database nothing, and the row is read again once it is held.
LEASE = {"local": 0, "s3": 3}
REREAD = {"local": 1, "s3": 0}


def chunk_cost(storage: str) -> int:
    """A chunk's statements: its upload found (and found again under a file lock), then one
    transaction: the row locked with the chunks counted, the chunk recorded, the row
    updated (updated_at, and the hash if it passed), its event, the COMMIT; besides, on a
    shared store, the lease and the COMMIT that makes it visible."""
    return 1 + REREAD[storage] + 5 + LEASE[storage] + bool(LEASE[storage])
STORAGES = ("local", "s3")
KINDS = ("select", "insert", "update", "delete", "commit", "rollback", "begin")


class ServerCounts:
    """Statements the server ran, by kind, read from a connection of the test's own (whose
    own SHOW statements are not counted)."""

    def __init__(self, mariadb) -> None:
        self.connection = mariadb.connect()

    def now(self) -> collections.Counter:
        with self.connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)"
                           % ", ".join(f"'Com_{kind}'" for kind in KINDS))
            return collections.Counter({name[4:]: int(value) for name, value in cursor})

    def of(self, work) -> collections.Counter:
        before = self.now()
        work()
        counts = self.now()
        counts.subtract(before)
        return +counts


@pytest.fixture
def server_counts(mariadb):
    counts = ServerCounts(mariadb)
    yield counts
    counts.connection.close()


def sent(client, test_file, index):
    def send():
        assert send_chunk(client, test_file, index).status_code == 200
    return send


def within_targets(counts, commits=COMMITS) -> None:
    assert sum(counts.values()) <= STATEMENTS, counts
    assert counts["commit"] <= commits and not counts["rollback"], counts


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_a_chunk_out_of_order_costs_7_statements_and_one_commit_besides_its_lease(
        client, server_counts, storage):
    # Sent last chunk first, so that no chunk is the one the hash needs next until chunk 0:
    # these requests run nothing after their answers (chunk_cost).
    test_file = random_file(CHUNKS * 1000, 1000)
    assert client.post("/api/check-chunks", json=test_file.ident()).status_code == 200
    assert send_chunk(client, test_file, 1).status_code == 200  # fixes the chunk size
    for index in range(CHUNKS - 1, 1, -1):
        counts = server_counts.of(sent(client, test_file, index))
        assert sum(counts.values()) == chunk_cost(storage), counts
        assert counts["commit"] == 1 + bool(LEASE[storage]), counts
        within_targets(counts)
    # Chunk 0 then hashes all of them after its answer, a batch at a time, under the
    # hashing lock (on a shared store a lease, its gate made the first time).
    counts = server_counts.of(sent(client, test_file, 0))
    assert sum(counts.values()) <= 7 + 6 + 3 + 2 * LEASE[storage] + 3, counts
    assert client.post("/api/complete-upload", json=test_file.ident()).json["md5"] == \
        test_file.md5


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_chunks_in_order_are_hashed_as_they_pass_in_the_transaction_that_records_them(
        app, client, server_counts, storage):
    """As many statements as a chunk out of order (the hash state saved, if it still stands
    before this chunk, by the UPDATE that marks the row updated), and nothing after the
    answer: no catch-up, no hashing lock, no byte read back."""
    test_file = random_file(CHUNKS * 1000, 1000)
    assert client.post("/api/check-chunks", json=test_file.ident()).status_code == 200
    assert send_chunk(client, test_file, 0).status_code == 200
    for index in range(1, CHUNKS):
        counts = server_counts.of(sent(client, test_file, index))
        assert sum(counts.values()) == chunk_cost(storage), counts
        within_targets(counts)
        assert hashed_chunks(app, test_file) == index + 1
    assert client.post("/api/complete-upload", json=test_file.ident()).json["md5"] == \
        test_file.md5


def hashed_chunks(app, test_file) -> int:
    with app.app_context():
        found = db.session.execute(select(Upload.hashed_chunks).filter_by(
            md5=test_file.md5)).scalar_one()
        db.session.commit()
        return found


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_a_tus_patch_costs_6_statements_and_two_commits_besides_its_lease(
        client, server_counts, storage):
    """A PATCH ends its reads before its body (an open transaction would hold the table's
    metadata lock for as long as the client takes), then records it, with the hash carried
    through its bytes: two COMMITs (on a shared store, the first makes its lease visible
    too), and nothing after the answer."""
    data = bytes(range(256)) * 400
    created = client.post("/files/", headers={"Tus-Resumable": "1.0.0",
                                              "Upload-Length": str(len(data))})
    path = "/files/" + created.headers["Location"].rsplit("/", 1)[1]
    step = len(data) // 10
    for offset in range(0, len(data) - step, step):
        def patch(offset=offset):
            answer = client.patch(path, data=data[offset:offset + step], headers={
                "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream"})
            assert answer.status_code == 204
        if offset == 0:  # makes the lock's gate row, and the pool its second connection
            patch()
            continue
        counts = server_counts.of(patch)
        assert sum(counts.values()) == 5 + REREAD[storage] + LEASE[storage], counts
        assert counts["commit"] == 2, counts
        within_targets(counts)


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_a_chunk_written_in_place_as_it_arrives_costs_what_a_spooled_one_does(
        app, client, server_counts, storage):
    """Fields first, as the page sends them, in bodies large enough to stream: the reads
    that find the chunk's place end before its body (see the tus PATCH above)."""
    test_file = random_file(6 * 300 * 1024, 300 * 1024)
    assert client.post("/api/check-chunks", json=test_file.ident()).status_code == 200
    assert send_chunk(client, test_file, 5).status_code == 200  # the last: spooled
    assert send_chunk(client, test_file, 4).status_code == 200  # fixes the chunk size
    spools = []
    original = app.extensions["store"].spool
    app.extensions["store"].spool = lambda *a: spools.append(1) or original(*a)
    # In place, one more COMMIT than a spooled chunk: it ends the reads before the body.
    in_place = storage == "local"
    for index in (3, 2, 1):
        counts = server_counts.of(sent(client, test_file, index))
        assert sum(counts.values()) == chunk_cost(storage) + in_place, counts
        within_targets(counts)
    assert (spools == []) is in_place  # written in place, every one, where the store can


@pytest.mark.parametrize("statement, holds", [
    ("SELECT uploads.id FROM uploads WHERE uploads.id = %s", False),
    ("  select 1", False),
    ("SELECT uploads.id FROM uploads WHERE uploads.id = %s FOR UPDATE", True),
    ("SELECT id FROM uploads LOCK IN SHARE MODE", True),
    ("SELECT GET_LOCK('uploadsvc-migrate', 30)", True),
    ("UPDATE uploads SET updated_at = %s", True),
    ("INSERT INTO chunks VALUES (%s)", True),
])
def test_only_a_plain_read_lets_a_transaction_go_on_across_a_lock_wait(statement, holds):
    assert database._holds_nothing(statement) is not holds


def _new_upload_row(client) -> str:
    test_file = random_file(2000, 1000)
    assert send_chunk(client, test_file, 0).status_code == 200
    return test_file.md5


def _file_name_seen_by_another_connection(mariadb, md5: str) -> str:
    with mariadb.connect("uploadsvc") as other, other.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 2")
        cursor.execute("UPDATE uploads SET client = 'other' WHERE md5 = %s", (md5,))  # no wait
        cursor.execute("SELECT file_name FROM uploads WHERE md5 = %s", (md5,))
        return cursor.fetchone()[0]


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_a_transaction_that_wrote_is_committed_before_a_lock_wait(app, client, mariadb):
    md5 = _new_upload_row(client)
    with app.app_context():
        db.session.execute(text("UPDATE uploads SET file_name = 'renamed' WHERE md5 = :m"),
                           {"m": md5})
        database.end_reads()
        assert _file_name_seen_by_another_connection(mariadb, md5) == "renamed"


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_a_connection_handed_back_mid_transaction_is_rolled_back(app, client, mariadb):
    md5 = _new_upload_row(client)
    with app.app_context():
        db.session.execute(text("UPDATE uploads SET file_name = 'renamed' WHERE md5 = :m"),
                           {"m": md5})
        db.session.remove()  # back to the pool, uncommitted: its row lock must go too
        assert _file_name_seen_by_another_connection(mariadb, md5) == "test.bin"

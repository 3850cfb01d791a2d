"""Locks as leases in the database (services/leases/), on SQLite and MariaDB: two "hosts" are
two apps with data directories of their own on one database, as on several machines."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy import select, text, update

from uploadsvc import create_app
from uploadsvc.core.extensions import db
from uploadsvc.core.models import GATE, Lease
from uploadsvc.services import leases
from uploadsvc.storage import LeaseLost, LockBusy
from uploadsvc.storage.locking import FileLocker

from .live import PROJECT

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def app_config():
    return {"LEASE_SECONDS": 2}


@pytest.fixture(autouse=True)
def with_leases(app):
    """The app's store locks with the database's leases, as a store that several hosts
    share does (these tests' store is a local one, which keeps file locks of its own)."""
    with_database_leases(app)


def with_database_leases(app):
    app.extensions["store"].locker = leases.DatabaseLocker(app)
    return app


@pytest.fixture
def other_host(app, tmp_path):
    """A second app on the same database with a data directory (so a host) of its own."""
    other = with_database_leases(create_app({
        "TESTING": True, "DATA_DIR": str(tmp_path / "other-host"),
        "DATABASE_URL": app.config["DATABASE_URL"],
        "LEASE_SECONDS": app.config["LEASE_SECONDS"]}))
    yield other
    with other.app_context():
        db.engine.dispose()


def locker(app):
    return app.extensions["store"].locker


def holds_of(app, name=KEY) -> list[Lease]:
    with app.app_context():
        found = db.session.execute(select(Lease).where(Lease.name == name,
                                                       Lease.holder != GATE)).scalars().all()
        db.session.commit()
        return found


def lapse(name: str) -> None:
    """Make the holds of name lapse, from a connection of its own (as another host sees)."""
    with db.engine.begin() as connection:
        connection.execute(update(Lease).where(Lease.name == name, Lease.holder != GATE)
                           .values(expires_ms=1))


def test_a_store_on_one_hosts_disk_keeps_its_file_locks(tmp_path):
    local = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "local"),
                        "DATABASE_URL": f"sqlite:///{tmp_path}/local.db"})
    assert isinstance(local.extensions["store"].locker, FileLocker)
    with local.app_context():
        db.engine.dispose()


def test_an_exclusive_hold_keeps_out_every_other_host_until_released(app, other_host):
    with app.app_context(), locker(app).hold(KEY, exclusive=True):
        assert [h.kind for h in holds_of(app)] == ["x"]
        with other_host.app_context():
            for exclusive in (True, False):
                with pytest.raises(LockBusy), locker(other_host).hold(KEY, exclusive, 0.1):
                    pass
    assert holds_of(app) == []
    with other_host.app_context(), locker(other_host).hold(KEY, exclusive=True):
        assert len(holds_of(app)) == 1


def test_shared_holds_go_together_and_keep_out_an_exclusive_one(app, other_host):
    with app.app_context(), locker(app).hold(KEY, exclusive=False):
        with other_host.app_context(), locker(other_host).hold(KEY, exclusive=False):
            assert sorted(h.kind for h in holds_of(app)) == ["s", "s"]
            with pytest.raises(LockBusy), locker(other_host).hold(KEY, True, 0.1):
                pass


def test_an_exclusive_taker_waits_for_the_shared_holds_to_end(app, other_host):
    taken = threading.Event()
    release = threading.Event()

    def share():
        with app.app_context(), locker(app).hold(KEY, exclusive=False):
            taken.set()
            release.wait(10)

    sharer = threading.Thread(target=share)
    sharer.start()
    assert taken.wait(10)
    threading.Timer(0.3, release.set).start()
    with other_host.app_context(), locker(other_host).hold(KEY, True, timeout=10):
        assert release.is_set()  # not before the shared hold ended
    sharer.join()


def test_one_holder_at_a_time_claims_a_chunk_on_any_host(app, other_host):
    with app.app_context(), locker(app).hold(KEY, exclusive=False, chunk=3):
        with locker(app).claim(KEY, 3) as claimed:
            assert claimed
        with other_host.app_context():
            with locker(other_host).hold(KEY, exclusive=False, chunk=3), \
                    locker(other_host).claim(KEY, 3) as claimed:
                assert not claimed  # it goes aside
            with locker(other_host).claim(KEY, 4) as claimed:  # another chunk: free
                assert claimed
                with app.app_context(), locker(app).claim(KEY, 4) as again:
                    assert not again
    with other_host.app_context(), locker(other_host).claim(KEY, 3) as claimed:
        assert claimed  # free again once the hold ended


def test_a_chunk_is_not_claimed_while_the_upload_is_held_exclusively(app, other_host):
    with app.app_context(), locker(app).hold(KEY, exclusive=True):
        with other_host.app_context(), locker(other_host).claim(KEY, 0) as claimed:
            assert not claimed


def test_a_hold_that_fails_rolls_back_what_it_did_not_commit(app):
    with app.app_context():
        with pytest.raises(RuntimeError), locker(app).hold(KEY):
            db.session.execute(update(Lease).where(Lease.name == "nothing").values(kind="s"))
            raise RuntimeError("failed midway")
        assert not db.session().in_transaction()
    assert holds_of(app) == []


def test_a_commit_under_a_lapsed_lease_is_refused(app, other_host):
    """A holder that stalled past its lease (its row lapsed and was taken by another host)
    cannot commit what it wrote: the fence in its commit finds the lease gone."""
    with app.app_context():
        db.session.execute(text("CREATE TABLE IF NOT EXISTS fenced (v INTEGER)"))
        db.session.commit()
        with locker(app).hold(KEY):
            lapse(KEY)  # as if it stalled for longer than the lease
            with other_host.app_context(), locker(other_host).hold(KEY, timeout=1):
                pass  # the other host took the lapsed lease (and released it)
            db.session.execute(text("INSERT INTO fenced (v) VALUES (1)"))
            with pytest.raises(LeaseLost):
                db.session.commit()
            db.session.rollback()
        assert db.session.execute(text("SELECT count(*) FROM fenced")).scalar() == 0
        db.session.execute(text("DROP TABLE fenced"))
        db.session.commit()


def test_the_commit_that_ends_the_work_releases_the_hold(app, other_host):
    with app.app_context():
        db.session.execute(text("CREATE TABLE IF NOT EXISTS ended (v INTEGER)"))
        db.session.commit()
        with locker(app).hold(KEY):
            db.session.execute(text("INSERT INTO ended (v) VALUES (1)"))
            db.session.commit()
            assert len(holds_of(app)) == 1  # an ordinary commit renews it
            leases.release_in_commit(KEY)
            db.session.execute(text("INSERT INTO ended (v) VALUES (2)"))
            db.session.commit()
            assert holds_of(app) == []  # gone with that commit, inside the block
            with other_host.app_context(), locker(other_host).hold(KEY, timeout=0):
                pass
            db.session.execute(text("INSERT INTO ended (v) VALUES (3)"))
            db.session.commit()  # no hold left to fence: not refused
        assert db.session.execute(text("SELECT count(*) FROM ended")).scalar() == 3
        db.session.execute(text("DROP TABLE ended"))
        db.session.commit()


def test_a_release_whose_commit_fails_is_released_on_the_way_out(app):
    with app.app_context():
        with pytest.raises(LeaseLost), locker(app).hold(KEY):
            leases.release_in_commit(KEY)
            lapse(KEY)
            db.session.execute(update(Lease).where(Lease.name == "nothing").values(kind="s"))
            db.session.commit()
    assert holds_of(app) == []


def test_a_reading_commit_is_not_fenced(app):
    with app.app_context(), locker(app).hold(KEY):
        lapse(KEY)
        db.session.execute(select(Lease)).all()
        db.session.commit()  # only read: nothing to keep from anyone


def test_a_hold_longer_than_its_lease_is_renewed(app, other_host):
    app.config["LEASE_SECONDS"] = other_host.config["LEASE_SECONDS"] = 1.5
    first = locker(app).__class__(app)
    with app.app_context(), first.hold(KEY):
        before = holds_of(app)[0].expires_ms
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # twice the lease
            time.sleep(0.25)
            if holds_of(app)[0].expires_ms > before:
                break
        assert holds_of(app)[0].expires_ms > before  # renewed by the process's thread


HOLDER = textwrap.dedent("""
    import sys, time
    from uploadsvc import create_app
    from uploadsvc.services.leases import DatabaseLocker
    app = create_app({"DATA_DIR": sys.argv[1], "DATABASE_URL": sys.argv[2],
                      "LEASE_SECONDS": float(sys.argv[3])})
    with app.app_context(), DatabaseLocker(app).hold(sys.argv[4]):
        print("held", flush=True)
        time.sleep(120)
""")


def hold_in_a_process(app, data_dir, name=KEY) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), app.config["DATABASE_URL"],
         str(app.config["LEASE_SECONDS"]), name],
        cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()


def test_a_killed_process_of_this_host_holds_nothing(app):
    process = hold_in_a_process(app, app.config["DATA_DIR"])
    with app.app_context():
        with pytest.raises(LockBusy), locker(app).hold(KEY, timeout=0):
            pass
        kill(process)
        with locker(app).hold(KEY, timeout=0):  # at once: its pid is gone
            assert len(holds_of(app)) == 1


def test_a_killed_host_holds_its_lease_until_it_lapses_then_nothing(app, tmp_path):
    process = hold_in_a_process(app, tmp_path / "dead-host")
    kill(process)
    with app.app_context():
        [dead] = holds_of(app)
        if time.time() * 1000 < dead.expires_ms - 1000:  # (always, unless this paused)
            with pytest.raises(LockBusy), locker(app).hold(KEY, timeout=0):
                pass
        started = time.monotonic()
        with locker(app).hold(KEY, timeout=3 * app.config["LEASE_SECONDS"]):
            waited = time.monotonic() - started
            assert [h.holder for h in holds_of(app)] != [dead.holder]
    assert waited <= app.config["LEASE_SECONDS"] + 2


def test_sweep_removes_lapsed_holds_and_idle_gates(app, tmp_path):
    process = hold_in_a_process(app, tmp_path / "dead-host", name=KEY + ".hash")
    kill(process)
    with app.app_context(), locker(app).hold(KEY):
        lapse(KEY + ".hash")
        assert leases.sweep() == 2  # the lapsed hold and its gate, not the live one
        names = db.session.execute(select(Lease.name, Lease.holder)).all()
        db.session.commit()
        assert sorted(name for name, _ in names) == [KEY, KEY]  # the gate and the hold


def test_a_new_names_hold_needs_one_connection_beside_the_sessions(app, tmp_path):
    """A request's session keeps its connection while it takes a lease (MySQL keeps a
    read-only transaction going); the lease's take, and the gate a new name needs, must
    then make do with one more, never hold one while waiting for a third: with every
    thread of a worker doing so, they would wait on each other until the pool gave up."""
    narrow = with_database_leases(create_app({
                         "TESTING": True, "DATA_DIR": str(tmp_path / "narrow"),
                         "DATABASE_URL": app.config["DATABASE_URL"],
                         "DATABASE_POOL_SIZE": 1, "DATABASE_MAX_OVERFLOW": 1,
                         "SQLALCHEMY_ENGINE_OPTIONS": {"pool_timeout": 2}}))
    try:
        with narrow.app_context():
            db.session.execute(select(Lease.name).limit(1)).all()  # the session's own
            for name in ("1" * 32, "2" * 32):  # names no hold has had: gates to make
                with locker(narrow).hold(name, exclusive=False):
                    assert [h.kind for h in holds_of(narrow, name)] == ["s"]
            db.session.commit()
    finally:
        with narrow.app_context():
            db.engine.dispose()

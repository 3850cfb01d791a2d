"""Work after the answer runs on the worker's background threads, not on the connection;
and bodies are hashed beside their receive, buffer by buffer, in order."""
import hashlib
import io
import threading

import pytest
from flask import Flask

from uploadsvc.http import followups as http_followups
from uploadsvc.services.followups import FollowUp
from uploadsvc.storage import beside
from uploadsvc.storage.beside import Ring


def app_with(threads: int) -> Flask:
    app = Flask(__name__)
    app.config["BACKGROUND_THREADS"] = threads
    http_followups.init_app(app)
    return app


def answer_with(app: Flask, work, *args):
    @app.get("/")
    def view():
        return http_followups.after_response(app.make_response("ok"), [FollowUp(work, args)])
    return app.test_client()


def test_the_answer_does_not_wait_for_the_work_after_it():
    app = app_with(2)
    answered, done, ran_on = threading.Event(), threading.Event(), []

    def work():
        ran_on.append(threading.current_thread().name)
        assert answered.wait(10)  # held until the client has its answer
        done.set()

    response = answer_with(app, work).get("/")
    response.close()  # as a server does once the body is sent
    assert response.data == b"ok" and not done.is_set()
    answered.set()
    assert http_followups.drain(app, timeout=10) and done.is_set()
    assert ran_on[0].startswith("follow-up")


def test_with_no_background_threads_the_work_runs_when_the_answer_is_closed():
    app = app_with(0)
    ran_on = []
    response = answer_with(app, lambda: ran_on.append(threading.current_thread())).get("/")
    response.close()
    assert ran_on == [threading.current_thread()]


def test_work_already_waiting_is_not_queued_twice():
    app = app_with(1)
    background = app.extensions[http_followups.EXTENSION]
    release, calls = threading.Event(), []
    background.submit((FollowUp(release.wait, (10,)),))  # keeps the only thread busy
    for _ in range(3):
        background.submit((FollowUp(calls.append, ("catch up",)),))
    release.set()
    assert background.drain(10)
    assert calls == ["catch up"]
    background.submit((FollowUp(calls.append, ("catch up",)),))  # not waiting any more
    assert background.drain(10) and calls == ["catch up"] * 2


def test_a_failing_follow_up_is_logged_and_the_next_ones_run(caplog):
    app = app_with(1)
    background = app.extensions[http_followups.EXTENSION]
    calls = []

    def fails():
        raise OSError("disk gone")

    background.submit((FollowUp(fails), FollowUp(calls.append, (1,))))
    assert background.drain(10)
    assert calls == [1] and "follow-up work failed" in caplog.text


@pytest.mark.parametrize("beside", [True, False])
def test_a_ring_hashes_every_buffer_in_order_before_it_is_refilled(beside):
    data = bytes(range(256)) * 40_000  # about 10 MiB
    src, copied = io.BytesIO(data), bytearray()
    digests = [hashlib.md5(), hashlib.sha1()]
    with Ring(digests, 64 * 1024, beside=beside) as ring:
        for view in ring.buffers():
            n = src.readinto(view[:17_000 + len(copied) % 5_000])  # uneven pieces
            if not n:
                break
            ring.hash(view[:n])
            copied += view[:n]
    assert bytes(copied) == data
    assert digests[0].hexdigest() == hashlib.md5(data).hexdigest()
    assert digests[1].hexdigest() == hashlib.sha1(data).hexdigest()


def test_a_digest_that_fails_beside_fails_the_write():
    class Broken:
        def update(self, data):
            raise ValueError("broken digest")

    with pytest.raises(ValueError, match="broken digest"):
        with Ring([Broken()], 1024) as ring:  # raised by a later buffer, or at the close
            for _, view in zip(range(100), ring.buffers(), strict=False):
                ring.hash(view[:10])


def test_rings_hand_their_buffers_on_and_keep_only_a_few():
    beside._spare.clear()  # noqa: SLF001
    rings = [Ring([hashlib.md5()], 4096) for _ in range(beside.KEEP + 2)]
    first = rings[0]._views  # noqa: SLF001 - which buffers a ring holds
    for ring in rings:
        ring.close()
    assert len(beside._spare) == beside.KEEP
    again = Ring([hashlib.md5()], 4096)
    assert again._views is first  # noqa: SLF001 - the first handed back, taken again
    again.close()
    assert list(again.buffers()) == []  # closed: nothing to read into

"""tus uploads sent in several PATCHes are hashed as they arrive: each PATCH's bytes after its
answer (beside the next PATCH), the one that finishes the upload beside its own receive, so
that finishing only ends the digest."""
import hashlib
import os

import pytest
from sqlalchemy import select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload
from uploadsvc.services import hashing
from uploadsvc.services.followups import FollowUp
from uploadsvc.storage.md5state import Md5State

from .helpers import store_of
from .tus_helpers import TUS, create, head, metadata, patch, path_of


@pytest.fixture
def hashed_ranges(app, monkeypatch):
    """(from, to) of every stretch of an upload's bytes the store hashed from a saved state."""
    calls = []
    original = store_of(app).hash_prefix

    def recording(key, saved, end):
        calls.append((Md5State(saved).length, end))
        return original(key, saved, end)

    monkeypatch.setattr(store_of(app), "hash_prefix", recording)
    return calls


def saved_length(app, path: str) -> int | None:
    """How many bytes of the upload the state in its row covers (None: no state)."""
    with app.app_context():
        state = db.session.execute(select(Upload.md5_state).filter_by(
            key=path.rsplit("/", 1)[1])).scalar_one()
        db.session.commit()
    return None if state is None else Md5State(state).length


def test_patches_are_hashed_as_they_arrive_and_never_read_back(app, client, hashed_ranges):
    data = os.urandom(700_000)
    path = path_of(create(client, len(data)))
    for start, end in ((0, 250_000), (250_000, 500_000)):
        assert patch(client, path, start, data[start:end]).status_code == 204
        assert saved_length(app, path) == end  # saved with the PATCH's own offset
    last = patch(client, path, 500_000, data[500_000:])
    assert last.status_code == 204
    assert last.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert hashed_ranges == []  # no byte read back
    placed = app.config["DATA_DIR"] + last.headers["Upload-Path"]
    with open(placed, "rb") as f:
        assert f.read() == data


@pytest.mark.parametrize("size", [300_000, 9 * 1024 * 1024])  # hashed inline, and beside
def test_a_hash_left_behind_catches_up_then_the_last_patch_goes_on_from_it(
        app, client, hashed_ranges, size):
    data = os.urandom(size)
    third = size // 3
    path = path_of(create(client, len(data)))
    assert patch(client, path, 0, data[:third]).status_code == 204
    with app.app_context():  # as after a failed catch-up: the state is behind the offset
        upload = db.session.execute(select(Upload).filter_by(
            key=path.rsplit("/", 1)[1])).scalar_one()
        upload.md5_state = None
        db.session.commit()
    hashed_ranges.clear()
    assert patch(client, path, third, data[third:2 * third]).status_code == 204
    assert hashed_ranges == [(0, 2 * third)]  # from the first byte, after the answer
    assert saved_length(app, path) == 2 * third
    done = patch(client, path, 2 * third, data[2 * third:])
    assert done.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert hashed_ranges == [(0, 2 * third)]


def test_a_file_sent_in_one_patch_is_hashed_as_it_arrives(app, client, hashed_ranges):
    data = os.urandom(300_000)
    path = path_of(create(client, len(data)))
    done = patch(client, path, 0, data)
    assert done.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert hashed_ranges == []  # never read back


def test_deferred_length_and_a_failed_checksum_keep_the_hash_right(app, client):
    data = os.urandom(200_000)
    path = path_of(create(client, None))
    assert patch(client, path, 0, data[:80_000]).status_code == 204
    bad = patch(client, path, 80_000, data[80_000:150_000],
                **{"Upload-Checksum": "sha1 " + "A" * 27 + "="})
    assert bad.status_code == 460
    assert saved_length(app, path) == 80_000
    assert patch(client, path, 80_000, data[80_000:150_000]).status_code == 204
    done = patch(client, path, 150_000, data[150_000:], **{"Upload-Length": str(len(data))})
    assert done.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()


def test_partial_uploads_are_left_to_their_concatenation(app, client, hashed_ranges):
    parts = [os.urandom(90_000), os.urandom(60_000)]
    paths = []
    for part in parts:
        path = path_of(create(client, len(part), **{"Upload-Concat": "partial"}))
        assert patch(client, path, 0, part[:50_000]).status_code == 204
        assert patch(client, path, 50_000, part[50_000:]).status_code == 204
        paths.append(path)
    final = client.post("/files/", headers={**TUS, "Upload-Metadata": metadata(filename="j"),
                                            "Upload-Concat": "final;" + " ".join(paths)})
    assert final.status_code == 201
    assert hashed_ranges == []
    assert head(client, path_of(final)).headers["Upload-MD5"] == \
        hashlib.md5(b"".join(parts)).hexdigest()


def test_a_state_past_the_end_is_not_used(app, client):
    """A row whose state covers more than the whole file (it cannot happen but by a bug or
    a hand edit) is ignored at finishing: the file is hashed from its start."""
    data = os.urandom(100_000)
    path = path_of(create(client, len(data)))
    assert patch(client, path, 0, data[:40_000]).status_code == 204
    state = Md5State()
    state.update(bytearray(os.urandom(120_000)))
    with app.app_context():
        upload = db.session.execute(select(Upload).filter_by(
            key=path.rsplit("/", 1)[1])).scalar_one()
        assert hashing.saved_prefix(upload, 0) is not None
        upload.md5_state = state.save()
        db.session.commit()
    done = patch(client, path, 40_000, data[40_000:])
    assert done.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()


def test_a_hash_fallen_too_far_behind_is_caught_up_before_the_answer(
        app, client, hashed_ranges, monkeypatch):
    """PATCHes whose bytes were not hashed as they arrived (the saved state was behind
    their offsets), where the background hash cannot keep pace (here it never runs)."""
    monkeypatch.setattr(hashing, "catch_up_later", lambda upload: FollowUp(lambda: None))
    monkeypatch.setattr(hashing, "resume_at", lambda upload, offset: None)
    monkeypatch.setattr(hashing, "LAG_LIMIT", 250_000)
    data = os.urandom(1_000_000)
    path = path_of(create(client, len(data)))
    seen = []
    for start in range(0, 800_000, 100_000):
        assert patch(client, path, start, data[start:start + 100_000]).status_code == 204
        seen.append(saved_length(app, path))
    assert seen == [None, None, 300_000, 300_000, 300_000, 600_000, 600_000, 600_000]
    done = patch(client, path, 800_000, data[800_000:])
    assert done.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()

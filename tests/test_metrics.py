"""/metrics: counters that add up across gunicorn workers, and its configuration."""
import base64
import hashlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from . import resumable_helpers as draft
from . import tus_helpers as tus
from .helpers import random_file, send_chunk, upload_all
from .servers import GunicornServer

CHUNK = 64 * 1024
# Upload metrics counted both in total and by protocol (as uploadsvc_protocol_<name>).
PER_PROTOCOL = ("uploads_created_total", "uploads_completed_total", "uploads_failed_total",
                "bytes_received_total", "chunk_write_seconds_count", "merge_seconds_count")


def scrape(url: str, **kwargs) -> dict:
    """Samples of one /metrics answer, keyed by (name, sorted labels)."""
    response = requests.get(url + "/metrics", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def upload(url: str, data: bytes, name: str, md5: str | None = None) -> int:
    """Upload data the way the browser front ends do, on fresh connections; the status of
    complete-upload."""
    md5 = md5 or hashlib.md5(data).hexdigest()
    total = max(1, -(-len(data) // CHUNK))
    ident = {"md5": md5, "fileName": name, "totalChunks": total}
    with requests.Session() as session:
        assert session.post(url + "/api/check-chunks", json=ident, timeout=10).ok
        for index in range(total):
            fields = {"chunkIndex": str(index), "md5": md5, "fileName": name,
                      "totalChunks": str(total)}
            body = data[index * CHUNK:(index + 1) * CHUNK]
            response = session.post(url + "/api/upload-chunk", data=fields, timeout=10,
                                    files={"chunk": ("blob", body)},
                                    headers={"Connection": "close"})
            assert response.status_code == 200, response.text
        return session.post(url + "/api/complete-upload", json=ident, timeout=30).status_code


def worker_files(directory) -> set[int]:
    """Pids of the processes that wrote counter values."""
    return {int(name.split("_")[1].split(".")[0]) for name in os.listdir(directory)
            if name.startswith("counter_")}


@pytest.fixture
def metrics_server(tmp_path):
    server = GunicornServer(tmp_path / "data", workers=4, env={
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}).start()
    yield server
    server.stop()


def test_counters_add_up_across_workers_and_restarts(metrics_server, tmp_path):
    url = metrics_server.url
    files = [(os.urandom(size), f"m{n}.bin") for n, size in
             enumerate([3 * CHUNK, 2 * CHUNK + 5, CHUNK, 10, 4 * CHUNK, 0])]
    chunks = sum(max(1, -(-len(data) // CHUNK)) for data, _ in files)

    with ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda f: upload(url, *f), files[:3]))
    # Restart every worker that counted something: its counts must survive it.
    served = worker_files(tmp_path / "metrics")
    for pid in served & set(metrics_server.worker_pids()):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (len(metrics_server.worker_pids()) < 4 or
                                           served & set(metrics_server.worker_pids())):
        time.sleep(0.1)
    with ThreadPoolExecutor(3) as pool:
        statuses += list(pool.map(lambda f: upload(url, *f), files[3:]))
    bad = os.urandom(2 * CHUNK)
    failed_status = upload(url, bad, "bad.bin", md5=hashlib.md5(b"other").hexdigest())

    assert statuses == [200] * 6 and failed_status == 422
    assert len(worker_files(tmp_path / "metrics")) >= 2  # values came from several workers
    for _ in range(3):  # whichever worker answers, the sums are the same
        samples = scrape(url)
        assert value(samples, "uploadsvc_uploads_created_total") == 7
        assert value(samples, "uploadsvc_uploads_completed_total") == 6
        assert value(samples, "uploadsvc_uploads_failed_total") == 1
        assert value(samples, "uploadsvc_bytes_received_total") == (
            sum(len(data) for data, _ in files) + len(bad))
        assert value(samples, "uploadsvc_http_requests_total", method="POST",
                     route="/api/upload-chunk", status="200") == chunks + 2
        assert value(samples, "uploadsvc_http_requests_total", method="POST",
                     route="/api/complete-upload", status="422") == 1
        assert value(samples, "uploadsvc_chunk_write_seconds_count") == chunks + 2
        assert value(samples, "uploadsvc_merge_seconds_count") == 6
        # The same, by protocol: every worker's series of each protocol are added up too.
        assert [value(samples, f"uploadsvc_protocol_{name}", protocol="api")
                for name in PER_PROTOCOL] == [
            7, 6, 1, sum(len(data) for data, _ in files) + len(bad), chunks + 2, 6]
        assert all(samples[(f"uploadsvc_protocol_{name}", (("protocol", protocol),))] == 0
                   for name in PER_PROTOCOL[:2] for protocol in ("tus", "ietf"))

    # The next run of the server starts from zero, not from this run's files.
    metrics_server.stop()
    restarted = GunicornServer(tmp_path / "data", workers=1, env={
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}).start()
    try:
        samples = scrape(restarted.url)
        assert value(samples, "uploadsvc_uploads_completed_total") == 0
        assert value(samples, "uploadsvc_bytes_received_total") == 0
        # Each protocol's series is there before its first upload, so rate() sees it.
        assert [samples[("uploadsvc_protocol_uploads_created_total", (("protocol", p),))]
                for p in ("api", "tus", "ietf")] == [0, 0, 0]
    finally:
        restarted.stop()


def test_routes_are_labelled_by_rule_not_path(client):
    md5 = "0" * 32
    assert client.get(f"/api/upload-status/{md5}/secret-name.bin").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    assert 'route="/api/upload-status/<md5>/<fileName>",status="404"' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "secret-name" not in text and "/no/such/page" not in text


@pytest.mark.parametrize("setting", [False, "false", "off", "0"])
def test_metrics_can_be_turned_off(app, setting):
    from uploadsvc import create_app

    off = create_app({"TESTING": True, "DATA_DIR": app.config["DATA_DIR"], "METRICS": setting})
    response = off.test_client().get("/metrics")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_metrics_token_is_required_when_set(app):
    from uploadsvc import create_app

    guarded = create_app({"TESTING": True, "DATA_DIR": app.config["DATA_DIR"],
                          "METRICS_TOKEN": "s3cret"}).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        response = guarded.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = guarded.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200
    assert "uploadsvc_uploads_completed_total" in response.get_data(as_text=True)


def test_each_protocol_is_counted_by_itself_and_in_the_totals(client):
    """/api, tus and the IETF draft each move their own protocol's series, and the totals of
    before still count them all."""
    before = scrape_client(client)
    api_file = random_file(3000, 2048, "api.bin")
    assert upload_all(client, api_file).status_code == 200
    assert client.delete(f"/api/upload/{api_file.md5}/api.bin").status_code == 200
    wrong = hashlib.md5(b"other").hexdigest()
    api_bad = random_file(100, 2048, "api-bad.bin")
    assert send_chunk(client, api_bad, 0, md5=wrong).status_code == 200
    assert client.post("/api/complete-upload", json=api_bad.ident(md5=wrong)).status_code == 422

    done = tus.patch(client, tus.path_of(tus.create(client, 5)), 0, b"hello")
    assert done.status_code == 204
    dropped = tus.path_of(tus.create(client, 10, name="dropped.bin"))
    assert tus.patch(client, dropped, 0, b"half").status_code == 204
    assert client.delete(dropped, headers=tus.TUS).status_code == 204

    data = os.urandom(7000)
    digest = "md5=:" + base64.b64encode(hashlib.md5(data).digest()).decode() + ":"
    assert draft.create(client, 9, data, complete=True, Repr_Digest=digest).status_code == 201
    refused = draft.create(client, 9, data[:-1] + b"x", complete=True, Repr_Digest=digest)
    assert refused.status_code == 422, refused.get_data(as_text=True)

    after = scrape_client(client)

    def moved(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    expected = {  # created, completed, failed, bytes, chunk writes, merges
        "api": [2, 1, 1, 3100, 3, 1],
        "tus": [2, 1, 0, 9, 2, 0],
        "ietf": [2, 1, 1, 14000, 2, 0],
    }
    for protocol, counts in expected.items():
        assert [moved(f"uploadsvc_protocol_{name}", protocol=protocol)
                for name in PER_PROTOCOL] == counts, protocol
    assert [moved(f"uploadsvc_{name}") for name in PER_PROTOCOL] == [
        sum(counts[n] for counts in expected.values()) for n in range(len(PER_PROTOCOL))]
    removed = {(protocol, reason): moved("uploadsvc_protocol_uploads_removed_total",
                                         protocol=protocol, reason=reason)
               for protocol in expected for reason in ("deleted", "verification_failed")}
    assert {key: n for key, n in removed.items() if n} == {
        ("api", "deleted"): 1, ("tus", "deleted"): 1, ("ietf", "verification_failed"): 1}
    assert moved("uploadsvc_uploads_removed_total", reason="deleted") == 2
    assert moved("uploadsvc_uploads_removed_total", reason="verification_failed") == 1
    # A protocol's histogram has the total's buckets, so they add up bucket by bucket too.
    bounds = [dict(labels)["le"] for name, labels in after
              if name == "uploadsvc_chunk_write_seconds_bucket"]
    assert len(bounds) == 14 and moved("uploadsvc_chunk_write_seconds_bucket", le="+Inf") == 7
    assert [moved("uploadsvc_chunk_write_seconds_bucket", le=le) for le in bounds] == [
        sum(moved("uploadsvc_protocol_chunk_write_seconds_bucket", protocol=p, le=le)
            for p in expected) for le in bounds]


def scrape_client(client) -> dict:
    """Samples of /metrics through the test client (this process's own metrics)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}

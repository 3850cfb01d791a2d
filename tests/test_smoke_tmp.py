from .helpers import random_file, upload_all


def test_upload_roundtrip(client, data_dir):
    f = random_file(300_000, 100_000)
    r = upload_all(client, f, order=[2, 0, 1])
    assert r.status_code == 200, r.json
    assert (data_dir / "uploads" / "test.bin").read_bytes() == f.data


def test_live(live_server):
    import requests
    assert requests.get(live_server.url + "/api/health").json()["status"] == "ok"

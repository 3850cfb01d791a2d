"""The benchmark harness, run end to end at its smallest scale so that it keeps working, and
its chart, drawn from the JSON it writes."""
import argparse
import http.server
import json
import os
import re
import struct
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from bench import chart, connections, run
from bench.report import Settings, as_json, build_rows, render, requests_key
from bench.servers import PROJECT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
S3_SECTIONS = ("S3 store", "1 host, S3", "3 hosts, S3")
# The other object stores, on their emulators, each on one host and on three.
OTHER_STORES = ("azure", "gcs")
OTHER_RATES = tuple(f"{kind}{hosts}{key}" for kind in OTHER_STORES for hosts in ("one", "")
                    for key in ("_seed_inflight_mib_s", "_seed_many_mib_s", "tus_one_mib_s",
                                "tus_many_mib_s"))
# The object store's workloads, each with its store requests counted.
S3_RATES = ("s3_ceiling_one_mib_s", "s3_ceiling_many_mib_s", "s3_seed_inflight_mib_s",
            "s3_seed_many_mib_s", "s3tus_one_mib_s", "s3tus_many_mib_s",
            "s3one_seed_inflight_mib_s", "s3one_seed_many_mib_s", "s3onetus_one_mib_s",
            "s3onetus_many_mib_s", "s3onetusjs_one_mib_s", "tusnodes3_one_mib_s",
            "tusnodes3_many_mib_s", "tusnodes3_tusjs_one_mib_s")


def assert_is_a_chart(png: Path) -> None:
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert struct.unpack(">II", data[16:24]) == (1100, 550)  # IHDR: 11 × 5.5 in at 100 dpi
    assert len(data) > 20_000  # bars, labels and lines, not an empty canvas


def tiny_settings(tmp_path: Path) -> Settings:
    """The settings of `python -m bench --scale tiny`: 4 MiB, 4 × 1 MiB, 1 MiB chunks."""
    return Settings(*run.SCALES["tiny"], run.IN_FLIGHT, tmp_path)


def report_of(settings: Settings, figures: defaultdict) -> dict:
    """The JSON `python -m bench --json` writes, for the given figures: once the rows are
    built, figures holds every key they read, as the bench's figures do."""
    rows = build_rows(settings, figures)
    return json.loads(json.dumps(as_json(settings, dict(figures), rows)))


def write_json(tmp_path: Path, report: dict) -> Path:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(report))
    return path


def test_bench_runs_at_tiny_scale_and_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    # The one-host servers with 2 workers, not gunicorn.conf.py's 5 on 2 cores: at 4 MiB
    # the figures only need to exist, and each worker costs a second of CPU to start (the
    # hosts of the clusters have 2 each already).
    result = subprocess.run([sys.executable, "-m", "bench", "--scale", "tiny", "--json", str(out),
                             "--tmp", str(tmp_path)], cwd=PROJECT, capture_output=True,
                            text=True, timeout=480, env={**os.environ, "WEB_CONCURRENCY": "2"})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    figures = report["figures"]
    for key in ("dd_mib_s", "md5sum_s", "sink_one_mib_s", "sink_many_mib_s", "seed_one_mib_s",
                "seed_inflight_mib_s", "seed_many_mib_s", "seed_big_mib_s",
                "seed_complete_in_order_s", "seed_complete_random_s", "seed_rss_mib",
                "tusnode_one_mib_s", "tusnode_many_mib_s", "tusnode_rss_mib",
                "tus_one_mib_s", "tus_many_mib_s", "tus_rss_mib",
                "seed_chunkmd5_mib_s", "tusjs_one_mib_s", "tusnode_tusjs_one_mib_s",
                "s3_ceiling_one_mib_s", "s3_ceiling_many_mib_s", "s3_seed_inflight_mib_s",
                "s3_seed_many_mib_s", "s3_seed_rss_mib", "s3tus_one_mib_s", "s3tus_many_mib_s",
                "s3tus_rss_mib", "s3one_seed_inflight_mib_s", "s3one_seed_many_mib_s",
                "s3one_seed_rss_mib", "s3onetus_one_mib_s", "s3onetus_many_mib_s",
                "s3onetusjs_one_mib_s", "s3onetus_rss_mib", "tusnodes3_one_mib_s",
                "tusnodes3_many_mib_s", "tusnodes3_tusjs_one_mib_s", "tusnodes3_rss_mib",
                *(requests_key(key) for key in S3_RATES),
                *(f"{prefix}{key}" for prefix in ("lazy", "nosync")
                  for key in ("_one_mib_s", "_inflight_mib_s", "_many_mib_s", "_rss_mib",
                              "tus_one_mib_s", "tus_many_mib_s"))):
        assert figures[key] and figures[key] > 0, key
    assert "| seed API" in result.stdout and "md5sum" in result.stdout
    assert "connections: one per stream, kept open" in result.stdout
    assert "| FSYNC=complete" in result.stdout and "| FSYNC=false" in result.stdout
    assert "| tus-js-client" in result.stdout
    assert "| 3 hosts, S3" in result.stdout and figures["s3_workers"] == 6
    assert "| 1 host, S3" in result.stdout and figures["s3one_workers"] == 2
    assert_store_rows(report)
    assert_other_store_rows(report, result.stdout)
    # tus-js-client sent every request of an upload on one kept-open connection
    assert figures["tusjs_connections"] == figures["tusnode_tusjs_connections"] == 1
    # the bench cleans up its files and data directory
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]

    png = tmp_path / "bench.png"
    result = subprocess.run([sys.executable, "-m", "bench.chart", str(out), str(png)],
                            cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_is_a_chart(png)
    drawn = chart.bars(report)
    assert all(b.uploadsvc and b.tusnode for b in drawn), drawn
    on_s3 = chart.bars(report, chart.S3_WORKLOADS)
    assert all(b.ceiling and b.uploadsvc_requests and b.tusnode_requests for b in on_s3), on_s3
    assert all(rate for rate in chart.limits(report).values())


def assert_store_rows(report: dict) -> None:
    """Every object store row has its store requests per chunk, the ceiling's exactly one
    request per file (boto3 sends a file under its multipart threshold in one PUT), and
    uploadsvc's rows have their ratio to @tus/s3-store in the same run."""
    rows = [row for row in report["rows"] if row["section"] in S3_SECTIONS and
            row["unit"] == "MiB/s"]
    assert len(rows) == 23
    assert all(row["store_requests"] and row["store_requests"] > 0 for row in rows)
    against_peer = [row for row in rows if row["reference"].startswith("@tus/s3-store")]
    assert len(against_peer) == 5 and all(row["ratio"] > 0 for row in against_peer)
    against_ceiling = [row for row in rows if row["reference"] == "boto3"]
    assert len(against_ceiling) == 12 and all(row["ratio"] > 0 for row in against_ceiling)
    store = report["store_requests"]
    for key in ("s3_ceiling_one_mib_s", "s3_ceiling_many_mib_s"):
        assert store[key]["requests"] == {"PUT": store[key]["pieces"]}, store[key]
    assert report["figures"]["s3_ceiling_many_requests_per_chunk"] == 1.0
    for key in S3_RATES:
        assert sum(store[key]["requests"].values()) >= store[key]["pieces"] > 0, key


def assert_other_store_rows(report: dict, table: str) -> None:
    """Azure's and GCS's rows, on one host and three: every rate and peak RSS measured, every
    rate with its store requests per chunk (counted by the proxy in front of the emulator)
    and its ratio to the same workload on S3."""
    figures, store = report["figures"], report["store_requests"]
    for kind in OTHER_STORES:
        for prefix in (f"{kind}one", kind):
            for key in (f"{prefix}_seed_rss_mib", f"{prefix}tus_rss_mib"):
                assert figures[key] and figures[key] > 0, key
        assert figures[f"{kind}_workers"] == 6 and figures[f"{kind}one_workers"] == 2
    for key in OTHER_RATES:
        assert figures[key] > 0 and figures[requests_key(key)] > 0, key
        assert sum(store[key]["requests"].values()) >= store[key]["pieces"] > 0, key
    for section in ("1 host, Azure", "3 hosts, Azure", "1 host, GCS", "3 hosts, GCS"):
        assert f"| {section}" in table
        rows = [row for row in report["rows"] if row["section"] == section]
        assert len(rows) == 6 and all(row["ratio"] > 0 for row in rows), rows


def test_in_flight_is_what_the_upload_page_sends(tmp_path):
    page = (PROJECT / "uploadsvc" / "http" / "page_assets" / "index.html").read_text()
    (parallel,) = re.findall(r'data-parallel="(\d+)"', page)
    assert run.IN_FLIGHT == int(parallel)
    rows = build_rows(tiny_settings(tmp_path), defaultdict(lambda: 100.0))
    assert any(row.name.startswith(f"4 MiB, {parallel} chunks in flight") for row in rows)


def test_the_targets_of_one_stream_are_md5sums_rate(tmp_path):
    figures = defaultdict(lambda: 100.0, md5sum_s=0.01, tus_one_mib_s=380.0,
                          seed_inflight_mib_s=340.0, seed_complete_inflight_s=0.002)
    rows = build_rows(tiny_settings(tmp_path), figures)

    def row(section: str, start: str, reference: str):
        (found,) = [r for r in rows if r.section == section and r.name.startswith(start)
                    and r.reference == reference]
        return found

    assert row("tus", "4 MiB × 1", "md5sum").ok is True  # 380 of md5sum's 400 MiB/s
    assert row("seed API", "4 MiB, 3 chunks in flight", "md5sum").ok is False  # 0.85×
    complete = row("seed API", "complete-upload, 4 MiB with", "md5sum")
    assert complete.ratio == pytest.approx(0.2) and complete.ok is False


def test_tus_js_client_rows_compare_with_tus_server_and_the_bench_client(tmp_path):
    figures = defaultdict(lambda: 100.0, tusjs_one_mib_s=90.0, tusnode_tusjs_one_mib_s=60.0,
                          tus_one_mib_s=120.0, tusnode_one_mib_s=80.0)
    rows = [row for row in build_rows(tiny_settings(tmp_path), figures)
            if "tus-js-client" in row.section + row.name]
    by_reference = {(row.section, row.reference): row for row in rows}
    assert by_reference["tus-js-client", "@tus/server, tus-js-client"].ratio == 1.5
    assert by_reference["tus-js-client", "@tus/server, tus-js-client"].ok is True
    assert by_reference["tus-js-client", "bench client"].ratio == 0.75
    assert by_reference["references", "bench client"].ratio == 0.75  # @tus/server, 60 / 80
    for row in report_of(tiny_settings(tmp_path), figures)["rows"]:
        if "tus-js-client" in row["section"] + row["name"]:
            assert row["ratio"] is not None


def test_object_store_rows_compare_with_tus_s3_store_and_the_ceiling(tmp_path):
    figures = defaultdict(lambda: 100.0, s3onetus_one_mib_s=30.0, tusnodes3_one_mib_s=20.0,
                          s3_ceiling_one_mib_s=60.0, s3onetus_one_requests_per_chunk=9.25,
                          tusnodes3_one_requests_per_chunk=5.5)
    rows = build_rows(tiny_settings(tmp_path), figures)
    (peer, ceiling) = [row for row in rows if row.section == "1 host, S3"
                       and row.name == "tus 4 MiB × 1"]
    assert (peer.reference, peer.ratio, peer.store_requests) == ("@tus/s3-store", 1.5, 9.25)
    assert (ceiling.reference, ceiling.ratio) == ("boto3", 0.5)
    (node,) = [row for row in rows if row.name == "@tus/server + @tus/s3-store, tus 4 MiB × 1"]
    assert node.store_requests == 5.5 and node.ratio == pytest.approx(1 / 3)
    table = render(rows)
    assert "S3 req/chunk" in table.splitlines()[0]
    assert re.search(r"\| 1 host, S3 +\| tus 4 MiB × 1 +\| 30 MiB/s .*\| 9\.25 +\|", table)


def test_chart_is_drawn_from_the_bench_json_with_every_workload(tmp_path):
    figures = defaultdict(lambda: 100.0, md5sum_s=0.01)
    report = report_of(tiny_settings(tmp_path), figures)
    out = tmp_path / "chart.png"
    assert chart.main([str(write_json(tmp_path, report)), str(out)]) == 0
    assert_is_a_chart(out)
    drawn = chart.bars(report)
    assert len(drawn) == len(chart.WORKLOADS)
    assert all(b.uploadsvc == b.tusnode == 100.0 for b in drawn)
    on_s3 = chart.bars(report, chart.S3_WORKLOADS)
    assert all(b.ceiling == b.uploadsvc_requests == b.tusnode_requests == 100.0 for b in on_s3)
    assert [b.label.split("\n")[0] for b in drawn].count("tus-js-client") == 1
    assert chart.limits(report)["md5sum"] == 400.0  # 4 MiB in 0.01 s


def test_chart_marks_missing_figures_instead_of_failing(tmp_path):
    """A run without Node or a tus endpoint still draws, with those bars marked n/a."""
    missing = ("tusnode_one_mib_s", "tusnode_many_mib_s", "tus_one_mib_s", "tus_many_mib_s",
               "tusjs_one_mib_s", "tusnode_tusjs_one_mib_s")
    figures = defaultdict(lambda: 100.0, {key: None for key in missing})
    report = report_of(tiny_settings(tmp_path), figures)
    out = tmp_path / "chart.png"
    drawn = chart.draw(report, out)
    assert_is_a_chart(out)
    assert drawn[0].uploadsvc == 100.0 and drawn[0].tusnode is None


class Counting(http.server.BaseHTTPRequestHandler):
    """Answers 200 with the client's port; /close closes the connection after answering."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - the handler's own name
        self.rfile.read(int(self.headers["Content-Length"]))
        body = str(self.client_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.path == "/close"

    def log_message(self, *args):
        pass


def test_a_stream_keeps_its_connection_and_reopens_one_the_server_closed():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = connections.Connection(server.server_address[1])
    try:
        ports = [conn.request("POST", "/", body=[b"x" * 1000]).body for _ in range(3)]
        assert len(set(ports)) == 1  # one connection, kept open
        conn.request("POST", "/close", body=[b"y"])  # the server closes it after answering
        again = conn.request("POST", "/", body=[b"z" * 10])
        assert again.status == 200 and again.body != ports[0]  # opened anew, transparently
    finally:
        conn.close()
        server.shutdown()
        server.server_close()


def test_the_store_frees_removed_bytes_when_the_bench_asks(tmp_path):
    """The bench's SeaweedFS has as many volumes as its disk allows and compacts them only
    every 14 minutes on its own: a full-scale run frees what it removed as it goes."""
    from bench.store import MeteredSeaweedFS
    from tests.seaweedfs import BUCKET

    store = MeteredSeaweedFS(tmp_path / "seaweedfs").start()
    try:
        s3 = store.client()
        body = os.urandom(4 * 1024 * 1024)
        for i in range(8):
            s3.put_object(Bucket=BUCKET, Key=f"removed-{i}", Body=body)
        s3.put_object(Bucket=BUCKET, Key="kept", Body=b"kept")
        assert store.volume_bytes()[0] >= 8 * len(body)
        for i in range(8):
            s3.delete_object(Bucket=BUCKET, Key=f"removed-{i}")
        store.reclaim()
        stored, deleted = store.volume_bytes()
        assert stored < len(body) and deleted == 0  # left: the kept object's bytes
        assert s3.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == b"kept"
    finally:
        store.stop()


def test_a_bench_that_stops_reports_what_it_measured_before(tmp_path, capsys):
    """A failure an hour in keeps the figures measured until then: the table with the rest
    n/a, and its JSON beside the kept logs."""
    results = run.Results()
    results.add("dd_mib_s", 300.0)
    results.add("seed_one_mib_s", 150.0)
    results.add("tusnode_one_mib_s", 200.0)
    args = argparse.Namespace(new_connections=False)
    out = tmp_path / "failed" / "partial.json"
    run.report(tiny_settings(tmp_path), args, results, out)
    table = capsys.readouterr().out
    assert re.search(r"\| seed API +\| 4 MiB × 1 stream.*\| 150 MiB/s .*\| 0\.75", table)
    saved = json.loads(out.read_text())
    assert saved["figures"] == {"dd_mib_s": 300.0, "seed_one_mib_s": 150.0,
                                "tusnode_one_mib_s": 200.0}
    (row,) = [r for r in saved["rows"] if r["name"].startswith("4 MiB × 1 stream")]
    assert row["ratio"] == 0.75
    assert all(r["value"] is None for r in saved["rows"] if r["section"] == "1 host, S3")

"""The benchmark harness, run end to end at its smallest scale so that it keeps working."""
import http.server
import json
import subprocess
import sys
import threading

from bench import connections
from bench.servers import PROJECT


def test_bench_runs_at_tiny_scale_and_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--scale", "tiny", "--json", str(out),
                             "--tmp", str(tmp_path)], cwd=PROJECT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    figures = report["figures"]
    for key in ("dd_mib_s", "md5sum_s", "sink_one_mib_s", "sink_many_mib_s", "seed_one_mib_s",
                "seed_inflight_mib_s", "seed_many_mib_s", "seed_big_mib_s",
                "seed_complete_in_order_s", "seed_complete_random_s", "seed_rss_mib",
                "tusnode_one_mib_s", "tusnode_many_mib_s", "tusnode_rss_mib",
                "tus_one_mib_s", "tus_many_mib_s", "tus_rss_mib",
                "seed_chunkmd5_mib_s",
                *(f"{prefix}{key}" for prefix in ("lazy", "nosync")
                  for key in ("_one_mib_s", "_inflight_mib_s", "_many_mib_s", "_rss_mib",
                              "tus_one_mib_s", "tus_many_mib_s"))):
        assert figures[key] and figures[key] > 0, key
    assert "| seed API" in result.stdout and "md5sum" in result.stdout
    assert "connections: one per stream, kept open" in result.stdout
    assert "| FSYNC=complete" in result.stdout and "| FSYNC=false" in result.stdout
    # the bench cleans up its files and data directory
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


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

"""The benchmark harness, run end to end at its smallest scale so that it keeps working."""
import json
import subprocess
import sys

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
                *(f"{prefix}{key}" for prefix in ("lazy", "nosync")
                  for key in ("_one_mib_s", "_inflight_mib_s", "_many_mib_s", "_rss_mib",
                              "tus_one_mib_s", "tus_many_mib_s"))):
        assert figures[key] and figures[key] > 0, key
    assert "| seed API" in result.stdout and "md5sum" in result.stdout
    assert "| FSYNC=complete" in result.stdout and "| FSYNC=false" in result.stdout
    # the bench cleans up its files and data directory
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]

"""The benchmark: uploadsvc against its references, measured in one run, printed as one table.

Usage: python -m bench [--scale full|small|tiny] [--json FILE]; sizes can also be set with
BENCH_* environment variables (see docs/performance.md).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import client, connections, hosts, servers, tus_js
from .files import make_file
from .report import FSYNC_MODES, GiB, MiB, Row, Settings, as_json, build_rows, render

SCALES = {  # size, concurrent size, concurrency, big size, chunk size
    "full": (1 * GiB, 256 * MiB, 8, 4 * GiB, 5 * MiB),
    "small": (64 * MiB, 16 * MiB, 8, 128 * MiB, 5 * MiB),
    "tiny": (4 * MiB, 1 * MiB, 4, 8 * MiB, 1 * MiB),
}
# Runs of each workload that has a target, whose median is its figure: a virtual machine's
# speed drifts from one run to the next (by 2x here), and a median of three runs of both
# servers in one bench keeps a ratio from resting on one lucky or unlucky run.
REPEAT = {"full": 3, "small": 3, "tiny": 1}
# Where a failed run leaves its servers' logs (git-ignored, as the results).
RESULTS = Path(__file__).resolve().parent / "results"
# Chunks in flight for the "in flight" workloads: what the upload page sends
# (data-parallel in uploadsvc/http/page_assets/index.html).
IN_FLIGHT = 3


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, float | None] = field(default_factory=dict)
    # The object store's requests during each of its workloads, by figure key (bench/hosts.py).
    store: dict[str, dict] = field(default_factory=dict)

    def add(self, key: str, value: float | None) -> float | None:
        self.figures[key] = value
        return value


def rate(size: int, seconds: float) -> float:
    return size / MiB / seconds


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def median_run(s: Settings, run):
    """run() s.repeat times; the result whose key (a rate, or a Timing's total seconds) is
    the median."""
    results = [run() for _ in range(s.repeat)]
    return sorted(results, key=lambda result: getattr(result, "total", result))[
        len(results) // 2]


def concurrently(jobs: list, work) -> float:
    """Run work(job) for every job at once; the wall-clock seconds of all of them."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, len(jobs))) as pool:
        for _ in pool.map(work, jobs):  # re-raises the first failure
            pass
    return time.perf_counter() - started


def measure_references(s: Settings, one, parts, results: Results) -> None:
    dd_out = s.workdir / "dd.bin"
    seconds = timed(["dd", f"if={one.path}", f"of={dd_out}", "bs=4M", "conv=fdatasync",
                     "status=none"])
    dd_out.unlink()
    results.add("dd_mib_s", rate(s.size, seconds))
    results.add("md5sum_s", timed(["md5sum", one.path]))

    with servers.Sink(s.workdir) as sink:
        results.add("sink_one_mib_s", rate(s.size, client.sink_put(sink.port, one).total))
        wall = concurrently(parts, lambda part: client.sink_put(sink.port, part))
        results.add("sink_many_mib_s", rate(s.concurrent_size * s.concurrency, wall))


def measure_tus(port: int, s: Settings, one, parts, prefix: str, results: Results) -> None:
    def one_stream() -> client.Timing:
        timing, path = client.tus_upload(port, one, s.chunk, "one.bin")
        client.tus_delete(port, path)
        return timing

    def many() -> float:
        paths = []
        wall = concurrently(list(enumerate(parts)), lambda job: paths.append(
            client.tus_upload(port, job[1], s.chunk, f"part{job[0]}.bin")[1]))
        for path in paths:
            client.tus_delete(port, path)
        return wall

    results.add(f"{prefix}_one_mib_s", rate(s.size, median_run(s, one_stream).total))
    results.add(f"{prefix}_many_mib_s", rate(s.concurrent_size * s.concurrency,
                                             median_run(s, many)))


def measure_tus_js(port: int, s: Settings, one, prefix: str, results: Results) -> None:
    """One stream through tus-js-client (bench/tus_js.py), a real tus client."""
    if not tus_js.available():
        results.add(f"{prefix}_one_mib_s", None)
        results.add(f"{prefix}_connections", None)
        return
    upload = tus_js.upload(port, one, s.chunk, "one-js.bin")
    client.tus_delete(port, upload.path)
    results.add(f"{prefix}_one_mib_s", rate(s.size, upload.seconds))
    results.add(f"{prefix}_connections", upload.connections)


def measure_reference_tus(s: Settings, one, parts, results: Results) -> None:
    if not servers.TusReference.available():
        for key in ("tusnode_one_mib_s", "tusnode_many_mib_s", "tusnode_rss_mib",
                    "tusnode_tusjs_one_mib_s", "tusnode_tusjs_connections"):
            results.add(key, None)
        return
    with servers.TusReference(s.workdir) as node:
        with servers.PeakMemory(node) as memory:
            measure_tus(node.port, s, one, parts, "tusnode", results)
        results.add("tusnode_rss_mib", memory.peak / MiB)
        measure_tus_js(node.port, s, one, "tusnode_tusjs", results)


def measure_uploadsvc(s: Settings, one, parts, big, results: Results) -> None:
    with servers.Uploadsvc(s.workdir) as svc:
        port = svc.port
        with servers.PeakMemory(svc) as memory:
            _measure_seed(port, s, one, parts, big, results)
        results.add("seed_rss_mib", memory.peak / MiB)
        results.add("seed_workers", len(memory.peaks))
        if client.has_tus(port):
            with servers.PeakMemory(svc) as memory:
                measure_tus(port, s, one, parts, "tus", results)
            results.add("tus_rss_mib", memory.peak / MiB)
            measure_tus_js(port, s, one, "tusjs", results)
        else:
            for key in ("tus_one_mib_s", "tus_many_mib_s", "tus_rss_mib", "tusjs_one_mib_s",
                        "tusjs_connections"):
                results.add(key, None)
    # The same throughput workloads with chunks acknowledged from the page cache, then with
    # no fsync at all, as @tus/server runs.
    for fsync, prefix in FSYNC_MODES:
        with servers.Uploadsvc(s.workdir, {"UPLOADSVC_FSYNC": fsync}) as svc:
            with servers.PeakMemory(svc) as memory:
                _measure_throughput(svc.port, s, one, parts, prefix, results)
                measure_tus(svc.port, s, one, parts, f"{prefix}tus", results)
            results.add(f"{prefix}_rss_mib", memory.peak / MiB)


def _seed(port: int, s: Settings, data, name: str, **options) -> client.Timing:
    timing = client.seed_upload(port, data, s.chunk, name, **options)
    client.seed_delete(port, data, name)
    return timing


def _measure_throughput(port: int, s: Settings, one, parts, prefix: str,
                        results: Results) -> None:
    timing = median_run(s, lambda: _seed(port, s, one, "one.bin"))
    results.add(f"{prefix}_one_mib_s", rate(s.size, timing.total))
    results.add(f"{prefix}_complete_in_order_s", timing.last)
    timing = median_run(s, lambda: _seed(port, s, one, "one.bin", in_flight=s.in_flight))
    results.add(f"{prefix}_inflight_mib_s", rate(s.size, timing.total))
    results.add(f"{prefix}_complete_inflight_s", timing.last)

    def many() -> float:
        # Timed to the last complete-upload's answer; the uploads are removed after.
        wall = concurrently(list(enumerate(parts)), lambda job: client.seed_upload(
            port, job[1], s.chunk, f"part{job[0]}.bin"))
        for i, part in enumerate(parts):
            client.seed_delete(port, part, f"part{i}.bin")
        return wall

    results.add(f"{prefix}_many_mib_s", rate(s.concurrent_size * s.concurrency,
                                             median_run(s, many)))


def _measure_seed(port: int, s: Settings, one, parts, big, results: Results) -> None:
    def seed(data, name, **options) -> client.Timing:
        return _seed(port, s, data, name, **options)

    _measure_throughput(port, s, one, parts, "seed", results)
    order = list(range(-(-s.size // s.chunk)))
    random.Random(1).shuffle(order)
    timing = seed(one, "one.bin", order=order)
    results.add("seed_complete_random_s", timing.last)
    timing = seed(big, "big.bin", in_flight=s.in_flight)
    results.add("seed_big_mib_s", rate(s.big_size, timing.total))
    timing = seed(one, "one.bin", in_flight=s.in_flight, chunk_md5=True)
    results.add("seed_chunkmd5_mib_s", rate(s.size, timing.total))


def keep_logs(workdir: Path) -> Path:
    """Copy every server's log out of the bench's temp dir, which goes, to
    bench/results/failed-<time>/, which it returns."""
    kept = RESULTS / f"failed-{time.strftime('%Y%m%d-%H%M%S')}"
    logs = [path for path in workdir.rglob("*.log") if path.is_file()]
    if not logs:
        return kept
    for path in logs:
        target = kept / path.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    print(f"the servers' logs are kept in {kept}", flush=True)
    return kept


def settings(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=SCALES, default=os.environ.get("BENCH_SCALE", "full"))
    parser.add_argument("--json", help="also write the figures and rows to this file")
    parser.add_argument("--tmp", default=os.environ.get("BENCH_TMP"),
                        help="parent of the bench's temp dir (bench files and data dir)")
    parser.add_argument("--new-connections", action="store_true",
                        default=bool(os.environ.get("BENCH_NEW_CONNECTIONS")),
                        help="a new connection for every request, instead of one kept open "
                             "per stream as real clients keep it")
    args = parser.parse_args(argv)
    connections.KEEP_ALIVE = not args.new_connections
    size, concurrent_size, concurrency, big_size, chunk = SCALES[args.scale]

    def env(name: str, default: int) -> int:
        return int(os.environ.get(f"BENCH_{name}", default))

    workdir = Path(tempfile.mkdtemp(prefix="uploadsvc-bench-", dir=args.tmp))
    return Settings(env("SIZE", size), env("CONCURRENT_SIZE", concurrent_size),
                    env("CONCURRENCY", concurrency), env("BIG_SIZE", big_size),
                    env("CHUNK", chunk), env("IN_FLIGHT", IN_FLIGHT), workdir,
                    max(1, env("REPEAT", REPEAT[args.scale]))), args


def main(argv: list[str] | None = None) -> int:
    s, args = settings(argv)
    results = Results()
    try:
        free = shutil.disk_usage(s.workdir).free
        needed = 3 * (s.size + max(s.big_size, s.concurrent_size * s.concurrency)) + \
            hosts.disk_needed(s)
        if free < needed:
            raise SystemExit(f"{s.workdir}: {free // GiB} GiB free, about {needed // GiB} needed")
        print(f"bench files in {s.workdir}", flush=True)
        (one,) = make_file(s.workdir / "one.bin", s.size, [(0, s.size)])
        pool_size = max(s.big_size, s.concurrent_size * s.concurrency)
        slices = [(i * s.concurrent_size, s.concurrent_size) for i in range(s.concurrency)]
        *parts, big = make_file(s.workdir / "pool.bin", pool_size,
                                slices + [(0, s.big_size)])
        for step in (measure_references, measure_reference_tus):
            print(f"measuring {step.__name__.removeprefix('measure_')}", flush=True)
            step(s, one, parts, results)
        print("measuring uploadsvc", flush=True)
        measure_uploadsvc(s, one, parts, big, results)
        print(f"measuring the object store: uploadsvc on 1 and {hosts.HOSTS} hosts, "
              "@tus/server with @tus/s3-store", flush=True)
        hosts.measure_hosts(s, one, parts, results)
    except BaseException:
        kept = keep_logs(s.workdir)
        if results.figures:  # what was measured before the failure is not lost with it
            print("the bench stopped; what it measured before that:", flush=True)
            report(s, args, results, kept / "partial.json")
        raise
    finally:
        shutil.rmtree(s.workdir, ignore_errors=True)
    report(s, args, results, Path(args.json) if args.json else None)
    return 0


def report(s: Settings, args: argparse.Namespace, results: Results, out: Path | None) -> None:
    """Print the table (a figure not measured is n/a) and write it as JSON to out."""
    figures = defaultdict(lambda: None, results.figures)
    rows = build_rows(s, figures)
    mode = "a new one per request" if args.new_connections else "one per stream, kept open"
    print(f"connections: {mode}")
    print(render(rows), flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(as_json(s, results.figures, rows, results.store), indent=2))

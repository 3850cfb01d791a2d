"""The benchmark: uploadsvc against its references, measured in one run, printed as one table.

Usage: python -m bench [--scale full|small|tiny] [--json FILE]; sizes can also be set with
BENCH_* environment variables (see README's Performance section).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import client, servers
from .files import make_file

MiB = 1024 * 1024
GiB = 1024 * MiB

SCALES = {  # size, concurrent size, concurrency, big size, chunk size
    "full": (1 * GiB, 256 * MiB, 8, 4 * GiB, 5 * MiB),
    "small": (64 * MiB, 16 * MiB, 8, 128 * MiB, 5 * MiB),
    "tiny": (4 * MiB, 1 * MiB, 4, 8 * MiB, 1 * MiB),
}
IN_FLIGHT = 4
# UPLOADSVC_FSYNC settings measured after the default one, and their keys' prefixes.
FSYNC_MODES = (("complete", "lazy"), ("false", "nosync"))


@dataclass
class Row:
    """One line of the table: a figure, and its ratio to a reference figure."""

    section: str
    name: str
    value: float | None
    unit: str
    reference: str = ""
    ref_value: float | None = None
    target: str = ""
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.ref_value:
            return None
        return self.value / self.ref_value


@dataclass
class Settings:
    size: int
    concurrent_size: int
    concurrency: int
    big_size: int
    chunk: int
    in_flight: int
    workdir: Path


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, float | None] = field(default_factory=dict)

    def add(self, key: str, value: float | None) -> float | None:
        self.figures[key] = value
        return value


def rate(size: int, seconds: float) -> float:
    return size / MiB / seconds


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


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
    timing, path = client.tus_upload(port, one, s.chunk, "one.bin")
    client.tus_delete(port, path)
    results.add(f"{prefix}_one_mib_s", rate(s.size, timing.total))
    paths = []
    wall = concurrently(list(enumerate(parts)), lambda job: paths.append(
        client.tus_upload(port, job[1], s.chunk, f"part{job[0]}.bin")[1]))
    for path in paths:
        client.tus_delete(port, path)
    results.add(f"{prefix}_many_mib_s", rate(s.concurrent_size * s.concurrency, wall))


def measure_reference_tus(s: Settings, one, parts, results: Results) -> None:
    if not servers.TusReference.available():
        results.add("tusnode_one_mib_s", None)
        results.add("tusnode_many_mib_s", None)
        results.add("tusnode_rss_mib", None)
        return
    with servers.TusReference(s.workdir) as node, servers.PeakMemory(node) as memory:
        measure_tus(node.port, s, one, parts, "tusnode", results)
    results.add("tusnode_rss_mib", memory.peak / MiB)


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
        else:
            for key in ("tus_one_mib_s", "tus_many_mib_s", "tus_rss_mib"):
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
    timing = _seed(port, s, one, "one.bin")
    results.add(f"{prefix}_one_mib_s", rate(s.size, timing.total))
    results.add(f"{prefix}_complete_in_order_s", timing.last)
    timing = _seed(port, s, one, "one.bin", in_flight=s.in_flight)
    results.add(f"{prefix}_inflight_mib_s", rate(s.size, timing.total))
    results.add(f"{prefix}_complete_inflight_s", timing.last)
    wall = concurrently(list(enumerate(parts)),
                        lambda job: _seed(port, s, job[1], f"part{job[0]}.bin"))
    results.add(f"{prefix}_many_mib_s", rate(s.concurrent_size * s.concurrency, wall))


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


def build_rows(s: Settings, r: dict) -> list[Row]:
    size, parts = _size(s.size), f"{s.concurrency} × {_size(s.concurrent_size)}"
    ceiling = r["sink_one_mib_s"]
    tus_na = "n/a (no tus endpoint)"
    return [
        Row("references", f"dd {size} to the same disk (fdatasync)", r["dd_mib_s"], "MiB/s"),
        Row("references", f"md5sum {size}", r["md5sum_s"], "s"),
        Row("references", f"loopback sink, {size} PUT", r["sink_one_mib_s"], "MiB/s"),
        Row("references", f"loopback sink, {parts} PUT", r["sink_many_mib_s"], "MiB/s"),
        Row("references", f"@tus/server, {size} × 1", r["tusnode_one_mib_s"], "MiB/s",
            "loopback", ceiling),
        Row("references", f"@tus/server, {parts}", r["tusnode_many_mib_s"], "MiB/s",
            "loopback", r["sink_many_mib_s"]),
        Row("references", "@tus/server peak RSS", r["tusnode_rss_mib"], "MiB"),
        _target(Row("seed API", f"{size} × 1 stream, upload + verified complete",
                    r["seed_one_mib_s"], "MiB/s", "@tus/server", r["tusnode_one_mib_s"]),
                1.25),
        _target(Row("seed API", f"{size}, {s.in_flight} chunks in flight",
                    r["seed_inflight_mib_s"], "MiB/s", "@tus/server", r["tusnode_one_mib_s"]),
                1.25),
        _target(Row("seed API", parts, r["seed_many_mib_s"], "MiB/s", "@tus/server",
                    r["tusnode_many_mib_s"]), 1.25),
        Row("seed API", f"{_size(s.big_size)}, {s.in_flight} in flight", r["seed_big_mib_s"],
            "MiB/s", "dd", r["dd_mib_s"]),
        Row("seed API", f"{size}, {s.in_flight} in flight, chunkMd5 on every chunk (Vue page)",
            r["seed_chunkmd5_mib_s"], "MiB/s", "without chunkMd5", r["seed_inflight_mib_s"]),
        _target(Row("seed API", f"complete-upload, {size} sent in order",
                    r["seed_complete_in_order_s"], "s", "md5sum", r["md5sum_s"]), 0.1, True),
        Row("seed API", f"complete-upload, {size} with {s.in_flight} in flight",
            r["seed_complete_inflight_s"], "s", "md5sum", r["md5sum_s"]),
        _target(Row("seed API", f"complete-upload, {size} in random order",
                    r["seed_complete_random_s"], "s", "md5sum", r["md5sum_s"]), 1.2, True),
        _target(Row("seed API", f"peak RSS of a worker (max of {r['seed_workers']}), rows above",
                    r["seed_rss_mib"], "MiB", "target", 100.0), 1.0, True),
        _target(Row("tus", f"{size} × 1", r["tus_one_mib_s"], "MiB/s", "@tus/server",
                    r["tusnode_one_mib_s"], note="" if r["tus_one_mib_s"] else tus_na), 1.5),
        _target(Row("tus", f"{size} × 1", r["tus_one_mib_s"], "MiB/s", "loopback", ceiling,
                    note="" if r["tus_one_mib_s"] else tus_na), 0.5),
        _target(Row("tus", parts, r["tus_many_mib_s"], "MiB/s", "@tus/server",
                    r["tusnode_many_mib_s"], note="" if r["tus_many_mib_s"] else tus_na), 1.5),
        _target(Row("tus", "peak RSS of a worker over the tus workloads", r["tus_rss_mib"],
                    "MiB", "target", 100.0, note="" if r["tus_rss_mib"] else tus_na), 1.0, True),
        *(row for fsync, prefix in FSYNC_MODES
          for row in _fsync_rows(s, r, size, parts, ceiling, fsync, prefix)),
    ]


def _fsync_rows(s: Settings, r: dict, size: str, parts: str, ceiling: float, fsync: str,
                prefix: str) -> list[Row]:
    """The throughput rows again, under another UPLOADSVC_FSYNC setting."""
    section = f"FSYNC={fsync}"
    return [
        _target(Row(section, f"seed API {size} × 1 stream, upload + verified complete",
                    r[f"{prefix}_one_mib_s"], "MiB/s", "@tus/server", r["tusnode_one_mib_s"]),
                1.25),
        _target(Row(section, f"seed API {size}, {s.in_flight} chunks in flight",
                    r[f"{prefix}_inflight_mib_s"], "MiB/s", "@tus/server", r["tusnode_one_mib_s"]),
                1.25),
        _target(Row(section, f"seed API {parts}", r[f"{prefix}_many_mib_s"], "MiB/s",
                    "@tus/server", r["tusnode_many_mib_s"]), 1.25),
        Row(section, f"seed API complete-upload, {size} sent in order",
            r[f"{prefix}_complete_in_order_s"], "s", "md5sum", r["md5sum_s"]),
        _target(Row(section, f"tus {size} × 1", r[f"{prefix}tus_one_mib_s"], "MiB/s",
                    "@tus/server", r["tusnode_one_mib_s"]), 1.5),
        _target(Row(section, f"tus {size} × 1", r[f"{prefix}tus_one_mib_s"], "MiB/s", "loopback",
                    ceiling), 0.5),
        _target(Row(section, f"tus {parts}", r[f"{prefix}tus_many_mib_s"], "MiB/s", "@tus/server",
                    r["tusnode_many_mib_s"]), 1.5),
        _target(Row(section, "peak RSS of a worker over these workloads", r[f"{prefix}_rss_mib"],
                    "MiB", "target", 100.0), 1.0, True),
    ]


def _target(row: Row, ratio: float, at_most: bool = False) -> Row:
    row.target = f"{'≤' if at_most else '≥'} {ratio:g}×"
    if row.ratio is not None:
        row.ok = row.ratio <= ratio if at_most else row.ratio >= ratio
    return row


def _size(n: int) -> str:
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n / MiB:g} MiB"


def render(rows: list[Row]) -> str:
    header = ["", "workload", "figure", "reference", "ratio", "target"]
    lines = []
    for row in rows:
        value = (f"{row.value:.3f} {row.unit}" if row.unit == "s" else
                 f"{row.value:.0f} {row.unit}") if row.value is not None else (row.note or "n/a")
        ref = row.reference
        if row.ref_value:
            ref += f" ({row.ref_value:.3f} s)" if row.unit == "s" else \
                f" ({row.ref_value:.0f} {row.unit})"
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else ""
        target = f"{row.target} {'met' if row.ok else 'NOT met'}" if row.ok is not None else \
            row.target
        lines.append([row.section, row.name, value, ref, ratio, target])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) + " |"
            for line in lines]
    return "\n".join(out)


def settings(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=SCALES, default=os.environ.get("BENCH_SCALE", "full"))
    parser.add_argument("--json", help="also write the figures and rows to this file")
    parser.add_argument("--tmp", default=os.environ.get("BENCH_TMP"),
                        help="parent of the bench's temp dir (bench files and data dir)")
    args = parser.parse_args(argv)
    size, concurrent_size, concurrency, big_size, chunk = SCALES[args.scale]

    def env(name: str, default: int) -> int:
        return int(os.environ.get(f"BENCH_{name}", default))

    workdir = Path(tempfile.mkdtemp(prefix="uploadsvc-bench-", dir=args.tmp))
    return Settings(env("SIZE", size), env("CONCURRENT_SIZE", concurrent_size),
                    env("CONCURRENCY", concurrency), env("BIG_SIZE", big_size),
                    env("CHUNK", chunk), env("IN_FLIGHT", IN_FLIGHT), workdir), args


def main(argv: list[str] | None = None) -> int:
    s, args = settings(argv)
    results = Results()
    try:
        free = shutil.disk_usage(s.workdir).free
        needed = 3 * (s.size + max(s.big_size, s.concurrent_size * s.concurrency))
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
    finally:
        shutil.rmtree(s.workdir, ignore_errors=True)
    rows = build_rows(s, results.figures)
    print(render(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"settings": {k: str(v) for k, v in asdict(s).items()},
             "figures": results.figures,
             "rows": [{**asdict(row), "ratio": row.ratio} for row in rows]}, indent=2))
    return 0

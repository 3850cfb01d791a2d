"""The benchmark's table: every figure, its reference in the same run, the ratio and target."""
from dataclasses import asdict

from .rows import GiB, MiB, Row, Settings, size_label
from .store_rows import object_store_rows, requests_key

__all__ = ["FSYNC_MODES", "GiB", "MiB", "Row", "Settings", "as_json", "build_rows", "render",
           "requests_key", "size_label"]

# UPLOADSVC_FSYNC settings measured after the default one, and their keys' prefixes.
FSYNC_MODES = (("complete", "lazy"), ("false", "nosync"))


def build_rows(s: Settings, r: dict) -> list[Row]:
    size, parts = size_label(s.size), f"{s.concurrency} × {size_label(s.concurrent_size)}"
    ceiling = r["sink_one_mib_s"]
    tus_na = "n/a (no tus endpoint)"
    js_na = "n/a (no Node or tus-js-client)"
    md5_rate = s.size / MiB / r["md5sum_s"] if r.get("md5sum_s") else None
    return [
        Row("references", f"dd {size} to the same disk (fdatasync)", r["dd_mib_s"], "MiB/s"),
        Row("references", f"md5sum {size}", r["md5sum_s"], "s"),
        Row("references", f"md5sum {size}, as a rate (one stream's MD5 limit)", md5_rate,
            "MiB/s"),
        Row("references", f"loopback sink, {size} PUT", r["sink_one_mib_s"], "MiB/s"),
        Row("references", f"loopback sink, {parts} PUT", r["sink_many_mib_s"], "MiB/s"),
        Row("references", f"@tus/server, {size} × 1", r["tusnode_one_mib_s"], "MiB/s",
            "loopback", ceiling),
        Row("references", f"@tus/server, {parts}", r["tusnode_many_mib_s"], "MiB/s",
            "loopback", r["sink_many_mib_s"]),
        Row("references", "@tus/server peak RSS", r["tusnode_rss_mib"], "MiB"),
        Row("references", f"@tus/server, {size} × 1, tus-js-client", r["tusnode_tusjs_one_mib_s"],
            "MiB/s", "bench client", r["tusnode_one_mib_s"], note=js_na),
        _target(Row("seed API", f"{size} × 1 stream, upload + verified complete",
                    r["seed_one_mib_s"], "MiB/s", "@tus/server", r["tusnode_one_mib_s"]),
                1.25),
        _target(Row("seed API", f"{size}, {s.in_flight} chunks in flight, + verified complete",
                    r["seed_inflight_mib_s"], "MiB/s", "md5sum", md5_rate), 0.9),
        Row("seed API", f"{size}, {s.in_flight} chunks in flight, + verified complete",
            r["seed_inflight_mib_s"], "MiB/s", "@tus/server", r["tusnode_one_mib_s"]),
        _target(Row("seed API", parts, r["seed_many_mib_s"], "MiB/s", "@tus/server",
                    r["tusnode_many_mib_s"]), 1.25),
        Row("seed API", f"{size_label(s.big_size)}, {s.in_flight} in flight", r["seed_big_mib_s"],
            "MiB/s", "dd", r["dd_mib_s"]),
        Row("seed API", f"{size}, {s.in_flight} in flight, chunkMd5 on every chunk (Vue page)",
            r["seed_chunkmd5_mib_s"], "MiB/s", "without chunkMd5", r["seed_inflight_mib_s"]),
        _target(Row("seed API", f"complete-upload, {size} sent in order",
                    r["seed_complete_in_order_s"], "s", "md5sum", r["md5sum_s"]), 0.1, True),
        _target(Row("seed API", f"complete-upload, {size} with {s.in_flight} in flight",
                    r["seed_complete_inflight_s"], "s", "md5sum", r["md5sum_s"]), 0.1, True),
        _target(Row("seed API", f"complete-upload, {size} in random order",
                    r["seed_complete_random_s"], "s", "md5sum", r["md5sum_s"]), 1.2, True),
        _target(Row("seed API", f"peak RSS of a worker (max of {r['seed_workers']}), rows above",
                    r["seed_rss_mib"], "MiB", "target", 100.0), 1.0, True),
        _target(Row("tus", f"{size} × 1", r["tus_one_mib_s"], "MiB/s", "md5sum", md5_rate,
                    note="" if r["tus_one_mib_s"] else tus_na), 0.9),
        Row("tus", f"{size} × 1", r["tus_one_mib_s"], "MiB/s", "@tus/server",
            r["tusnode_one_mib_s"], note="" if r["tus_one_mib_s"] else tus_na),
        _target(Row("tus", f"{size} × 1", r["tus_one_mib_s"], "MiB/s", "loopback", ceiling,
                    note="" if r["tus_one_mib_s"] else tus_na), 0.5),
        _target(Row("tus", parts, r["tus_many_mib_s"], "MiB/s", "@tus/server",
                    r["tusnode_many_mib_s"], note="" if r["tus_many_mib_s"] else tus_na), 1.25),
        _target(Row("tus", "peak RSS of a worker over the tus workloads", r["tus_rss_mib"],
                    "MiB", "target", 100.0, note="" if r["tus_rss_mib"] else tus_na), 1.0, True),
        *_tus_js_rows(s, r, size),
        *(row for fsync, prefix in FSYNC_MODES
          for row in _fsync_rows(s, r, size, parts, ceiling, fsync, prefix)),
        *object_store_rows(s, r, size, parts),
    ]


def _tus_js_rows(s: Settings, r: dict, size: str) -> list[Row]:
    """The tus one-stream workload sent by tus-js-client, a real client on one kept-open
    connection: against @tus/server under the same client, and against the bench's own client
    (a ratio near 1 says the bench's figures hold for real clients)."""
    section, name = "tus-js-client", f"{size} × 1, {size_label(s.chunk)} PATCHes"
    note = "n/a (no tus endpoint, Node or tus-js-client)"
    return [
        _target(Row(section, name, r["tusjs_one_mib_s"], "MiB/s", "@tus/server, tus-js-client",
                    r["tusnode_tusjs_one_mib_s"], note=note), 1.5),
        Row(section, name, r["tusjs_one_mib_s"], "MiB/s", "bench client", r["tus_one_mib_s"],
            note=note),
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


def as_json(s: Settings, figures: dict, rows: list[Row], store: dict | None = None) -> dict:
    """What `--json FILE` writes, and what bench/chart.py draws from; store_requests has the
    object store's requests of each of its workloads by method, and the pieces sent."""
    return {"settings": {k: str(v) for k, v in asdict(s).items()}, "figures": figures,
            "rows": [{**asdict(row), "ratio": row.ratio} for row in rows],
            "store_requests": store or {}}


def render(rows: list[Row]) -> str:
    header = ["", "workload", "figure", "reference", "ratio", "target", "S3 req/chunk"]
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
        requests = f"{row.store_requests:.2f}" if row.store_requests is not None else ""
        lines.append([row.section, row.name, value, ref, ratio, target, requests])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) + " |"
            for line in lines]
    return "\n".join(out)

"""The benchmark's table: every figure, its reference in the same run, the ratio and target."""
from dataclasses import asdict, dataclass
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB
# UPLOADSVC_FSYNC settings measured after the default one, and their keys' prefixes.
FSYNC_MODES = (("complete", "lazy"), ("false", "nosync"))
# The object stores measured beside S3 (on their emulators), by their keys' prefix.
OTHER_STORES = (("azure", "Azure"), ("gcs", "GCS"))


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
    # The S3 requests the object store received per chunk the client sent (object store rows).
    store_requests: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.ref_value:
            return None
        return self.value / self.ref_value


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
        *_store_rows(s, r, size, parts),
        *_one_host_rows(s, r, size, parts),
        *_hosts_rows(s, r, size, parts),
        *(row for kind, name in OTHER_STORES for row in _other_store_rows(s, r, size, parts,
                                                                         kind, name)),
    ]


def requests_key(key: str) -> str:
    """The figure of the store's requests per chunk of the workload whose MiB/s is key."""
    return key.removesuffix("_mib_s") + "_requests_per_chunk"


def _s3(r: dict, section: str, name: str, key: str, reference: str = "",
        ref_key: str = "", note: str = "") -> Row:
    """An object store row: key's MiB/s, against ref_key's, with its requests per chunk."""
    return Row(section, name, r[key], "MiB/s", reference, r[ref_key] if ref_key else None,
               note=note, store_requests=r[requests_key(key)])


def _store_rows(s: Settings, r: dict, size: str, parts: str) -> list[Row]:
    """The object store's own ceiling: boto3's multipart upload of the same files to the same
    SeaweedFS, 16 MiB parts (its requests are per part)."""
    section = "S3 store"
    return [
        _s3(r, section, f"boto3 multipart upload of {size}, 16 MiB parts",
            "s3_ceiling_one_mib_s"),
        _s3(r, section, f"boto3 multipart uploads of {parts}, 16 MiB parts",
            "s3_ceiling_many_mib_s"),
    ]


def _one_host_rows(s: Settings, r: dict, size: str, parts: str) -> list[Row]:
    """uploadsvc on one host (state in MariaDB) against @tus/server with @tus/s3-store, one
    process, on the same store in the same run, and both against the store's ceiling."""
    section, peer = "1 host, S3", "@tus/s3-store"
    na = "n/a (no Node or @tus/s3-store)"
    seed_one = f"seed API {size}, {s.in_flight} chunks in flight"
    seed_many = f"seed API {parts}, {s.in_flight} chunks in flight each"
    js = f"tus-js-client {size} × 1"
    return [
        _s3(r, section, f"@tus/server + @tus/s3-store, tus {size} × 1", "tusnodes3_one_mib_s",
            "boto3", "s3_ceiling_one_mib_s", na),
        _s3(r, section, f"@tus/server + @tus/s3-store, tus {parts}", "tusnodes3_many_mib_s",
            "boto3", "s3_ceiling_many_mib_s", na),
        _s3(r, section, f"@tus/server + @tus/s3-store, {js}", "tusnodes3_tusjs_one_mib_s",
            "boto3", "s3_ceiling_one_mib_s", na),
        Row(section, "@tus/server + @tus/s3-store peak RSS", r["tusnodes3_rss_mib"], "MiB",
            note=na),
        _s3(r, section, f"tus {size} × 1", "s3onetus_one_mib_s", peer, "tusnodes3_one_mib_s"),
        _s3(r, section, f"tus {size} × 1", "s3onetus_one_mib_s", "boto3",
            "s3_ceiling_one_mib_s"),
        _s3(r, section, f"tus {parts}", "s3onetus_many_mib_s", peer, "tusnodes3_many_mib_s"),
        _s3(r, section, f"tus {parts}", "s3onetus_many_mib_s", "boto3",
            "s3_ceiling_many_mib_s"),
        _s3(r, section, js, "s3onetusjs_one_mib_s", f"{peer}, tus-js-client",
            "tusnodes3_tusjs_one_mib_s", na),
        _s3(r, section, js, "s3onetusjs_one_mib_s", "boto3", "s3_ceiling_one_mib_s", na),
        _s3(r, section, seed_one, "s3one_seed_inflight_mib_s", f"{peer}, tus",
            "tusnodes3_one_mib_s"),
        _s3(r, section, seed_one, "s3one_seed_inflight_mib_s", "boto3", "s3_ceiling_one_mib_s"),
        _s3(r, section, seed_many, "s3one_seed_many_mib_s", f"{peer}, tus",
            "tusnodes3_many_mib_s"),
        _s3(r, section, seed_many, "s3one_seed_many_mib_s", "boto3", "s3_ceiling_many_mib_s"),
        Row(section, f"peak RSS of a worker (max of {r['s3one_workers']}), seed API",
            r["s3one_seed_rss_mib"], "MiB", peer, r["tusnodes3_rss_mib"]),
        Row(section, "peak RSS of a worker, tus", r["s3onetus_rss_mib"], "MiB", peer,
            r["tusnodes3_rss_mib"]),
    ]


def _hosts_rows(s: Settings, r: dict, size: str, parts: str) -> list[Row]:
    """uploadsvc on three hosts behind nginx, every byte in the object store (SeaweedFS) and
    the state in MariaDB: against the same workload on the local disk (the rows above) and
    against the store's own ceiling, boto3's multipart upload of the same bytes."""
    section = "3 hosts, S3"
    store_one, store_many = "s3_ceiling_one_mib_s", "s3_ceiling_many_mib_s"
    seed_one = f"seed API {size}, {s.in_flight} chunks in flight"
    seed_many = f"seed API {parts}, {s.in_flight} chunks in flight each"
    return [
        _s3(r, section, seed_one, "s3_seed_inflight_mib_s", "local disk", "seed_inflight_mib_s"),
        _s3(r, section, seed_one, "s3_seed_inflight_mib_s", "boto3", store_one),
        _s3(r, section, seed_many, "s3_seed_many_mib_s", "local disk, 1 in flight each",
            "seed_many_mib_s"),
        _s3(r, section, seed_many, "s3_seed_many_mib_s", "boto3", store_many),
        Row(section, f"peak RSS of a worker (max of {r['s3_workers']}), seed API",
            r["s3_seed_rss_mib"], "MiB", "local disk", r["seed_rss_mib"]),
        _s3(r, section, f"tus {size} × 1", "s3tus_one_mib_s", "local disk", "tus_one_mib_s"),
        _s3(r, section, f"tus {size} × 1", "s3tus_one_mib_s", "boto3", store_one),
        _s3(r, section, f"tus {parts}", "s3tus_many_mib_s", "local disk", "tus_many_mib_s"),
        _s3(r, section, f"tus {parts}", "s3tus_many_mib_s", "boto3", store_many),
        Row(section, "peak RSS of a worker, tus", r["s3tus_rss_mib"], "MiB", "local disk",
            r["tus_rss_mib"]),
    ]


def _other_store_rows(s: Settings, r: dict, size: str, parts: str, kind: str,
                      name: str) -> list[Row]:
    """uploadsvc on one host and on three with every byte in Azure Blob Storage or GCS (on
    their emulators, each request counted by a proxy), against the same workload on S3 in
    the same run (a ratio above 1: faster than on SeaweedFS; emulators are not the
    services, so the requests per chunk say more than the rates)."""
    seed_one = f"seed API {size}, {s.in_flight} chunks in flight"
    seed_many = f"seed API {parts}, {s.in_flight} chunks in flight each"
    rows = []
    for hosts, prefix, s3 in (("1 host", f"{kind}one", "s3one"), ("3 hosts", kind, "s3")):
        section = f"{hosts}, {name}"
        rows += [
            _s3(r, section, seed_one, f"{prefix}_seed_inflight_mib_s", "S3",
                f"{s3}_seed_inflight_mib_s"),
            _s3(r, section, seed_many, f"{prefix}_seed_many_mib_s", "S3",
                f"{s3}_seed_many_mib_s"),
            Row(section, f"peak RSS of a worker (max of {r[f'{prefix}_workers']}), seed API",
                r[f"{prefix}_seed_rss_mib"], "MiB", "S3", r[f"{s3}_seed_rss_mib"]),
            _s3(r, section, f"tus {size} × 1", f"{prefix}tus_one_mib_s", "S3",
                f"{s3}tus_one_mib_s"),
            _s3(r, section, f"tus {parts}", f"{prefix}tus_many_mib_s", "S3",
                f"{s3}tus_many_mib_s"),
            Row(section, "peak RSS of a worker, tus", r[f"{prefix}tus_rss_mib"], "MiB", "S3",
                r[f"{s3}tus_rss_mib"]),
        ]
    return rows


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


def size_label(n: int) -> str:
    """A size as the table and the chart name it: "1 GiB", "5 MiB"."""
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n / MiB:g} MiB"


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

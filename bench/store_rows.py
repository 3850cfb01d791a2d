"""The object stores' rows of the benchmark's table: S3's own ceiling, uploadsvc on one
host and three beside the peer on the same store, and the other stores on their emulators."""
from .rows import Row, Settings

# The object stores measured beside S3 (on their emulators), by their keys' prefix.
OTHER_STORES = (("azure", "Azure"), ("gcs", "GCS"))


def object_store_rows(s: Settings, r: dict, size: str, parts: str) -> list[Row]:
    """Every object store row, in the table's order."""
    return [*_store_rows(s, r, size, parts), *_one_host_rows(s, r, size, parts),
            *_hosts_rows(s, r, size, parts),
            *(row for kind, name in OTHER_STORES
              for row in _other_store_rows(s, r, size, parts, kind, name))]


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

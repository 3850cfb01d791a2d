"""The bench's chart: the throughput of each workload beside @tus/server's on the same
workload, with dd's and md5sum's rates as the physical limits; beside it, the same on the
object store (one host each, @tus/server with @tus/s3-store), with boto3's upload to the
store as the ceiling and the store's requests per chunk on each bar. Drawn from the JSON
that `python -m bench --json` writes, so a saved run can be drawn again.

Usage: python -m bench.chart RESULTS.json OUT.png
"""
import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .report import MiB, requests_key, size_label


@dataclass(frozen=True)
class Workload:
    """A pair of bars: the figure keys of uploadsvc's and of @tus/server's throughput, and a
    label with {size}, {parts} and {in_flight} filled in from the run's settings; on the
    object store, the key of the store's ceiling for the same files."""

    label: str
    uploadsvc: str
    tusnode: str
    ceiling: str = ""


# uploadsvc in its default configuration (every chunk fsync'd); @tus/server never fsyncs.
WORKLOADS = (
    Workload("seed API\n{size} × 1", "seed_one_mib_s", "tusnode_one_mib_s"),
    Workload("seed API\n{size},\n{in_flight} in flight", "seed_inflight_mib_s",
             "tusnode_one_mib_s"),
    Workload("seed API\n{parts}", "seed_many_mib_s", "tusnode_many_mib_s"),
    Workload("tus\n{size} × 1", "tus_one_mib_s", "tusnode_one_mib_s"),
    Workload("tus\n{parts}", "tus_many_mib_s", "tusnode_many_mib_s"),
    Workload("tus-js-client\n{size} × 1", "tusjs_one_mib_s", "tusnode_tusjs_one_mib_s"),
)
# One host on SeaweedFS: uploadsvc (state in MariaDB) and @tus/server with @tus/s3-store.
S3_WORKLOADS = (
    Workload("seed API\n{size},\n{in_flight} in flight", "s3one_seed_inflight_mib_s",
             "tusnodes3_one_mib_s", "s3_ceiling_one_mib_s"),
    Workload("tus\n{size} × 1", "s3onetus_one_mib_s", "tusnodes3_one_mib_s",
             "s3_ceiling_one_mib_s"),
    Workload("tus\n{parts}", "s3onetus_many_mib_s", "tusnodes3_many_mib_s",
             "s3_ceiling_many_mib_s"),
    Workload("tus-js-client\n{size} × 1", "s3onetusjs_one_mib_s", "tusnodes3_tusjs_one_mib_s",
             "s3_ceiling_one_mib_s"),
)


@dataclass(frozen=True)
class Bars:
    """One workload's figures as drawn, in MiB/s; None where the run had none. On the object
    store, its ceiling and each server's store requests per chunk."""

    label: str
    uploadsvc: float | None
    tusnode: float | None
    ceiling: float | None = None
    uploadsvc_requests: float | None = None
    tusnode_requests: float | None = None


def bars(report: dict, workloads: tuple[Workload, ...] = WORKLOADS) -> list[Bars]:
    """Every workload of workloads with its figures read from the report."""
    settings, figures = report["settings"], report["figures"]
    size = size_label(int(settings["size"]))
    names = {"size": size, "in_flight": settings["in_flight"],
             "parts": f"{settings['concurrency']} × {size_label(int(settings['concurrent_size']))}"}
    # Local workloads have no ceiling and no requests figures: None.
    return [Bars(w.label.format(**names), figures.get(w.uploadsvc), figures.get(w.tusnode),
                 figures.get(w.ceiling), figures.get(requests_key(w.uploadsvc)),
                 figures.get(requests_key(w.tusnode)))
            for w in workloads]


def limits(report: dict) -> dict[str, float | None]:
    """dd's and md5sum's rates on the run's file, in MiB/s: what the disk and the MD5 that
    every upload is verified with allow at most."""
    figures = report["figures"]
    seconds = figures.get("md5sum_s")
    md5sum = int(report["settings"]["size"]) / MiB / seconds if seconds else None
    return {"dd to the same disk (fdatasync)": figures.get("dd_mib_s"), "md5sum": md5sum}


def _pairs(ax: Axes, drawn: list[Bars], legend: bool, fontsize: int = 8) -> None:
    """uploadsvc's and @tus/server's bar of each workload, labelled with their figures (and
    their store requests per chunk, where counted)."""
    width = 0.38
    for shift, name, color, values, requests in (
            (-width / 2, "uploadsvc (default configuration)", "tab:blue",
             [b.uploadsvc for b in drawn], [b.uploadsvc_requests for b in drawn]),
            (width / 2, "@tus/server (@tus/file-store, no fsync; @tus/s3-store on S3)",
             "tab:orange", [b.tusnode for b in drawn], [b.tusnode_requests for b in drawn])):
        xs = [i + shift for i in range(len(drawn))]
        rects = ax.bar(xs, [v or 0 for v in values], width, color=color,
                       label=name if legend else None)
        labels = [(f"{v:.0f}" if v is not None else "n/a") +
                  (f"\n{r:.1f} req" if r is not None else "")
                  for v, r in zip(values, requests, strict=True)]
        # On a white ground, so that a limit's line through a label leaves it legible.
        ax.bar_label(rects, labels=labels, padding=2, fontsize=fontsize, zorder=3,
                     bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})
    ax.set_xticks(range(len(drawn)), [b.label for b in drawn], fontsize=8)


def draw(report: dict, out: Path) -> list[Bars]:
    """Draw the chart of report into the PNG file out; returns the bars drawn (the local
    disk's, then the object store's)."""
    drawn, on_s3 = bars(report), bars(report, S3_WORKLOADS)
    lines = limits(report)
    # A figure on the Agg canvas, without pyplot: no display is needed or looked for.
    fig = Figure(figsize=(11, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_s3 = fig.subplots(1, 2, width_ratios=[len(drawn), len(on_s3) + 0.5])
    _pairs(ax, drawn, legend=True)
    for (name, rate), style, color in zip(lines.items(), ("--", ":"), ("tab:red", "tab:green"),
                                          strict=True):
        if rate is not None:
            ax.axhline(rate, linestyle=style, color=color, label=f"{name}: {rate:.0f} MiB/s")
    ax.set_ylabel("MiB/s")
    highest = max([v for b in drawn for v in (b.uploadsvc, b.tusnode) if v] +
                  [r for r in lines.values() if r], default=1)
    ax.set_ylim(0, highest * 1.15)
    settings = report["settings"]
    ax.set_title(f"Local disk, uploadsvc beside @tus/server ({size_label(int(settings['chunk']))}"
                 " chunks, one kept-open connection per stream)", fontsize=9)

    _pairs(ax_s3, on_s3, legend=False, fontsize=7)
    for i, b in enumerate(on_s3):  # each workload's own ceiling, across its pair of bars
        if b.ceiling is not None:
            ax_s3.hlines(b.ceiling, i - 0.45, i + 0.45, colors="black", linestyles="-.",
                         label="boto3 multipart upload to the store" if i == 0 else None)
    highest = max([v for b in on_s3 for v in (b.uploadsvc, b.tusnode, b.ceiling) if v],
                  default=1)
    ax_s3.set_ylim(0, highest * 1.3)
    ax_s3.set_title("SeaweedFS, one host each (req: S3 requests per chunk)", fontsize=9)
    # Below the axes, where no bar or line can hide under it.
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    fig.savefig(out, format="png")
    return drawn + on_s3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chart", description=__doc__)
    parser.add_argument("results", type=Path, help="the JSON of python -m bench --json")
    parser.add_argument("out", type=Path, help="the PNG file to write")
    args = parser.parse_args(argv)
    draw(json.loads(args.results.read_text()), args.out)
    print(f"chart in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

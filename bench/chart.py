"""The bench's chart: the throughput of each workload beside @tus/server's on the same
workload, with dd's and md5sum's rates as the physical limits, drawn from the JSON that
`python -m bench --json` writes, so a saved run can be drawn again.

Usage: python -m bench.chart RESULTS.json OUT.png
"""
import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .report import MiB, size_label


@dataclass(frozen=True)
class Workload:
    """A pair of bars: the figure keys of uploadsvc's and of @tus/server's throughput, and a
    label with {size}, {parts} and {in_flight} filled in from the run's settings."""

    label: str
    uploadsvc: str
    tusnode: str


# uploadsvc in its default configuration (every chunk fsync'd); @tus/server never fsyncs.
WORKLOADS = (
    Workload("seed API\n{size} × 1", "seed_one_mib_s", "tusnode_one_mib_s"),
    Workload("seed API\n{size}, {in_flight} in flight", "seed_inflight_mib_s",
             "tusnode_one_mib_s"),
    Workload("seed API\n{parts}", "seed_many_mib_s", "tusnode_many_mib_s"),
    Workload("tus\n{size} × 1", "tus_one_mib_s", "tusnode_one_mib_s"),
    Workload("tus\n{parts}", "tus_many_mib_s", "tusnode_many_mib_s"),
    Workload("tus-js-client\n{size} × 1", "tusjs_one_mib_s", "tusnode_tusjs_one_mib_s"),
)


@dataclass(frozen=True)
class Bars:
    """One workload's figures as drawn, in MiB/s; None where the run had none."""

    label: str
    uploadsvc: float | None
    tusnode: float | None


def bars(report: dict) -> list[Bars]:
    """Every workload of WORKLOADS with its figures read from the report."""
    settings, figures = report["settings"], report["figures"]
    size = size_label(int(settings["size"]))
    names = {"size": size, "in_flight": settings["in_flight"],
             "parts": f"{settings['concurrency']} × {size_label(int(settings['concurrent_size']))}"}
    return [Bars(w.label.format(**names), figures.get(w.uploadsvc), figures.get(w.tusnode))
            for w in WORKLOADS]


def limits(report: dict) -> dict[str, float | None]:
    """dd's and md5sum's rates on the run's file, in MiB/s: what the disk and the MD5 that
    every upload is verified with allow at most."""
    figures = report["figures"]
    seconds = figures.get("md5sum_s")
    md5sum = int(report["settings"]["size"]) / MiB / seconds if seconds else None
    return {"dd to the same disk (fdatasync)": figures.get("dd_mib_s"), "md5sum": md5sum}


def draw(report: dict, out: Path) -> list[Bars]:
    """Draw the chart of report into the PNG file out; returns the bars drawn."""
    drawn = bars(report)
    lines = limits(report)
    # A figure on the Agg canvas, without pyplot: no display is needed or looked for.
    fig = Figure(figsize=(11, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.38
    for shift, name, color, values in (
            (-width / 2, "uploadsvc (default configuration)", "tab:blue",
             [b.uploadsvc for b in drawn]),
            (width / 2, "@tus/server (@tus/file-store, no fsync)", "tab:orange",
             [b.tusnode for b in drawn])):
        xs = [i + shift for i in range(len(drawn))]
        rects = ax.bar(xs, [v or 0 for v in values], width, label=name, color=color)
        # On a white ground, so that a limit's line through a label leaves it legible.
        ax.bar_label(rects, labels=[f"{v:.0f}" if v is not None else "n/a" for v in values],
                     padding=2, fontsize=8, zorder=3,
                     bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})
    for (name, rate), style, color in zip(lines.items(), ("--", ":"), ("tab:red", "tab:green"),
                                          strict=True):
        if rate is not None:
            ax.axhline(rate, linestyle=style, color=color, label=f"{name}: {rate:.0f} MiB/s")
    ax.set_xticks(range(len(drawn)), [b.label for b in drawn])
    ax.set_ylabel("MiB/s")
    highest = max([v for b in drawn for v in (b.uploadsvc, b.tusnode) if v] +
                  [r for r in lines.values() if r], default=1)
    ax.set_ylim(0, highest * 1.15)
    # Below the axes, where no bar or line can hide under it.
    fig.legend(loc="outside lower center", ncols=4, fontsize=8)
    settings = report["settings"]
    ax.set_title(f"Throughput, uploadsvc beside @tus/server ({size_label(int(settings['chunk']))}"
                 " chunks, one kept-open connection per stream)", fontsize=10)
    fig.savefig(out, format="png")
    return drawn


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

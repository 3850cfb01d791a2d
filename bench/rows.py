"""The rows of the benchmark's table: the run's settings, and one figure against its
reference."""
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass
class Settings:
    size: int
    concurrent_size: int
    concurrency: int
    big_size: int
    chunk: int
    in_flight: int
    workdir: Path
    # Runs of each workload that has a target; its figure is their median.
    repeat: int = 1


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


def size_label(n: int) -> str:
    """A size as the table and the chart name it: "1 GiB", "5 MiB"."""
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n / MiB:g} MiB"

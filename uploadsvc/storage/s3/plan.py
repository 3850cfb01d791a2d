"""Which parts join ranges of objects into one object, within S3's limits.

S3 wants every part but the last to hold at least 5 MiB, at most 5 GiB each, and at most
10,000 parts. plan() makes parts of any size within those limits, copying by the store
what it can; plan_equal() makes every part but the last exactly one size, for stores that
want that (Cloudflare R2), copying a part only where one range covers it whole.
"""
from dataclasses import dataclass

MIN_PART = 5 * 1024 * 1024
MAX_COPY = 5 * 1024 ** 3
MAX_PARTS = 10_000


@dataclass(frozen=True)
class Piece:
    """Bytes [start, end) of the object named key."""

    key: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Part:
    """One part to be: copied from one piece, or streamed from several."""

    pieces: tuple[Piece, ...]
    copied: bool

    @property
    def size(self) -> int:
        return sum(piece.size for piece in self.pieces)


def plan(pieces: list[Piece], part_size: int, min_part: int = MIN_PART,
         max_copy: int = MAX_COPY) -> list[Part]:
    """The parts that hold these pieces in order; all but the last hold at least min_part."""
    parts: list[Part] = []
    pending: list[Piece] = []
    pending_size = 0

    def flush() -> None:
        nonlocal pending, pending_size
        parts.append(Part(tuple(pending), copied=False))
        pending, pending_size = [], 0

    for piece in pieces:
        start, end = piece.start, piece.end
        while start < end:
            length = end - start
            if pending_size >= min_part and length >= min_part:
                flush()
            if not pending and length >= min_part:
                take = min(length, max_copy)
                parts.append(Part((Piece(piece.key, start, start + take),), copied=True))
            else:
                # A long piece only tops the streamed bytes up to the minimum.
                goal = min_part if length >= min_part else max(part_size, min_part)
                take = min(length, goal - pending_size)
                pending.append(Piece(piece.key, start, start + take))
                pending_size += take
                if pending_size >= goal:
                    flush()
            start += take
    if pending:
        flush()
    return parts


def plan_equal(pieces: list[Piece], part_size: int, min_part: int = MIN_PART) -> list[Part]:
    """The parts that hold these pieces in order, every one but the last of exactly
    part_size: a part that one piece covers whole is copied by the store (a range of it),
    the others are streamed from the pieces they span."""
    if not min_part <= part_size <= MAX_COPY:
        raise ValueError(f"equal parts must hold {min_part} to {MAX_COPY} bytes each")
    parts: list[Part] = []
    pending: list[Piece] = []
    pending_size = 0

    def flush() -> None:
        nonlocal pending, pending_size
        whole = len(pending) == 1 and pending_size >= min_part
        parts.append(Part(tuple(pending), copied=whole))
        pending, pending_size = [], 0

    for piece in pieces:
        start = piece.start
        while start < piece.end:
            take = min(piece.end - start, part_size - pending_size)
            pending.append(Piece(piece.key, start, start + take))
            pending_size += take
            start += take
            if pending_size == part_size:
                flush()
    if pending:
        flush()
    return parts

"""The Azure backend's blocks: how an upload's bytes are kept in the blocks of one blob.

An upload is one block blob, ``chunks/<key>``, created empty (committed with no blocks). A
block's id says what it holds (every id of a blob has the same length, as Azure wants):

- ``p<offset>00000000``: a chunk written in place, staged and left uncommitted;
- ``a<index>00000000``: a chunk stored aside (a re-send, or a last chunk that came before
  the chunk size was known), staged and left uncommitted;
- ``t<offset><token>``: bytes that write() stored (a tus PATCH), or a cut copy of a block;
  the token is the writer's own, so that a late writer's blocks never replace the ones
  another writer staged, and write() commits them at once, only if the blob is still the
  one it listed (If-Match).

The upload's bytes are the committed blocks in their order, overlaid by chunks staged in
place at their offsets; they end at the first gap. Committed bytes can be read back; staged
ones cannot (Azure reads only what a Put Block List committed), so a chunk is read back, if
ever, only after place_chunks committed it.
"""
import secrets
from dataclasses import dataclass

DIGITS = 20
TOKEN = 8
IN_PLACE, ASIDE, WRITTEN = "p", "a", "t"
# Azure's limits: the most blocks a blob may commit, and the largest block (4,000 MiB).
MAX_BLOCKS = 50_000
MAX_BLOCK = 4000 * 1024 * 1024


def block_id(kind: str, number: int, token: str | None = None) -> str:
    """A block's id: its kind, its offset or index, and the writer's token."""
    return f"{kind}{int(number):0{DIGITS}d}{token or '0' * TOKEN}"


def new_token() -> str:
    return secrets.token_hex(TOKEN // 2)


@dataclass(frozen=True)
class Segment:
    """Bytes of the upload from offset: one block, committed there or staged."""

    id: str
    offset: int
    size: int
    committed: bool

    @property
    def end(self) -> int:
        return self.offset + self.size


class Layout:
    """An upload's blocks as one Get Block List gave them: committed ones in order, and the
    chunks staged in place and aside."""

    def __init__(self, committed: list[tuple[str, int]], staged: list[tuple[str, int]],
                 etag: str | None = None) -> None:
        self.etag = etag
        self.committed: list[Segment] = []
        position = 0
        for name, size in committed:
            self.committed.append(Segment(name, position, size, True))
            position += size
        self.committed_size = position
        self.in_place = {segment.offset: segment for segment in self.committed}
        self.aside: dict[int, Segment] = {}
        for name, size in staged:
            kind, number = name[:1], _number(name)
            if number is None:
                continue
            if kind == IN_PLACE:
                self.in_place[number] = Segment(name, number, size, False)
            elif kind == ASIDE:
                self.aside[number] = Segment(name, number, size, False)

    def walk(self, end: int | None = None, with_aside: int | None = None) -> list[Segment]:
        """The segments that make the upload's bytes from 0, to the first gap (or to the
        first that reaches end); with_aside (the chunk size), chunks aside stand in place."""
        places = dict(self.in_place)
        if with_aside is not None:
            for index, segment in self.aside.items():
                places[index * with_aside] = Segment(segment.id, index * with_aside,
                                                     segment.size, False)
        found, position = [], 0
        while end is None or position < end:
            segment = places.get(position)
            if segment is None or not segment.size:
                break
            found.append(segment)
            position = segment.end
        return found

    def size(self) -> int:
        walked = self.walk()
        return walked[-1].end if walked else 0

    def readable(self, start: int, end: int) -> bool:
        """Whether the bytes [start, end) are committed where they stand (readable)."""
        return all(segment.committed for segment in self.walk(end) if segment.end > start)

    def committed_ids(self) -> list[str]:
        return [segment.id for segment in self.committed]


def _number(name: str) -> int | None:
    digits = name[1:1 + DIGITS]
    return int(digits) if len(name) == 1 + DIGITS + TOKEN and digits.isdigit() else None

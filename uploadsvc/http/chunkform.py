"""An upload-chunk form whose chunk is written in place while it arrives.

The upload page sends a chunk's fields before its file part. When they are all there and
valid by the time the part `chunk` begins, and the service can hold the chunk's place in the
upload's file (services.chunked.streamed.place), the part's bytes go straight there: no
spool file, no copy. Everything else (fields after the file part, a chunk whose place is
not known yet, a part larger than the chunk size, small bodies that werkzeug parses) is
spooled as before, and the fields that follow the part are honoured when the chunk is
stored, exactly as for a spooled one.
"""
import io
from functools import partial

from werkzeug.datastructures import FileStorage, MultiDict

from ..services.chunked import streamed as api_streamed
from ..services.errors import InvalidInput
from ..storage import UploadGone
from .requests import Events, FastFormDataParser
from .schemas import ChunkFormSchema, load

CHUNK = "chunk"


def stream_in_place(request) -> None:
    """Have this request's form parsed so that its chunk is written in place if it can."""
    request.form_data_parser_class = partial(ChunkFormParser, _place)


def source(chunk: FileStorage):
    """What the service stores a chunk from: its place, held and written, or a spooled part."""
    stream = chunk.stream
    return stream.placed if isinstance(stream, PlacedPart) else stream


def _place(fields: list[tuple[str, str]]) -> api_streamed.Placed | None:
    """The chunk's place, held, if the fields so far name it; else None."""
    try:
        args = load(ChunkFormSchema(), MultiDict(fields))
    except InvalidInput:
        return None  # missing or bad so far: the whole form decides, as for a spooled part
    return api_streamed.place(args["md5"], args["fileName"], args["totalChunks"],
                              args["chunkIndex"], args.get("chunkMd5"))


class ChunkFormParser(FastFormDataParser):
    """The fast form parser, writing the first part `chunk` in place when it can."""

    def __init__(self, place, **kwargs) -> None:
        super().__init__(**kwargs)
        self.place = place
        self.tried = False

    def _sink_for(self, segment, content_length, fields: list, events: Events):
        if segment.name != CHUNK or segment.filename is None or self.tried:
            return super()._sink_for(segment, content_length, fields, events)
        self.tried = True  # only the first: it is the one request.files gives the view
        placed = self.place(fields)
        if placed is None:
            return super()._sink_for(segment, content_length, fields, events)
        part = PartReader(events, placed.limit)
        try:
            placed.receive(part)
            if part.error is not None:  # the body broke off: nothing is recorded
                raise part.error
            larger = part.overflow()
        except UploadGone:  # its bytes' place went before a byte was read: spool it
            placed.close()
            if part.size or part.error is not None:
                raise
            return super()._sink_for(segment, content_length, fields, events)
        except BaseException:
            placed.close()
            raise
        if not larger:
            return PlacedPart(placed)
        # Larger than the chunk size: spooled whole, so that it is refused (or taken) as a
        # spooled part is, and nothing past the chunk's place is ever written.
        try:
            sink = super()._sink_for(segment, content_length, fields, events)
            try:
                placed.take_back(sink)
            except BaseException:
                sink.close()
                raise
        finally:
            placed.close()
        return sink


class PartReader(io.RawIOBase):
    """One segment's bytes as a stream, read from the parser's events: at most `limit` of
    them; what lies past the limit or the segment's end is given back to the events."""

    def __init__(self, events: Events, limit: int) -> None:
        super().__init__()
        self.events = events
        self.limit = limit
        self.size = 0
        self.pending = memoryview(b"")
        self.ended = False
        self.finished = False  # its end event was read
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.size >= self.limit or not view or not self._more():
            return 0
        n = min(len(view), len(self.pending), self.limit - self.size)
        view[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.size += n
        if not self.pending:
            self.pending = memoryview(b"")
        return n

    def overflow(self) -> bool:
        """Whether the segment holds more than `limit` bytes; what was looked at is given
        back to the events, the end of the segment too."""
        more = self._more()
        if more:
            self.events.give_back(self.pending.tobytes())
            self.pending = memoryview(b"")
        elif self.finished:
            self.events.give_back(None)
        return more

    def _more(self) -> bool:
        """Whether bytes of the segment are pending, reading its next event if needed."""
        while not self.pending and not self.ended:
            try:
                event = next(self.events)
            except BaseException as exc:  # kept for the caller: the store only sees an end
                self.error = exc if not isinstance(exc, StopIteration) else None
                self.ended = True
                if self.error is not None:
                    raise
                return False
            if event is None:
                self.ended = self.finished = True
            else:
                self.pending = memoryview(event)
        return bool(self.pending)


class PlacedPart:
    """request.files' stand-in for a part written in place: it holds the chunk's place."""

    def __init__(self, placed: api_streamed.Placed) -> None:
        self.placed = placed

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def close(self) -> None:
        self.placed.close()

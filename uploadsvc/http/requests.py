"""A request class whose uploaded parts stream straight into the store (Store.spool).

Werkzeug would spool large parts to the system temp dir; spooling into the store keeps every
byte inside the data directory and lets the store take the part over as a chunk without
copying it again.

Multipart bodies are parsed by `multipart`'s push parser instead of werkzeug's: it finds
boundaries with bytes.find over large reads, which is several times less CPU per byte (the
largest cost of a chunk request under werkzeug's parser; see docs/performance.md).
"""
import math

from flask import Flask, Request, current_app
from multipart import MultipartError, MultipartSegment, PushMultipartParser
from werkzeug.datastructures import FileStorage, Headers
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.wsgi import LimitedStream

from ..services.stores import store

READ_SIZE = 1024 * 1024
# Smaller bodies go to werkzeug's parser, which also takes the lax framing some encoders
# produce (werkzeug's own test client omits the CRLF before a boundary that follows an
# empty part); its cost per byte only matters for large bodies.
FAST_PARSE_MIN = 256 * 1024


class FastFormDataParser(FormDataParser):
    """werkzeug's form parser with a faster multipart parser; same results and limits."""

    def _parse_multipart(self, stream, mimetype, content_length, options):
        if content_length is None or content_length < FAST_PARSE_MIN:
            return super()._parse_multipart(stream, mimetype, content_length, options)
        boundary = options.get("boundary", "")
        if not boundary:
            raise ValueError("Missing boundary")
        fields, files = [], []
        try:
            self._parse_parts(stream, boundary, content_length, fields, files)
        except (MultipartError, RequestEntityTooLarge):
            for _, storage in files:
                storage.close()
            raise
        return stream, self.cls(fields), self.cls(files)

    def _parse_parts(self, stream, boundary, content_length, fields, files) -> None:
        sink = None
        events = Events(self._events(stream, boundary, content_length))
        try:
            for event in events:
                if isinstance(event, MultipartSegment):
                    segment, sink = event, self._sink_for(event, content_length, fields, events)
                elif event is not None:
                    self._write(sink, event)
                else:
                    self._finish(segment, sink, fields, files)
                    sink = None
        except BaseException:
            if sink is not None and not isinstance(sink, bytearray):
                sink.close()
            raise

    def _events(self, stream, boundary, content_length):
        with PushMultipartParser(boundary, content_length,
                                 max_segment_count=self.max_form_parts or math.inf) as parser:
            while not parser.closed:
                yield from parser.parse(stream.read(READ_SIZE))
        while stream.read(READ_SIZE):  # read the epilogue to the end, as werkzeug does
            pass

    def _sink_for(self, segment: MultipartSegment, content_length, fields: list, events):
        """Where a segment's bytes go: a field's buffer or a spooled file (a subclass may
        read the segment's bytes from events itself)."""
        return self._open(segment, content_length)

    @staticmethod
    def _finish(segment: MultipartSegment, sink, fields: list, files: list) -> None:
        if isinstance(sink, bytearray):
            fields.append((segment.name, sink.decode("utf-8", "replace")))
        else:
            sink.seek(0)
            files.append((segment.name, FileStorage(sink, segment.filename, segment.name,
                                                    headers=Headers(segment.headerlist))))

    def _open(self, segment: MultipartSegment, content_length):
        if segment.filename is None:
            return bytearray()
        return self.stream_factory(total_content_length=content_length,
                                   content_type=segment.content_type,
                                   filename=segment.filename, content_length=None)

    def _write(self, sink, data) -> None:
        if isinstance(sink, bytearray):
            sink += data
            if self.max_form_memory_size is not None and len(sink) > self.max_form_memory_size:
                raise RequestEntityTooLarge()
        else:
            view = memoryview(data)
            while view:  # a raw file may take fewer bytes than offered
                view = view[sink.write(view):]


class Events:
    """The multipart parser's events one at a time, where a reader of one segment can give
    back the events it read past its end."""

    def __init__(self, events) -> None:
        self._events = events
        self._back: list = []

    def __iter__(self) -> "Events":
        return self

    def __next__(self):
        return self._back.pop() if self._back else next(self._events)

    def give_back(self, event) -> None:
        self._back.append(event)


class BoundedInput:
    """wsgi.input limited to Content-Length, without werkzeug's LimitedStream, which copies
    every read twice through a fresh buffer (a third of a chunk request's CPU at 1 MiB reads)."""

    def __init__(self, stream, length: int) -> None:
        self.stream = stream
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        if size <= 0:
            return b""
        data = self.stream.read(size)
        if not data:
            raise ClientDisconnected()
        self.remaining -= len(data)
        return data


class UploadRequest(Request):
    """Flask's request, with multipart file parts spooled by the ChunkStore."""

    form_data_parser_class = FastFormDataParser

    def _get_stream_for_parsing(self):
        stream = super()._get_stream_for_parsing()  # werkzeug's length checks happen here
        length = self.content_length
        if isinstance(stream, LimitedStream) and length is not None and length >= FAST_PARSE_MIN:
            return BoundedInput(self.environ["wsgi.input"], length)
        return stream

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        limit = current_app.config["MAX_CHUNK_SIZE"]
        spool = store().spool(limit)
        # Kept here too: when parsing fails (a full disk, a broken body) werkzeug never
        # hands the part to request.files, and only close() removes the temp file.
        self.__dict__.setdefault("_spools", []).append(spool)
        return spool

    def close(self) -> None:
        try:
            super().close()
        finally:
            for spool in self.__dict__.pop("_spools", ()):
                spool.close()


def init_app(app: Flask) -> None:
    app.request_class = UploadRequest

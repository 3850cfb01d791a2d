"""Large request bodies read straight from gunicorn's socket.

gunicorn's body reader passes every byte through two BytesIO buffers and slices them on
each read: five copies of every byte, about a fifth of a chunk request's CPU. For a body
with a Content-Length this reads from the client's socket directly (one copy, by the
kernel), after taking what gunicorn has already buffered, and keeps gunicorn's own
accounting (bytes left of the body, a failed body) right, so keep-alive connections go on
as before. Anything else (chunked bodies, another server, a gunicorn whose internals
differ) keeps the server's own wsgi.input.
"""
import io

# Smaller bodies are not worth a second code path.
MIN_LENGTH = 64 * 1024
# What readline takes from the socket at a time.
LINE_BLOCK = 8 * 1024


class SocketBody:
    """wsgi.input of one gunicorn request: the body's buffered head, then the socket."""

    def __init__(self, body, sock) -> None:
        self.body = body  # gunicorn's Body, told of what we consume
        self.reader = body.reader
        self.sock = sock
        length = self.reader.length
        head = body.buf.getvalue()[:length]
        body.buf = io.BytesIO()
        buffered = self.reader.unreader.take_buffered()
        taken = buffered[:length - len(head)]
        if len(buffered) > len(taken):  # a pipelined next request: give it back
            self.reader.unreader.unread(buffered[len(taken):])
        self.head = head + taken
        self.reader.length = length - len(self.head)

    @classmethod
    def of(cls, environ: dict) -> "SocketBody | None":
        body, sock = environ.get("wsgi.input"), environ.get("gunicorn.socket")
        reader = getattr(body, "reader", None)
        unreader = getattr(reader, "unreader", None)
        if (sock is None or type(reader).__name__ != "LengthReader"
                or not isinstance(getattr(body, "buf", None), io.BytesIO)
                or not isinstance(getattr(reader, "length", None), int)
                or not hasattr(unreader, "take_buffered") or not hasattr(unreader, "unread")):
            return None
        return cls(body, sock)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1024 * 1024), b""))
        if self.head:
            data, self.head = self.head[:size], self.head[size:]
            return data
        size = min(size, self.reader.length)
        return self._recv(self.sock.recv, size, len) if size > 0 else b""

    def readinto(self, buffer) -> int:
        """Like read, straight into buffer (recv_into): the kernel's copy is the only one."""
        view = memoryview(buffer).cast("B")
        if self.head:
            n = min(len(view), len(self.head))
            view[:n], self.head = self.head[:n], self.head[n:]
            return n
        size = min(len(view), self.reader.length)
        return self._recv(lambda n: self.sock.recv_into(view, n), size, int) if size > 0 else 0

    def _recv(self, receive, size: int, count):
        """receive(size) from the socket, keeping gunicorn's count of the body's bytes left;
        count(result) is the bytes received."""
        try:
            received = receive(size)
        except BaseException:
            self.body.failed = True  # where the next request starts is unknown now
            raise
        n = count(received)
        if not n:
            self.body.failed = True
        self.reader.length -= n
        return received

    def readline(self, size: int = -1) -> bytes:
        """A line (at most size bytes), read a block at a time; what follows it is kept for
        the next read."""
        line = bytearray()
        while size < 0 or len(line) < size:
            block = self.read(LINE_BLOCK if size < 0 else min(LINE_BLOCK, size - len(line)))
            if not block:
                break
            end = block.find(b"\n")
            if end >= 0:
                line += block[:end + 1]
                self.head = block[end + 1:] + self.head
                break
            line += block
        return bytes(line)


class SocketBodies:
    """WSGI middleware: large bodies with a Content-Length get a SocketBody."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length >= MIN_LENGTH:
            body = SocketBody.of(environ)
            if body is not None:
                environ["wsgi.input"] = body
        return self.app(environ, start_response)

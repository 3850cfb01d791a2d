"""Azure Blob Storage (Azurite) and Google Cloud Storage (the GCS emulator) for the bench,
each behind a counting proxy on loopback: neither emulator counts the requests it answers,
so the proxy counts them, by HTTP method, as SeaweedFS's metrics count S3's."""
import http.client
import http.server
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from tests.azurite import Azurite
from tests.gcsemulator import GCSEmulator
from tests.seaweedfs import free_ports

# Seconds the service waits for an emulator's answer (UPLOADSVC_S3_TIMEOUT); the GCS
# client retries what may pass (a refused connection too) for three times as long.
EMULATOR_TIMEOUT = 300
# Headers that belong to one connection, not to the request or answer passed on.
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer",
       "upgrade"}


class CountingProxy(http.server.ThreadingHTTPServer):
    """Passes every request on to upstream (host:port) and counts it by method."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        (port,) = free_ports(1)
        super().__init__(("127.0.0.1", port), _Handler)
        self.upstream = upstream
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "CountingProxy":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def requests(self) -> Counter:
        with self.lock:
            return Counter(self.counts)

    def settled(self, timeout: float = 10) -> Counter:
        """requests() once two readings 0.1 s apart agree (a host's work after its answer
        is in)."""
        last, deadline = self.requests(), time.monotonic() + timeout
        while True:
            time.sleep(0.1)
            now = self.requests()
            if now == last or time.monotonic() > deadline:
                return now
            last = now


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _pass(self) -> None:
        server: CountingProxy = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        upstream = http.client.HTTPConnection(server.upstream, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            with server.lock:
                server.counts[self.command] += 1
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _pass

    def log_message(self, *args) -> None:  # quiet
        pass


class Emulated:
    """An emulator, the proxy in front of it, and the variables that point a host at it."""

    def __init__(self, kind: str, base_dir: Path) -> None:
        self.kind = kind
        self.server = Azurite(base_dir, in_memory=False) if kind == "azure" else \
            GCSEmulator(base_dir, in_memory=False)
        self.proxy: CountingProxy | None = None

    def start(self) -> "Emulated":
        self.server.start()
        self.proxy = CountingProxy(urlsplit(self.server.endpoint).netloc).start()
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.server.stop()

    def environment(self) -> dict[str, str]:
        env = self.server.environment()
        if self.kind == "azure":
            env["AZURE_STORAGE_CONNECTION_STRING"] = env[
                "AZURE_STORAGE_CONNECTION_STRING"].replace(
                f"http://127.0.0.1:{self.server.port}", self.proxy.endpoint)
        else:
            env["STORAGE_EMULATOR_HOST"] = self.proxy.endpoint
        # An emulator is not the store measured: the GCS one (pure Python) takes over a
        # minute to compose a 1 GiB upload, past the 30 s a service waits for a store.
        env["UPLOADSVC_S3_TIMEOUT"] = str(EMULATOR_TIMEOUT)
        return env

    def settled(self) -> Counter:
        return self.proxy.settled()

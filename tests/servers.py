"""Real servers for tests: gunicorn serving uploadsvc on 127.0.0.1, started and stopped."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    """uploadsvc under gunicorn with its own data directory (and database, by default)."""

    def __init__(self, data_dir: Path, workers: int = 4, threads: int = 4,
                 env: dict | None = None, database_url: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "UPLOADSVC_DATA_DIR": str(self.data_dir), "HOST": "127.0.0.1",
                    "PORT": str(self.port), "WEB_CONCURRENCY": str(workers),
                    "GUNICORN_THREADS": str(threads),
                    # In the test's directory, so that a server killed with SIGKILL (whose
                    # on_exit never runs) leaves no metrics directory behind in /tmp.
                    "PROMETHEUS_MULTIPROC_DIR": str(self.data_dir.parent / f"metrics-{self.port}"),
                    **(env or {})}
        self.database_url = database_url
        if database_url:
            self.env["UPLOADSVC_DATABASE_URL"] = database_url
        self.log_path = self.data_dir.parent / f"gunicorn-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def migrate(self) -> None:
        subprocess.run([str(BIN / "flask"), "--app", "uploadsvc", "db", "upgrade"],
                       cwd=PROJECT, env=self.env, check=True, capture_output=True)

    def start(self, timeout: float = 60, migrate: bool = True) -> "GunicornServer":
        """Migrate (unless the database is known to be migrated), serve, wait until ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if migrate:
            self.migrate()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"], cwd=PROJECT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/api/health", timeout=1).ok:
                    return self
            except requests.RequestException:  # not listening yet, or workers still booting
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not become ready")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop the server and every process of its session."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ThrottledProxy:
    """A TCP relay on 127.0.0.1 that passes what clients send on to a server at a set rate.

    Lets a test interrupt a client mid-upload however fast the server and the machine are.
    Set ``rate`` to None to let bytes through at full speed again.
    """

    BLOCK = 16 * 1024

    def __init__(self, target_port: int, rate: float | None) -> None:
        self.target_port = target_port
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> "ThrottledProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the server is down: the client sees its connection closed
                client.close()
                continue
            self.connections += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, throttled: bool) -> None:
        try:
            while data := source.recv(self.BLOCK):
                sink.sendall(data)
                if throttled and self.rate:
                    time.sleep(len(data) / self.rate)
            sink.shutdown(socket.SHUT_WR)
        except OSError:  # one end is gone: so is the other, as with a direct connection
            for end in (source, sink):
                with contextlib.suppress(OSError):  # shutdown, unlike close, wakes a recv
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

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
    """A TCP relay on 127.0.0.1 between clients and a server, that can slow or stop uploads.

    ``rate`` (bytes per second, None: full speed, settable at any time) paces what clients
    send. ``hold_after`` makes the client unable to finish, however fast the machine: the
    relay passes that many of the bytes clients send (all connections together), then holds
    the rest: it reads no more from the clients and forwards nothing, yet closes nothing.
    Connections clients open while it holds are held too, without reaching the server.
    ``held`` is set once it holds; answers from the server still reach the clients.
    ``cut()`` cuts every open connection and holds on; ``release()`` ends the hold.
    ``refused`` is set once a client connected while the server was down (and so was cut).
    """

    BLOCK = 16 * 1024

    def __init__(self, target_port: int, rate: float | None = None,
                 hold_after: int | None = None) -> None:
        self.target_port = target_port
        self.rate = rate
        self.hold_after = hold_after
        self.held = threading.Event()
        self.refused = threading.Event()
        self._passed = 0
        self._released = False
        self._cuts = 0  # how many times cut() ran: a held connection ends at the next one
        self._changed = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> "ThrottledProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def cut(self) -> None:
        """Cut every connection open now, as a network failure would, and hold on: the server
        sees them end, and the connections clients open next, held, never reach it."""
        with self._changed:
            self._cuts += 1
            self._changed.notify_all()
            connections = list(self.connections)  # close() closes them
        for connection in connections:
            with contextlib.suppress(OSError):  # wakes the relay's recv; ended ones raise
                connection.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """End the hold, once the client it stopped has gone: the held connections are cut
        (the server sees them end, as it would the client's own), later ones pass all."""
        with self._changed:
            self.hold_after = None
            self._released = True
            self._changed.notify_all()

    def close(self) -> None:
        self.release()
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
            with self._changed:
                holding, cuts = self._holding(), self._cuts
                if holding:
                    self.connections.append(client)
            if holding:  # held without a connection to the server, until cut or released
                threading.Thread(target=self._hold_unconnected, args=(client, cuts),
                                 daemon=True).start()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the server is down: the client sees its connection closed
                self.refused.set()
                client.close()
                continue
            with self._changed:
                cut = self._cuts != cuts  # while this one was connecting: it is cut too
                if not cut:
                    self.connections += [client, server]
            if cut:
                for end in (client, server):
                    end.close()
                continue
            threading.Thread(target=self._pipe, args=(client, server, cuts),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, None),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, cuts: int | None) -> None:
        """Relay source to sink: from the client (cuts: how many cuts came before it opened)
        or, with cuts None, from the server."""
        upstream = cuts is not None
        try:
            while data := source.recv(self.BLOCK):
                passing = self._allow(len(data)) if upstream else len(data)
                sink.sendall(data[:passing])
                if passing < len(data):
                    self._hold(cuts)
                    break  # cut or released: cut this connection
                if upstream and self.rate:
                    time.sleep(len(data) / self.rate)
            else:
                sink.shutdown(socket.SHUT_WR)
                return
        except OSError:  # one end is gone: so is the other, as with a direct connection
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):  # shutdown, unlike close, wakes a recv
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def _allow(self, size: int) -> int:
        """How many of `size` bytes a client sent may pass now."""
        with self._changed:
            if self.hold_after is None:
                return size
            passing = max(0, min(size, self.hold_after - self._passed))
            self._passed += passing
            return passing

    def _holding(self) -> bool:
        """Whether the relay holds now (call with self._changed held)."""
        return self.hold_after is not None and self._passed >= self.hold_after

    def _hold(self, cuts: int) -> None:
        """Wait until a connection opened after `cuts` cuts is cut or released."""
        with self._changed:
            self.held.set()
            self._changed.wait_for(lambda: self._released or self._cuts != cuts)

    def _hold_unconnected(self, client: socket.socket, cuts: int) -> None:
        self._hold(cuts)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()

"""The servers the benchmark drives, each on 127.0.0.1, started and stopped by it."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from . import client

PROJECT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((client.HOST, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection((client.HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


class Server:
    """A subprocess in its own session, with its output in a log file."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"{self.name}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict:
        return dict(os.environ)

    def ready(self) -> None:
        wait_for_port(self.port, self.process, self.log_path)

    def start(self) -> "Server":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=PROJECT, env=self.env(),
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            self.ready()
        except BaseException:
            self.stop()
            raise
        return self

    def pids(self) -> list[int]:
        """The processes that serve requests (the workers, for a pre-forking server)."""
        return [self.process.pid]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Uploadsvc(Server):
    """uploadsvc under gunicorn with the project's gunicorn.conf.py and its own data dir."""

    name = "uploadsvc"

    def __init__(self, workdir: Path, extra_env: dict | None = None) -> None:
        super().__init__(workdir)
        self.data_dir = workdir / "data"
        self.extra_env = extra_env or {}

    def env(self) -> dict:
        return {**os.environ, "UPLOADSVC_DATA_DIR": str(self.data_dir), "HOST": client.HOST,
                "PORT": str(self.port), **self.extra_env}

    def command(self) -> list[str]:
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"]

    def start(self) -> "Server":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(BIN / "flask"), "--app", "uploadsvc", "db", "upgrade"],
                       cwd=PROJECT, env=self.env(), check=True, capture_output=True)
        return super().start()

    def ready(self) -> None:
        super().ready()
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.request(self.port, "GET", "/api/health", timeout=10).status == 200:
                    return
            except OSError:  # workers still booting
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("uploadsvc is not healthy")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.process.pid).children()]


class TusReference(Server):
    """@tus/server with @tus/file-store (bench/node), the reference tus implementation."""

    name = "tus-node"

    def command(self) -> list[str]:
        store = self.workdir / "tus-node-files"
        store.mkdir(exist_ok=True)
        return ["node", str(BENCH / "node" / "server.js"), str(self.port), str(store)]

    @staticmethod
    def available() -> bool:
        return shutil.which("node") is not None and (BENCH / "node" / "node_modules").is_dir()


class TusS3Reference(Server):
    """@tus/server with @tus/s3-store (bench/node/s3_server.js) on a bucket of the store whose
    environment (AWS_* variables) it is given; the parts it spools in temp, under workdir."""

    name = "tus-node-s3"

    def __init__(self, workdir: Path, bucket: str, store_env: dict) -> None:
        super().__init__(workdir)
        self.bucket = bucket
        self.store_env = store_env
        self.temp = workdir / f"tus-node-s3-temp-{self.port}"

    def env(self) -> dict:
        return {**os.environ, **self.store_env, "TMPDIR": str(self.temp)}

    def command(self) -> list[str]:
        self.temp.mkdir(exist_ok=True)
        return ["node", str(BENCH / "node" / "s3_server.js"), str(self.port), self.bucket]

    @staticmethod
    def available() -> bool:
        return shutil.which("node") is not None and \
            (BENCH / "node" / "node_modules" / "@tus" / "s3-store").is_dir()


class Sink(Server):
    """bench/sink.py: reads and discards bodies; the loopback ceiling."""

    name = "sink"

    def command(self) -> list[str]:
        return [sys.executable, str(BENCH / "sink.py"), str(self.port)]


class PeakMemory:
    """Samples VmHWM (peak resident set) of a server's processes while it runs."""

    def __init__(self, server: Server, interval: float = 0.5) -> None:
        self.server = server
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        for pid in self.server.pids():
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            kib = int(line.split()[1])
                            self.peaks[pid] = max(self.peaks.get(pid, 0), kib * 1024)
            except (FileNotFoundError, ProcessLookupError):
                continue

    def reset(self) -> None:
        """Start the processes' peaks afresh (clear_refs "5" resets VmHWM; needs root)."""
        for pid in self.server.pids():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as refs:
                    refs.write("5")
            except OSError:
                continue

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "PeakMemory":
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak(self) -> int:
        return max(self.peaks.values(), default=0)

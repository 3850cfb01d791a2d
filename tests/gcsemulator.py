"""A private GCS emulator for tests: PyPI's gcp-storage-emulator (pure Python, pinned in
requirements.txt) on loopback with a port of its own, in memory, with one bucket; clients
reach it through STORAGE_EMULATOR_HOST with no credentials."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .seaweedfs import free_ports

BUCKET = "uploadsvc-tests"
PROJECT = "uploadsvc-tests"


class GCSEmulator:
    """gcp-storage-emulator on 127.0.0.1, its bucket made."""

    def __init__(self, base_dir: Path, in_memory: bool = True) -> None:
        self.base_dir = Path(base_dir)
        self.in_memory = in_memory  # else objects are files under base_dir/.cloudstorage
        self.log_path = self.base_dir / "gcs.log"
        (self.port,) = free_ports(1)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "GCSEmulator":
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gcp_storage_emulator", "start", "--host=127.0.0.1",
             f"--port={self.port}", *(["--in-memory"] if self.in_memory else []), "--quiet",
             f"--default-bucket={BUCKET}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.base_dir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the GCS emulator exited: {self.log()[-2000:]}")
            try:
                answer = requests.get(f"{self.endpoint}/storage/v1/b/{BUCKET}", timeout=2)
                if answer.status_code == 200:
                    self._no_soft_delete()
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the GCS emulator did not start: {self.log()[-2000:]}")
            time.sleep(0.2)

    def _no_soft_delete(self) -> None:
        """Removed objects go at once, as in a bucket without soft delete: the emulator's
        default keeps each for 7 days, in memory or on disk, and a session or a bench
        removes many gigabytes."""
        answer = requests.patch(f"{self.endpoint}/storage/v1/b/{BUCKET}", timeout=10,
                                json={"softDeletePolicy": {"retentionDurationSeconds": "0"}})
        answer.raise_for_status()

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
        """The standard variables google-cloud-storage reads, pointed at this emulator, and
        a service account's key file (a key made here: the emulator checks no signature)
        that signs download URLs."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_CLOUD_PROJECT": PROJECT,
                "GOOGLE_APPLICATION_CREDENTIALS": str(self.key_file())}

    def key_file(self) -> Path:
        path = self.base_dir / "service-account.json"
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            path.write_text(json.dumps({
                "type": "service_account", "project_id": PROJECT, "private_key_id": "tests",
                "private_key": pem, "client_email": f"uploads@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
        return path

    @staticmethod
    def url() -> str:
        """A storage URL of a prefix of its own in the bucket."""
        return f"gs://{BUCKET}/app-{uuid.uuid4().hex[:12]}"

"""A private Azurite for tests: the Azure Blob Storage emulator from npm (tests/azurite/),
on loopback with a port of its own, in memory, with the well-known development account."""
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from .seaweedfs import free_ports

ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every copy of the emulator).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "uploadsvc-tests"
BINARY = Path(__file__).parent / "azurite" / "node_modules" / ".bin" / "azurite-blob"


class Azurite:
    """azurite-blob on 127.0.0.1; its connection string and one container made."""

    def __init__(self, base_dir: Path, in_memory: bool = True,
                 memory_limit_mb: int | None = None) -> None:
        self.base_dir = Path(base_dir)
        # Blobs in memory (the tests' few MiB), or on disk under base_dir (the bench's tens
        # of GiB: in memory, Azurite stops at half of the machine's memory).
        self.in_memory = in_memory
        self.memory_limit_mb = memory_limit_mb
        self.log_path = self.base_dir / "azurite.log"
        (self.port,) = free_ports(1)
        self.endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        self.process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint={self.endpoint};")

    def start(self, timeout: float = 60) -> "Azurite":
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} not found: run `make test-deps` (npm ci in "
                               "tests/azurite)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             *(["--inMemoryPersistence"] if self.in_memory else
               ["--location", str(self.base_dir / "data")]),
             *(["--extentMemoryLimit", str(self.memory_limit_mb)]
               if self.memory_limit_mb else []),
             "--disableTelemetry", "--skipApiVersionCheck", "--loose"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.base_dir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"azurite exited: {self.log()[-2000:]}")
            try:
                self.service().create_container(CONTAINER)
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"azurite did not start: {self.log()[-2000:]}") from None
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
        """The standard variable the SDK's users set, pointed at this emulator."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def service(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.connection_string,
                                                        retry_total=0)

    def container(self):
        return self.service().get_container_client(CONTAINER)

    @staticmethod
    def url() -> str:
        """A storage URL of a prefix of its own in the container."""
        return f"azure://{CONTAINER}/app-{uuid.uuid4().hex[:12]}"

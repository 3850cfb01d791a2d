"""Podman for the container tests, configured by the tests alone (nothing in /etc): its
settings, storage and run state in a directory of the test session's, a Debian base built
locally with mmdebstrap (no image can be pulled here), the project's images built on it, and
podman's Docker API socket for docker-compose."""
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
# Base tarballs kept between runs, one per set of inputs (in a git-ignored folder).
CACHE = PROJECT / "test-artifacts" / "containers"
SUITE = "bookworm"
BASE_IMAGE = "localhost/uploadsvc-test-base"
# The host's apt sources: the base gets the mirror the host uses.
SOURCES = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
# The host's CA bundle, passed to builds as the secret "ca": on machines whose traffic to
# the package registries goes through a TLS-inspecting proxy, the host trusts its CA and a
# fresh image does not. Read at build time, never copied into the project.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# This machine's kernel refuses crun's cgroup setup and podman's default ulimits; podman's
# locks and the networks compose makes stay in the tests' directory, not /run and /etc. CNI
# (with its dnsname plugin, for the services' names) whichever network stack apt chose.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
tmp_dir = "{directory}/tmp"
[network]
network_backend = "cni"
network_config_dir = "{directory}/networks"
"""
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

log = logging.getLogger(__name__)


def find(command: str) -> str:
    path = shutil.which(command, path=SEARCH_PATH)
    assert path, f"{command} is required (make test installs the test dependencies)"
    return path


class Podman:
    """podman with its configuration and storage under directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "containers.conf"
        conf.write_text(CONTAINERS_CONF.format(directory=self.directory))
        storage = self.directory / "storage.conf"
        storage.write_text(f'[storage]\ndriver = "overlay"\n'
                           f'graphroot = "{self.directory / "storage"}"\n'
                           f'runroot = "{self.directory / "run"}"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf),
                    "CONTAINERS_STORAGE_CONF": str(storage), "PATH": SEARCH_PATH}
        self.socket = self.directory / "podman.sock"
        self.service: subprocess.Popen | None = None
        self.timings: dict[str, float] = {}

    def __call__(self, *args: str, timeout: float = 120, check: bool = True,
                 ) -> subprocess.CompletedProcess:
        """podman ARGS; its output as text, and an error with that output if it failed."""
        result = subprocess.run([find("podman"), *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode:
            raise RuntimeError(f"podman {' '.join(args)}: {result.returncode}\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def timed(self, name: str, work):
        """work(), its time kept under name (the tests report them)."""
        started = time.monotonic()
        result = work()
        self.timings[name] = round(time.monotonic() - started, 1)
        log.warning("containers: %s took %.1f s", name, self.timings[name])
        return result

    def base(self) -> str:
        """A Debian image of the minimal variant, imported from a cached mmdebstrap tarball."""
        tarball = self.timed("base: mmdebstrap (or the cache)", base_tarball)
        self.timed("base: podman import", lambda: self(
            "import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE_IMAGE))
        return BASE_IMAGE

    def build(self, tag: str, context: Path, base: str) -> str:
        """Build the Dockerfile in context as tag on base, as a user would (Docker's image
        format: OCI has no HEALTHCHECK)."""
        args = ["build", "--quiet", "--format", "docker", "--build-arg", f"BASE={base}",
                "-t", tag]
        if HOST_CA.exists():
            args += ["--secret", f"id=ca,src={HOST_CA}"]
        self.timed(f"build {tag}", lambda: self(*args, "--jobs", "2", str(context), timeout=900))
        return tag

    def inspect(self, kind: str, name: str) -> dict:
        return json.loads(self(kind, "inspect", name).stdout)[0]

    def start_service(self) -> str:
        """podman's Docker-compatible API on a socket of the tests', for docker-compose."""
        self.service = subprocess.Popen(
            [find("podman"), "system", "service", "--time=0", f"unix://{self.socket}"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.service.poll() is None, "podman system service exited"
            assert time.monotonic() < deadline, "podman system service did not start"
            time.sleep(0.1)
        return f"unix://{self.socket}"

    def reset(self) -> None:
        """Stop the API service and remove every container, volume and image of the tests'
        (podman system reset unmounts the layers, which a plain rmtree could not remove)."""
        if self.service is not None and self.service.poll() is None:
            self.service.terminate()
            self.service.wait(30)
        self.timed("podman system reset", lambda: self(
            "system", "reset", "--force", timeout=300, check=False))
        shutil.rmtree(self.directory, ignore_errors=True)


def base_tarball() -> Path:
    """mmdebstrap's minimal Debian (with apt) as a tarball, made once for each set of inputs
    (suite, variant, the host's apt sources) and kept in CACHE."""
    sources = next(path for path in SOURCES if path.exists())
    key = hashlib.sha256(f"{SUITE} minbase\n{sources.read_text()}".encode()).hexdigest()[:16]
    tarball = CACHE / f"debian-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".{os.getpid()}.partial")
    made = subprocess.run([find("mmdebstrap"), "--quiet", "--variant=minbase",
                           "--format=tar", SUITE, str(partial), str(sources)],
                          capture_output=True, text=True, timeout=600)
    if made.returncode:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"mmdebstrap failed: {made.stderr[-3000:]}")
    partial.rename(tarball)
    return tarball

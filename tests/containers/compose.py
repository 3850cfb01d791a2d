"""docker-compose (Debian's, the v1 Python tool) on compose.yaml, against podman's Docker API
socket: one project for every compose scenario of a session."""
import subprocess

from .podman import PROJECT, Podman, find


class Compose:
    """compose.yaml of this checkout as project `name`, with env for its variables."""

    def __init__(self, podman: Podman, name: str, env: dict[str, str]) -> None:
        self.podman = podman
        self.name = name
        self.env = {**podman.env, **env, "DOCKER_HOST": podman.start_service()}
        self.command = [find("docker-compose"), "--project-directory", str(PROJECT),
                        "-f", str(PROJECT / "compose.yaml"), "-p", name]

    def __call__(self, *args: str, timeout: float = 300, check: bool = True,
                 ) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.command, *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode:
            raise RuntimeError(f"docker-compose {' '.join(args)}: {result.returncode}\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def running(self) -> set[str]:
        """The services of the project whose container runs."""
        listed = self.podman("ps", "--filter", f"label=com.docker.compose.project={self.name}",
                             "--format", '{{index .Labels "com.docker.compose.service"}}')
        return set(listed.stdout.split())

    def one_shot(self, service: str) -> tuple[int, str]:
        """`run` a one-shot service; its exit status and output. Detached, then waited for:
        docker-compose 1.29's attached `run` can miss the exit of a short container under
        podman and wait forever."""
        name = self("run", "-d", service).stdout.split()[-1]
        try:
            status = int(self.podman("wait", name, timeout=120).stdout.split()[-1])
            logs = self.podman("logs", name)
            return status, logs.stdout + logs.stderr
        finally:
            self.podman("rm", "--force", name, check=False)

    def logs(self, service: str) -> str:
        result = self.podman("logs", self.container(service), check=False)
        return result.stdout + result.stderr

    def down(self) -> None:
        """Every service (of every profile) stopped and removed, with the volumes."""
        self.podman.timed("compose: down", lambda: self(
            "--profile", "scaleout", "down", "--volumes", "--timeout", "10", check=False))

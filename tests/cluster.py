"""Several app hosts serving one set of uploads: gunicorn instances, each with a data
directory of its own, sharing one database and one bucket prefix, behind nginx as a
round-robin load balancer (no sticky sessions), as docs/scaleout.md deploys them."""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

from .servers import BIN, PROJECT, GunicornServer, free_port

# Root's PATH has /usr/sbin (nginx); other users' may not.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
# Which host served a request, from nginx: "127.0.0.1:PORT" of that host.
UPSTREAM_HEADER = "X-Upstream"


def find_nginx() -> str:
    path = shutil.which("nginx", path=SEARCH_PATH)
    if path is None:
        raise RuntimeError("nginx not found: install nginx (make test-deps)")
    return path


class Nginx:
    """nginx in the foreground on 127.0.0.1, every file it writes under directory, passing
    each request to the next of `upstreams` in turn over kept-open connections, request
    bodies streamed through as they arrive."""

    def __init__(self, directory: Path, upstreams: list[int]) -> None:
        self.directory = Path(directory)
        self.upstreams = upstreams
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def config(self) -> Path:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=0;"
                            for port in self.upstreams)
        temp_paths = "\n".join(f"    {kind}_temp_path {d}/{kind};"
                               for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        path = d / "nginx.conf"
        path.write_text(f"""\
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
{temp_paths}
    upstream uploadsvc {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_connect_timeout 5s;
        proxy_send_timeout 300s;
        proxy_read_timeout 300s;
        add_header {UPSTREAM_HEADER} $upstream_addr always;
        location / {{
            proxy_pass http://uploadsvc;
        }}
    }}
}}
""")
        return path

    def start(self, timeout: float = 10) -> "Nginx":
        config = self.config()
        self.process = subprocess.Popen(
            [find_nginx(), "-p", str(self.directory), "-e", str(self.directory / "error.log"),
             "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx did not start: {self.log()[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Cluster:
    """`hosts` gunicorn instances on one database and one bucket prefix, behind nginx.

    url is nginx's; hosts[i].url each host's own. Every host has its own data directory, as
    separate machines would: nothing about an upload may be shared through one.
    host_env[i] is more environment for host i alone (its gunicorn and its `flask`
    commands), as a machine of its own may differ (its clock, say)."""

    def __init__(self, base_dir: Path, database_url: str, storage_url: str, env: dict,
                 hosts: int = 3, workers: int = 2, threads: int = 4,
                 host_env: dict[int, dict] | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.database_url = database_url
        self.storage_url = storage_url
        self.env = {"UPLOADSVC_STORAGE_URL": storage_url, **env}
        self.hosts = [GunicornServer(self.base_dir / f"host{i}" / "data", workers=workers,
                                     threads=threads,
                                     env={**self.env, **(host_env or {}).get(i, {})},
                                     database_url=database_url)
                      for i in range(hosts)]
        self.nginx = Nginx(self.base_dir / "nginx", [host.port for host in self.hosts])
        self.url = self.nginx.url

    def start(self) -> "Cluster":
        """Start every host at once, each migrating the database first as `make run`
        does (so the migrations run concurrently), then nginx."""
        try:
            self._each(lambda host: host.start())
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.nginx.stop()
        self._each(lambda host: host.stop())

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def host_of(self, response: requests.Response) -> int:
        """Which host served a request sent through nginx (the last one it tried)."""
        served = response.headers[UPSTREAM_HEADER].split(",")[-1].strip()
        return [f"127.0.0.1:{host.port}" for host in self.hosts].index(served)

    def kill(self, index: int) -> None:
        """SIGKILL a whole host (its master and every worker), as a machine that dies."""
        host = self.hosts[index]
        os.killpg(host.process.pid, signal.SIGKILL)
        host.process.wait()

    def kill_workers(self, index: int) -> list[int]:
        """SIGKILL the workers of one host (its master starts new ones); their pids."""
        pids = self.hosts[index].worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def restart(self, index: int) -> None:
        """Start a killed host again on its port (the database is migrated already)."""
        self.hosts[index].start(migrate=False)

    def flask(self, index: int, *args: str, env: dict | None = None) -> subprocess.Popen:
        """Start `flask --app uploadsvc ARGS` with host index's configuration (and env)."""
        return subprocess.Popen([str(BIN / "flask"), "--app", "uploadsvc", *args], cwd=PROJECT,
                                env={**self.hosts[index].env, **(env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def _each(self, work) -> None:
        """work(host) for every host in a thread of its own, started together; the first
        failure raised once all have finished."""
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(self.hosts))

        def run(host):
            try:
                barrier.wait()
                work(host)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(host,)) for host in self.hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

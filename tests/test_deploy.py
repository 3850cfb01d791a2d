"""deploy/: the systemd units pass `systemd-analyze verify` (and keep their hardening), and
the nginx server block passes `nginx -t` and routes each path as docs/deployment.md says.

Only the files and the system tools are used, never the uploadsvc package. Every check is
also run on a deliberately broken copy, which must fail, so a check that silently does
nothing cannot pass.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SERVICE = "uploadsvc.service"
CLEANUP = "uploadsvc-cleanup.service"
TIMER = "uploadsvc-cleanup.timer"
UNITS = (SERVICE, CLEANUP, TIMER)
# Where the units expect the project; the tests' copies point at this checkout instead.
INSTALL_DIR = "/srv/uploadsvc"
UPSTREAM = "http://127.0.0.1:3000"
LOCALHOST = "127.0.0.1"
# Root's PATH has /usr/sbin (nginx); other users' may not.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
# systemd-analyze security's exposure, in tenths (17 = "1.7 OK"): the units score 1.7;
# without their sandbox they score over 5.
MAX_EXPOSURE = 25


def find(command: str) -> str:
    path = shutil.which(command, path=SEARCH_PATH)
    assert path, f"{command} is required (make test installs the test dependencies)"
    return path


# -- systemd ---------------------------------------------------------------------------------


def install_units(directory: Path, edit=None) -> Path:
    """Copies of the units in directory with /srv/uploadsvc replaced by this checkout, whose
    .venv exists when the tests run (systemd-analyze verify checks that every Exec*=
    program exists). User=/Group= stay: verify does not resolve them (systemd looks the user
    up when it starts the unit), so the uploadsvc user need not exist here. edit(name, text)
    may change a unit's text, to break it."""
    directory.mkdir(exist_ok=True)
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(INSTALL_DIR, str(ROOT))
        if edit is not None:
            text = edit(name, text)
        (directory / name).write_text(text)
    return directory


def verify(directory: Path) -> tuple[int, list[str]]:
    """systemd-analyze verify on the units in directory: its return code and the lines of its
    output that name them. --man=no: Documentation= need not be an installed man page;
    --generators=no and --recursive-errors=no: the host's own units and generators (this
    may be a container without systemd as PID 1) are not what is tested; the units' own
    dependencies are still loaded."""
    result = subprocess.run(
        [find("systemd-analyze"), "verify", "--man=no", "--generators=no",
         "--recursive-errors=no", *(str(directory / name) for name in UNITS)],
        capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in output
                               if str(directory) in line or any(u in line for u in UNITS)]


def security(path: Path) -> subprocess.CompletedProcess:
    """systemd-analyze's offline security review of one service, non-zero above MAX_EXPOSURE."""
    return subprocess.run(
        [find("systemd-analyze"), "security", "--offline=true", f"--threshold={MAX_EXPOSURE}",
         "--no-pager", str(path)], capture_output=True, text=True, timeout=60)


def settings(name: str) -> dict[str, list[str]]:
    """The unit's KEY=value lines, every value of each key in order."""
    found: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        match = re.match(r"([A-Za-z]+)=(.*)", line)
        if match:
            found.setdefault(match[1], []).append(match[2].strip())
    return found


def test_units_pass_systemd_analyze_verify(tmp_path):
    returncode, problems = verify(install_units(tmp_path / "units"))
    assert returncode == 0 and problems == []


# Each way a unit can be broken that verify must notice: a program that does not exist (an
# error), a misspelt key and a value systemd cannot parse (warnings: systemd would ignore
# the line and start the unit without it, so the return code alone is not enough).
BREAKAGES = {
    "missing program": (SERVICE, "/.venv/bin/gunicorn ", "/.venv/bin/gunicorn-missing "),
    "misspelt key": (SERVICE, "\nRestart=", "\nRestat="),
    "bad value": (SERVICE, "ProtectSystem=strict", "ProtectSystem=stricter"),
    "bad timer": (TIMER, "OnCalendar=hourly", "OnCalendar=every hour"),
    "cleanup program": (CLEANUP, "/.venv/bin/flask ", "/.venv/bin/flask-missing "),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_verify_reports_broken_units(tmp_path, breakage):
    unit, old, new = BREAKAGES[breakage]

    def edit(name, text):
        if name != unit:
            return text
        assert old in text, f"{name} no longer has {old!r}: update this test"
        return text.replace(old, new)

    returncode, problems = verify(install_units(tmp_path / "units", edit))
    assert problems, f"systemd-analyze verify accepted {unit} with {new!r}"


@pytest.mark.parametrize("unit", [SERVICE, CLEANUP])
def test_services_keep_their_sandbox(tmp_path, unit):
    result = security(install_units(tmp_path / "units") / unit)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


def test_security_review_fails_without_the_sandbox(tmp_path):
    sandbox = ("ProtectSystem", "NoNewPrivileges", "CapabilityBoundingSet", "SystemCallFilter",
               "PrivateDevices")

    def edit(name, text):
        return "\n".join(line for line in text.splitlines() if not line.startswith(sandbox))

    assert security(install_units(tmp_path / "units", edit) / SERVICE).returncode != 0


def test_stop_timeout_outlasts_gunicorns_graceful_timeout():
    """KillMode=mixed SIGKILLs what is left after TimeoutStopSec: that must come after the
    workers' graceful_timeout, or requests still finishing would be cut off."""
    graceful = re.search(r'"GUNICORN_GRACEFUL_TIMEOUT", (\d+)\)',
                         (ROOT / "gunicorn.conf.py").read_text())
    assert graceful, "gunicorn.conf.py's graceful_timeout default moved: update this test"
    unit = settings(SERVICE)
    assert unit["KillMode"] == ["mixed"]
    stop = re.fullmatch(r"(\d+)s?", unit["TimeoutStopSec"][0])
    assert stop and int(stop[1]) > int(graceful[1])


def test_service_and_cleanup_share_their_data_directory():
    """The cleanup job must clean the service's data directory, and both may write to it."""
    directories = set()
    for unit in (SERVICE, CLEANUP):
        found = settings(unit)
        data_dir = [value.split("=", 1)[1] for value in found["Environment"]
                    if value.startswith("UPLOADSVC_DATA_DIR=")]
        assert len(data_dir) == 1, f"{unit} sets no UPLOADSVC_DATA_DIR default"
        assert data_dir[0] in " ".join(found["ReadWritePaths"]).split()
        assert found["EnvironmentFile"] == ["-/etc/uploadsvc.env"]
        directories.add(data_dir[0])
    assert len(directories) == 1


def test_migrations_run_before_gunicorn_not_in_workers():
    unit = settings(SERVICE)
    assert unit["ExecStartPre"] == [f"{INSTALL_DIR}/.venv/bin/flask --app uploadsvc db upgrade"]
    assert unit["ExecStart"] == [f"{INSTALL_DIR}/.venv/bin/gunicorn -c gunicorn.conf.py"]


# -- nginx -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def nginx_config(directory: Path, port: int, upstream_port: int = 3000, edit=None,
                 run: bool = False) -> Path:
    """A minimal main configuration in directory around a copy of deploy/nginx.conf, which
    listens on 127.0.0.1:port (not on every address's port 80: `nginx -t` binds it) and
    proxies to upstream_port. Every file nginx writes (pid, logs, temp bodies) is in
    directory. run: in the foreground, one process, for the test's lifetime."""
    directory.mkdir(exist_ok=True)
    site = (DEPLOY / "nginx.conf").read_text()
    assert "listen 80;" in site and UPSTREAM in site, "deploy/nginx.conf changed: update this test"
    site = site.replace("listen 80;", f"listen {LOCALHOST}:{port};")
    site = site.replace(UPSTREAM, f"http://{LOCALHOST}:{upstream_port}")
    if edit is not None:
        site = edit(site)
    (directory / "site.conf").write_text(site)
    temp_paths = "\n".join(f"    {kind}_temp_path {directory}/{kind};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (directory / "nginx.conf").write_text(f"""\
{"daemon off; master_process off;" if run else ""}
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{}}
http {{
    access_log {directory}/access.log;
{temp_paths}
    include {directory}/site.conf;
}}
""")
    return directory / "nginx.conf"


def nginx_command(config: Path, *args: str) -> list[str]:
    # -e: the log for errors before the configuration is read (else /var/log/nginx).
    return [find("nginx"), "-p", str(config.parent), "-e", str(config.parent / "error.log"),
            "-c", str(config), *args]


def nginx_test(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(nginx_command(config, "-t"), capture_output=True, text=True, timeout=60)


def test_nginx_accepts_the_server_block(tmp_path):
    result = nginx_test(nginx_config(tmp_path / "nginx", free_port()))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize("old, new", [
    ("proxy_request_buffering off;", "proxy_request_buffering of;"),   # bad value
    ("client_max_body_size 0;", "client_max_body_size 0"),             # lost semicolon
    ("proxy_http_version 1.1;", "proxy_http_versions 1.1;"),           # unknown directive
])
def test_nginx_refuses_a_broken_server_block(tmp_path, old, new):
    def edit(site):
        assert old in site
        return site.replace(old, new, 1)

    result = nginx_test(nginx_config(tmp_path / "nginx", free_port(), edit=edit))
    assert result.returncode != 0 and "test failed" in result.stderr


def locations(text: str) -> dict[str, list[str]]:
    """Each `location PATH { ... }` of an nginx text: its lines, stripped, blank ones left out."""
    return {match[1]: [line.strip() for line in match[2].splitlines() if line.strip()]
            for match in re.finditer(r"location (\S+) \{(.*?)\n\s*\}", text, re.DOTALL)}


def directives(lines: list[str]) -> set[str]:
    return {line.split("#", 1)[0].strip() for line in lines} - {""}


def test_nginx_conf_carries_the_documented_blocks():
    """The server block of docs/deployment.md is in deploy/nginx.conf as it is (comments
    included), and the directives of docs/tus.md's tus location too, so they cannot drift."""
    docs = "".join((ROOT / "docs" / name).read_text() for name in ("deployment.md", "tus.md"))
    blocks = re.findall(r"```nginx\n(.*?)```", docs, re.DOTALL)
    server = next(block for block in blocks if block.startswith("server {"))
    deployed = (DEPLOY / "nginx.conf").read_text()
    deployed_lines = {line.strip() for line in deployed.splitlines()}
    missing = [line.strip() for line in server.splitlines()
               if line.strip() and line.strip() not in deployed_lines]
    assert missing == [], "documented lines missing from deploy/nginx.conf"
    tus = locations(next(block for block in blocks if "location /files/" in block))["/files/"]
    assert directives(tus) <= directives(locations(deployed)["/files/"])


class Upstream(http.server.ThreadingHTTPServer):
    """Stands in for gunicorn: answers every request with what reached it, as JSON."""

    daemon_threads = True

    def __init__(self):
        self.seen: list[str] = []
        super().__init__((LOCALHOST, 0), EchoHandler)


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        while received < length:
            block = self.rfile.read(min(length - received, 1 << 16))
            if not block:
                break
            received += len(block)
        self.server.seen.append(self.path)
        body = json.dumps({"method": self.command, "path": self.path, "received": received,
                           "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = answer

    def log_message(self, format, *args):
        pass


@pytest.fixture
def proxy(tmp_path):
    """deploy/nginx.conf running on 127.0.0.1 in front of an Upstream; (port, upstream)."""
    upstream = Upstream()
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    port = free_port()
    config = nginx_config(tmp_path / "nginx", port, upstream.server_address[1], run=True)
    process = subprocess.Popen(nginx_command(config), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((LOCALHOST, port), timeout=1).close()
                break
            except OSError:
                log_path = tmp_path / "nginx" / "error.log"
                log = log_path.read_text(errors="replace") if log_path.exists() else ""
                assert process.poll() is None, f"nginx exited: {log}"
                assert time.monotonic() < deadline, f"nginx did not listen: {log}"
                time.sleep(0.05)
        yield port, upstream
    finally:
        process.terminate()
        process.wait(timeout=10)
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=10)


def request(port: int, method: str, path: str, body: bytes | None = None):
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Host": "uploads.example.com"})
        response = connection.getresponse()
        data = response.read()
        if response.getheader("Content-Type") == "application/json":
            return response.status, json.loads(data)
        return response.status, None
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/", "/page/upload.js", "/vendor/hash-wasm/dist/md5.umd.min.js",
                                  "/api/health", "/files/", "/uploads/report%20(1).pdf"])
def test_nginx_proxies_the_service(proxy, path):
    port, upstream = proxy
    status, echo = request(port, "GET", path)
    assert status == 200 and echo["path"] == path
    assert echo["headers"]["Host"] == "uploads.example.com"
    assert echo["headers"]["X-Forwarded-For"] == LOCALHOST
    assert echo["headers"]["X-Forwarded-Proto"] == "http"


@pytest.mark.parametrize("path", ["/metrics", "/metrics?name=x", "//metrics", "/%6detrics"])
def test_nginx_keeps_metrics_internal(proxy, path):
    port, upstream = proxy
    assert request(port, "GET", path)[0] == 404
    assert upstream.seen == []


# 2 MiB: over nginx's default client_max_body_size (1 MiB), under the /api/ limit (110m).
BIG = b"x" * (2 * 1024 * 1024)


@pytest.mark.parametrize("method, path", [("POST", "/api/upload-chunk"), ("POST", "/files/"),
                                          ("PATCH", "/files/0123abcd")])
def test_nginx_passes_large_upload_bodies(proxy, method, path):
    port, upstream = proxy
    status, echo = request(port, method, path, BIG)
    assert status == 200 and echo["method"] == method and echo["received"] == len(BIG)


def test_nginx_passes_the_public_host_to_tus(proxy):
    port, upstream = proxy
    status, echo = request(port, "POST", "/files/", b"")
    assert echo["headers"]["X-Forwarded-Host"] == "uploads.example.com"


def test_nginx_limits_bodies_outside_the_upload_routes(proxy):
    port, upstream = proxy
    assert request(port, "POST", "/", BIG)[0] == 413
    assert upstream.seen == []

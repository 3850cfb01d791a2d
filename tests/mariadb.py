"""A private MariaDB server for tests: its own data directory and unix socket, started and
stopped by the test session (Debian's mariadb-server, installed by scripts/test-deps.sh)."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pymysql

# Root's PATH has /usr/sbin; other users' may not.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
TABLES = ("chunks", "upload_events", "uploads", "api_keys", "hook_deliveries",
          "upload_event_days", "leases")


def find(command: str) -> str:
    path = shutil.which(command, path=SEARCH_PATH)
    if path is None:
        raise RuntimeError(f"{command} not found: install mariadb-server (make test-deps)")
    return path


class MariaDBServer:
    """mariadbd on a unix socket under base_dir; root connects without a password."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.socket = self.base_dir / "mariadb.sock"
        self.log_path = self.base_dir / "mariadb.log"
        self.tmp_dir = self.base_dir / "tmp"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "MariaDBServer":
        # A temp directory of its own: a server starting removes the #sql files it finds in
        # its temp directory, and would take those of another server being set up beside it
        # (pytest-xdist's workers start theirs at once).
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [find("mariadb-install-db"), "--no-defaults", f"--datadir={self.data_dir}",
             "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, env={**os.environ, "TMPDIR": str(self.tmp_dir)})
        if made.returncode:
            raise RuntimeError(f"mariadb-install-db failed ({made.returncode}): "
                               f"{made.stderr[:3000]}")
        log = open(self.log_path, "ab")
        # --no-defaults: the server's own defaults (latin1 tables), as an untuned server has,
        # so the tests show the service brings its utf8mb4 along. The flush setting only
        # trades this throw-away server's durability for speed.
        self.process = subprocess.Popen(
            [find("mariadbd"), "--no-defaults", f"--datadir={self.data_dir}", "--user=root",
             f"--tmpdir={self.tmp_dir}",
             f"--socket={self.socket}", "--skip-networking", f"--pid-file={self.base_dir}/pid",
             "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
             "--skip-log-bin", "--max-connections=500"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {self.log_path.read_text()[-2000:]}")
            # The socket appears once the server listens (connecting earlier would leak
            # the client's socket on the failure).
            if self.socket.exists() and "ready for connections" in self.log():
                self.connect().close()
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mariadbd did not start: {self.log()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", database=database,
                               autocommit=True)

    def url(self, database: str) -> str:
        # No charset here: the service adds utf8mb4 itself.
        return f"mysql+pymysql://root@localhost/{database}?unix_socket={self.socket}"

    def create_database(self, name: str) -> str:
        """A new empty database with the server's default character set; its URL."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}`")
        return self.url(name)

    def truncate(self, database: str) -> None:
        """Empty the service's tables, keeping the migrated schema. DELETE, not TRUNCATE:
        on the few rows a test leaves it is several times faster (no table rebuild)."""
        with self.connect(database) as connection, connection.cursor() as cursor:
            for table in TABLES:
                cursor.execute(f"DELETE FROM `{table}`")

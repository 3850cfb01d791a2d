"""The flask commands fail with one line on stderr, not a traceback (unless debugging)."""
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result

from uploadsvc import create_app
from uploadsvc.core.extensions import db
from uploadsvc.services import housekeeping, stats

FLASK = str(Path(sys.executable).parent / "flask")
# Port 1 on loopback: nothing listens, so the connection is refused at once.
DOWN_MYSQL = "mysql+pymysql://u:secretpw@127.0.0.1:1/x"
OLDER_REVISION = "40632d2cab89"  # api keys: one migration before the newest


def flask(tmp_path: Path, *args: str, debug: bool = False, database_url: str | None = None,
          **more_env: str) -> subprocess.CompletedProcess:
    """Run `flask --app uploadsvc ARGS` as cron would: its own data directory, no config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPLOADSVC_", "FLASK_"))}
    env["UPLOADSVC_DATA_DIR"] = str(tmp_path / "data")
    env["UPLOADSVC_INSTANCE_PATH"] = str(tmp_path / "instance")
    if database_url:
        env["UPLOADSVC_DATABASE_URL"] = database_url
    env.update(more_env)
    command = [FLASK, "--app", "uploadsvc", *(["--debug"] if debug else []), *args]
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single error line a failed command printed; fails on anything more."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.removesuffix("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [["stats"], ["cleanup"], ["cleanup", "--dry-run"],
                                  ["keys", "list"], ["keys", "create", "backup"]])
def test_unmigrated_database_says_run_db_upgrade(tmp_path, args):
    line = one_line(flask(tmp_path, *args))
    assert "no tables yet" in line and "`flask --app uploadsvc db upgrade`" in line


def test_unmigrated_mariadb_database_says_run_db_upgrade(tmp_path, new_database):
    line = one_line(flask(tmp_path, "stats", database_url=new_database("mariadb", "empty")))
    assert "no tables yet" in line and "db upgrade" in line


def test_missing_mariadb_database_is_named(tmp_path, mariadb):
    line = one_line(flask(tmp_path, "stats", database_url=mariadb.url("never_created")))
    assert "no database named 'never_created'" in line and "db upgrade" in line


def test_schema_behind_the_code_says_run_db_upgrade(tmp_path):
    assert flask(tmp_path, "db", "upgrade", OLDER_REVISION).returncode == 0
    line = one_line(flask(tmp_path, "stats"))
    assert f"out of date (at {OLDER_REVISION}" in line and "db upgrade" in line


def test_missing_table_after_migration_says_run_db_upgrade(tmp_path):
    assert flask(tmp_path, "db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "data" / "uploadsvc.sqlite3") as connection:
        connection.execute("DROP TABLE api_keys")
    connection.close()
    line = one_line(flask(tmp_path, "keys", "list"))
    assert "no such table: api_keys" in line and "db upgrade" in line


@pytest.mark.parametrize("args", [["stats"], ["cleanup"], ["keys", "list"], ["db", "upgrade"]])
def test_unreachable_database_names_host_and_port_not_password(tmp_path, args):
    result = flask(tmp_path, *args, database_url=DOWN_MYSQL)
    line = one_line(result)
    assert "cannot reach the database at 127.0.0.1:1 (Connection refused)" in line
    assert "secretpw" not in result.stderr + result.stdout


@pytest.mark.parametrize("switch", ["--debug", "FLASK_DEBUG=1"])
def test_debug_mode_adds_the_traceback(tmp_path, switch):
    if switch == "--debug":
        result = flask(tmp_path, "stats", debug=True, database_url=DOWN_MYSQL)
    else:
        result = flask(tmp_path, "stats", database_url=DOWN_MYSQL, FLASK_DEBUG="1")
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    last = result.stderr.removesuffix("\n").split("\n")[-1]
    assert last.startswith("error: cannot reach the database at 127.0.0.1:1")
    assert "secretpw" not in result.stderr


def test_migrated_database_still_works(tmp_path):
    assert flask(tmp_path, "db", "upgrade").returncode == 0
    result = flask(tmp_path, "stats")
    assert result.returncode == 0 and result.stderr == ""
    assert "Success rate" in result.stdout
    assert flask(tmp_path, "cleanup").returncode == 0


def test_help_documents_the_debug_switch(tmp_path):
    result = flask(tmp_path, "cleanup", "--help")
    assert result.returncode == 0 and "FLASK_DEBUG=1" in result.stdout
    assert "--debug" in result.stdout


# In-process: failures the services raise, through the real command classes.


@pytest.fixture
def sqlite_app(tmp_path, migrated_database):
    """An app on a migrated SQLite copy; no MariaDB run (the services are stubbed)."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(migrated_database, data / "uploadsvc.sqlite3")
    app = create_app({"TESTING": True, "DATA_DIR": str(data)})
    yield app
    with app.app_context():
        db.engine.dispose()


def invoke(app, monkeypatch, name: str, exc: Exception, *args: str) -> Result:
    """Run a command with the service function NAME (cleanup, collect_stats) raising exc."""

    def fail(*_args, **_kwargs):
        raise exc

    monkeypatch.setattr(stats if name == "collect_stats" else housekeeping, name, fail)
    return app.test_cli_runner().invoke(args=list(args))


def only_line(result: Result) -> str:
    """The single error line of a failed in-process command."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    lines = result.stderr.removesuffix("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cleanup_on_full_disk(sqlite_app, monkeypatch):
    exc = OSError(errno.ENOSPC, "No space left on device", "/srv/uploads/chunks/ab")
    line = only_line(invoke(sqlite_app, monkeypatch, "cleanup", exc, "cleanup"))
    assert "disk is full (No space left on device: /srv/uploads/chunks/ab)" in line
    assert sqlite_app.config["DATA_DIR"] in line


def test_cleanup_on_data_directory_not_writable(sqlite_app, monkeypatch):
    exc = PermissionError(errno.EACCES, "Permission denied", "/srv/uploads/temp/x.part")
    line = only_line(invoke(sqlite_app, monkeypatch, "cleanup", exc, "cleanup"))
    assert "Permission denied: /srv/uploads/temp/x.part" in line and "writable" in line


def test_unexpected_exception_names_its_type(sqlite_app, monkeypatch):
    line = only_line(invoke(sqlite_app, monkeypatch, "collect_stats",
                            RuntimeError("boom\nsecond line"), "stats"))
    assert "unexpected RuntimeError: boom second line" in line
    assert "--debug stats` for the traceback" in line


def test_unexpected_exception_traceback_in_debug_mode(sqlite_app, monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")  # loading the app for a command reads it
    result = invoke(sqlite_app, monkeypatch, "collect_stats", KeyError("uploads"), "stats")
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.removesuffix("\n").split("\n")[-1].startswith(
        "error: unexpected KeyError: 'uploads'")


def test_click_errors_pass_through(sqlite_app):
    result = sqlite_app.test_cli_runner().invoke(args=["keys", "revoke", "12345"])
    assert result.exit_code == 1 and result.stderr == "error: no key 12345\n"
    result = sqlite_app.test_cli_runner().invoke(args=["cleanup", "--older-than", "soon"])
    assert result.exit_code == 2 and "not a duration" in result.stderr

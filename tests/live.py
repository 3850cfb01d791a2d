"""Driving a running server over HTTP from many threads, and looking at what it left."""
import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from uploadsvc.core.database import mysql_url

from .helpers import TestFile
from .servers import BIN, PROJECT


def post_chunk(base: str, test_file: TestFile, index: int, session=None) -> requests.Response:
    fields = {"chunkIndex": str(index), "md5": test_file.md5, "fileName": test_file.name,
              "totalChunks": str(test_file.total)}
    return (session or requests).post(f"{base}/api/upload-chunk", data=fields,
                                      files={"chunk": ("blob", test_file.chunk(index))},
                                      timeout=60)


def complete(base: str, test_file: TestFile) -> requests.Response:
    return requests.post(f"{base}/api/complete-upload", json=test_file.ident(), timeout=120)


def status(base: str, test_file: TestFile) -> requests.Response:
    return requests.get(f"{base}/api/upload-status/{test_file.md5}/{test_file.name}", timeout=30)


def upload(base: str, test_file: TestFile, indices=None) -> None:
    with requests.Session() as session:
        for index in range(test_file.total) if indices is None else indices:
            response = post_chunk(base, test_file, index, session)
            assert response.status_code == 200, response.text


def at_once(calls: list[Callable[[], object]]) -> list[object]:
    """Run every call in its own thread, released together; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def sql(database_url: str, query: str, **params) -> list[tuple]:
    """Rows of one query, on a connection of its own."""
    url = make_url(database_url)
    engine = create_engine(mysql_url(url) if url.get_backend_name() == "mysql" else url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(query), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def files_in(directory: Path) -> list[str]:
    """Every file below directory, relative to it."""
    return sorted(str(Path(root, name).relative_to(directory))
                  for root, _, names in os.walk(directory) for name in names)


def flask_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run `flask --app uploadsvc ARGS` as an operator would, beside the running server."""
    return subprocess.run([str(BIN / "flask"), "--app", "uploadsvc", *args], cwd=PROJECT,
                          env=env, capture_output=True, text=True, timeout=60)


def age(paths, seconds: float) -> None:
    """Set mtimes back, as if the files had been left there that long ago."""
    for path in paths:
        stat = os.stat(path)
        os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))

"""tus-js-client, a real tus client, for one upload of the benchmark (bench/node/tus_upload.mjs).

The bench's own client sends bodies with os.sendfile and spends almost no CPU; this one
streams the file through Node as apps built on tus-js-client do, so the two side by side
show whether the bench's figures hold for real clients.
"""
import json
import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

from .client import HOST, Slice
from .servers import BENCH

NODE_DIR = BENCH / "node"
SCRIPT = NODE_DIR / "tus_upload.mjs"


@dataclass(frozen=True)
class Upload:
    """One finished upload: its seconds from the first request to the last answer, its path
    on the server, and how many connections its requests needed (one when kept open)."""

    seconds: float
    path: str
    connections: int


def available() -> bool:
    """Whether Node and bench/node's tus-js-client are installed (scripts/test-deps.sh)."""
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" /
                                                 "tus-js-client").is_dir()


def upload(port: int, data: Slice, chunk_size: int, name: str) -> Upload:
    """Upload data to the tus server on port in chunk_size PATCHes; the server's MD5 of the
    file, if it gives one, must be the file's."""
    result = subprocess.run(
        ["node", str(SCRIPT), f"http://{HOST}:{port}/files/", data.path, str(data.offset),
         str(data.size), str(chunk_size), name],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode:
        raise RuntimeError(f"tus-js-client failed: {result.stderr[-2000:]}")
    answer = json.loads(result.stdout.splitlines()[-1])
    if answer["md5"] is not None and answer["md5"] != data.md5:
        raise RuntimeError(f"tus-js-client's upload has md5 {answer['md5']} != {data.md5}")
    return Upload(answer["seconds"], urlsplit(answer["url"]).path, answer["connections"])

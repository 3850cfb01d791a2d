"""Runs the upload page's browser flows (tests/browser/upload_page.mjs) in the system Chromium."""
import json
import shutil
import subprocess
from pathlib import Path

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = "/usr/bin/chromium"


def drive(scenario: str, url: str, file: Path, chunk_size: int, timeout: float = 90,
          **options) -> dict:
    """Run one scenario against a live server; returns what the page showed."""
    assert shutil.which("node"), "node is required (make test installs the test dependencies)"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "run scripts/test-deps.sh"
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/test-deps.sh)"
    args = {"scenario": scenario, "url": url, "file": str(file), "chunkSize": chunk_size,
            **options}
    done = subprocess.run(["node", "upload_page.mjs", json.dumps(args)], cwd=BROWSER_DIR,
                          capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {}
    assert done.returncode == 0 and result.get("ok"), (
        f"browser scenario {scenario} failed: {result or done.stdout}\n{done.stderr[-3000:]}")
    return result

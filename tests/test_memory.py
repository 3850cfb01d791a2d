"""Worker memory tuning."""
import subprocess
import sys


def test_malloc_tuning_is_accepted_by_glibc():
    # in a child process, so that this test process keeps its own malloc settings
    code = ("from uploadsvc.core.memory import tune_malloc; "
            "raise SystemExit(0 if tune_malloc() else 1)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


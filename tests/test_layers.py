"""The layers import only downward (import-linter's contracts in setup.cfg); that the
client loads none of the server at run time is tested in test_client.py."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([str(LINT_IMPORTS), str(PROJECT / "setup.cfg"),
                           "--no-cache"], cwd=package_parent, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_tree_keeps_every_import_contract():
    result = lint_imports(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") == 6


@pytest.mark.parametrize("module, line, contract", [
    ("services/uploads.py", "from ..http import api", "http and cli above services"),
    ("storage/local/store.py", "import flask", "the store knows nothing of Flask"),
    ("storage/s3/store.py", "from ..local import layout", "each store backend is a room"),
    ("services/downloads.py", "from ..storage.local import layout", "nothing above the store"),
    ("services/events/settings.py", "from . import deliverer", "no two sibling modules"),
    ("client/files.py", "from ..services import uploads", "the command-line client needs none"),
])
def test_an_import_against_the_layers_breaks_a_contract(tmp_path, module, line, contract):
    shutil.copytree(PROJECT / "uploadsvc", tmp_path / "uploadsvc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "uploadsvc" / module, "a") as source:
        source.write(f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    # An upward import also closes a circle, so the acyclic contract may break beside it.
    others = [row for row in broken if not row.startswith(("no two sibling", contract))]
    assert any(row.startswith(contract) for row in broken) and not others, result.stdout


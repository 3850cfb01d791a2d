"""The README's configuration table names every setting the service reads."""
from pathlib import Path

from uploadsvc.core.config import DefaultConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_configuration_table():
    table = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    named = " ".join(line.split("|")[1] for line in table)
    keys = [key for key in vars(DefaultConfig) if key.isupper()]
    assert [key for key in keys if f"`UPLOADSVC_{key}`" not in named] == []

"""The migrations build exactly the schema the models describe, on both databases."""
import os
import subprocess
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import LargeBinary, create_engine

from uploadsvc.core.extensions import db

from .live import BIN, PROJECT


def same_blob(context, inspected_column, metadata_column, inspected_type, metadata_type):
    """MySQL keeps LargeBinary(128) as TINYBLOB: the same column, not a change."""
    if isinstance(metadata_type, LargeBinary) and "BLOB" in str(inspected_type).upper():
        return False
    return None  # alembic's own comparison


def test_migrations_match_the_models(app):
    with app.app_context():
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": same_blob})
            differences = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert differences == []


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_hosts_that_start_at_once_migrate_one_at_a_time(backend, new_database, tmp_path):
    """Every host's `make run` runs `flask db upgrade`: three at once on an empty database
    all succeed (one migrates, the others find it done) and leave the schema whole."""
    url = new_database(backend, f"migrate_{backend}_{uuid.uuid4().hex[:8]}")
    upgrades = [subprocess.Popen(
        [str(BIN / "flask"), "--app", "uploadsvc", "db", "upgrade"], cwd=PROJECT,
        env={**os.environ, "UPLOADSVC_DATA_DIR": str(tmp_path / f"host{n}"),
             "UPLOADSVC_DATABASE_URL": url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for n in range(3)]
    outputs = [process.communicate(timeout=120)[0] for process in upgrades]
    assert [process.returncode for process in upgrades] == [0, 0, 0], outputs
    ran = [output.count("Running upgrade") for output in outputs]
    assert sorted(ran)[:2] == [0, 0] and max(ran) > 0, outputs  # one host did all of it
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": same_blob})
            assert compare_metadata(context, db.metadata) == []
    finally:
        engine.dispose()

"""The migrations build exactly the schema the models describe, on both databases."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import LargeBinary

from uploadsvc.core.extensions import db


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

"""Fixtures: an app on its own data directory and migrated SQLite file, its client and CLI
runner, and (once per session) uploadsvc under real gunicorn."""
import shutil

import flask_migrate
import pytest

from uploadsvc import create_app
from uploadsvc.extensions import db

from .contract import CheckedClient
from .servers import GunicornServer


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """A SQLite file migrated once with the real migrations, copied for every test."""
    template = tmp_path_factory.mktemp("template")
    app = create_app({"TESTING": True, "DATA_DIR": str(template)})
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    return template / "uploadsvc.sqlite3"


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def app(data_dir, migrated_database):
    shutil.copy(migrated_database, data_dir / "uploadsvc.sqlite3")
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir)})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client whose every answer is checked against the OpenAPI document."""
    app.test_client_class = CheckedClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """uploadsvc under gunicorn with 4 workers on 127.0.0.1, for the whole session."""
    server = GunicornServer(tmp_path_factory.mktemp("live") / "data", workers=4).start()
    yield server
    server.stop()

"""The Azure and GCS emulators of a test session, their standard variables set, and apps
on each object store: fixtures that tests/conftest.py takes in."""
import uuid

import pytest

from uploadsvc import create_app
from uploadsvc.core.extensions import db
from uploadsvc.storage import StorageError, open_store

from .azurite import Azurite
from .contract import TestClient
from .gcsemulator import GCSEmulator
from .seaweedfs import BUCKET as SEAWEEDFS_BUCKET


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """A private Azurite (Azure Blob Storage on 127.0.0.1) for the whole session, its one
    container made."""
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azure_env(azurite):
    """The Azure SDK's standard connection string pointed at the session's Azurite."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in azurite.environment().items():
            patch.setenv(name, value)
        yield azurite


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """A private GCS emulator on 127.0.0.1 for the whole session, its one bucket made."""
    server = GCSEmulator(tmp_path_factory.mktemp("gcs")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_env(gcs_emulator):
    """google-cloud-storage's standard variables pointed at the session's emulator."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in gcs_emulator.environment().items():
            patch.setenv(name, value)
        yield gcs_emulator


@pytest.fixture
def s3_app(s3_env, data_dir, migrated_database, app_config):
    """An app on the object store (the session's SeaweedFS, under a prefix of its own) with a
    SQLite copy of the migrated database: what the store's own tests need of an app."""
    yield from app_on(f"s3://{SEAWEEDFS_BUCKET}/app-{uuid.uuid4().hex[:12]}", data_dir,
                       migrated_database, app_config)


@pytest.fixture
def azure_app(azure_env, data_dir, migrated_database, app_config):
    """An app on Azure Blob Storage (the session's Azurite, under a prefix of its own) with
    a SQLite copy of the migrated database: what the store's own tests need of an app."""
    yield from app_on(azure_env.url(), data_dir, migrated_database, app_config)


@pytest.fixture
def gcs_app(gcs_env, data_dir, migrated_database, app_config):
    """An app on Google Cloud Storage (the session's emulator, under a prefix of its own)
    with a SQLite copy of the migrated database."""
    yield from app_on(gcs_env.url(), data_dir, migrated_database, app_config)


def app_on(storage_url: str, data_dir, migrated_database, app_config):
    database = data_dir / "uploadsvc.sqlite3"
    database.write_bytes(migrated_database.read_bytes())
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir),
                      "DATABASE_URL": f"sqlite:///{database}", "STORAGE_URL": storage_url,
                      **app_config})
    app.test_client_class = TestClient
    yield app
    with app.app_context():
        db.engine.dispose()


def start_failure(tmp_path, url, monkeypatch, **env) -> str:
    """The one line open_store fails with at start (the CLI prints it as `error: ...`,
    test_storage_s3.py runs that)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StorageError) as failed:
        open_store(str(tmp_path / "data"), storage_url=url, timeout=1)
    assert "\n" not in str(failed.value)
    return str(failed.value)

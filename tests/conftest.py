"""Fixtures: an app on its own data directory and a fresh migrated database (SQLite and
MariaDB: every test using the database runs on both), its client and CLI runner, and (once
per session) uploadsvc under real gunicorn."""
import shutil
import signal
import uuid

import flask_migrate
import pytest

from uploadsvc import create_app
from uploadsvc.core.extensions import db

from .contract import TestClient
from .hookreceiver import HookReceiver
from .hooks_helpers import SECRET as HOOK_SECRET
from .mariadb import MariaDBServer
from .seaweedfs import BUCKET as SEAWEEDFS_BUCKET
from .seaweedfs import SeaweedFS
from .servers import GunicornServer
from .stores import (  # noqa: F401 - fixtures, found here by pytest
    azure_app,
    azure_env,
    azurite,
    gcs_app,
    gcs_emulator,
    gcs_env,
    s3_app,
)

DATABASES = ["sqlite", "mariadb"]
MARIADB_DATABASE = "uploadsvc"


def pytest_itemcollected(item):
    """Under pytest-xdist (`make test`), the tests of a module that shares a server of its
    own among its tests (a module-scoped fixture: a cluster, a browser) run in one worker,
    so that server starts once (once per parameter: a server on SQLite and one on MariaDB
    may go to two workers); every other test goes wherever a worker is free. Marked as each
    test is collected, before pytest-xdist reads the groups off the marks."""
    shared = sorted(name for name, chain in item._fixtureinfo.name2fixturedefs.items()
                    if chain[-1].scope == "module")
    if shared:
        params = getattr(item, "callspec", None)
        ids = [str(params.params[name]) for name in shared if params and name in params.params]
        item.add_marker(pytest.mark.xdist_group("-".join([item.module.__name__, *ids])))


# The longest runs of one worker, longest first (docs/testing.md, "How long it takes"): an
# xdist group, or a module whose tests go wherever a worker is free. They start first, so
# that the run does not end with one worker finishing one of them alone.
LONGEST_FIRST = [
    "containers",  # builds four images, then runs them: 3 to 4.5 minutes
    "tests.test_bench",
    "tests.multihost.test_uploads",
    "tests.test_crashes-sqlite",
    "tests.multihost.test_stores-azure",
    "tests.multihost.test_faults",
    "tests.multihost.test_clocks",
    "tests.test_hooks_live-mariadb",
    "tests.test_hooks_live-sqlite",
    "tests.multihost.test_stores-gcs",
    "tests.test_crashes-mariadb",
    "tests.test_concurrency-mariadb",
    "tests.test_client",
    "tests.test_upload_page",
    "tests.test_cli_errors",
]


def pytest_collection_modifyitems(items):
    """The longest runs first (LONGEST_FIRST), then the other groups, then the many short
    tests, which fill in after."""

    def rank(item) -> int:
        group = item.get_closest_marker("xdist_group")
        name = group.args[0] if group else item.module.__name__
        if name in LONGEST_FIRST:
            return LONGEST_FIRST.index(name)
        if item.module.__name__ in LONGEST_FIRST:
            return LONGEST_FIRST.index(item.module.__name__)
        return len(LONGEST_FIRST) + (0 if group else 1)

    items.sort(key=rank)


def pytest_configure(config):
    """pytest-xdist sends the workers the largest groups (by number of tests) first, unless
    told to keep the order pytest_collection_modifyitems gives: the longest first.

    A shell that starts the tests in the background (`make test &`, nohup, cron) has them
    ignore Ctrl-C, and every process they start would inherit that: the clients that tests
    interrupt with SIGINT would not stop. Take Ctrl-C back, as an interactive run has it."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line("markers", "stores(*names): the storage backends this test runs "
                            "on, instead of its module's STORAGES")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A private SeaweedFS (S3 on 127.0.0.1) for the whole session, its one bucket made."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_env(seaweedfs):
    """boto3's standard variables pointed at the session's SeaweedFS, for the whole session
    (the service reads them as it would in production)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in seaweedfs.environment().items():
            patch.setenv(name, value)
        yield seaweedfs


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


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """A private MariaDB server for the whole session."""
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_database(mariadb, tmp_path_factory):
    """A MariaDB database migrated once with the real migrations; its URL."""
    url = mariadb.create_database(MARIADB_DATABASE)
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path_factory.mktemp("migrate")),
                      "DATABASE_URL": url})
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    return url


@pytest.fixture(scope="session")
def new_database(request, tmp_path_factory):
    """make(backend, name): a new empty database ("sqlite" or "mariadb"); its URL."""

    def make(backend: str, name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp(name)}/uploadsvc.sqlite3"
        return request.getfixturevalue("mariadb").create_database(name)

    return make


@pytest.fixture
def database_url(request, data_dir, migrated_database):
    """A fresh migrated database, on each backend in turn (pytest_generate_tests): a copied
    SQLite file in the data directory, or the session's MariaDB database emptied (migrating
    takes longer)."""
    if request.param == "sqlite":
        path = data_dir / "uploadsvc.sqlite3"
        shutil.copy(migrated_database, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("mariadb_database")
    request.getfixturevalue("mariadb").truncate(MARIADB_DATABASE)
    return url


# The object store's tests run on the database several hosts share: what SQLite would add
# there is already checked on the local backend, which runs on both databases.
STORE_DATABASES = {"local": DATABASES, "s3": ["mariadb"], "azure": ["mariadb"],
                   "gcs": ["mariadb"]}


def pytest_generate_tests(metafunc):
    """Every test using the database runs on each of DATABASES, unless it names its own; a
    module that sets STORAGES runs its app tests on each of those backends, each on the
    databases STORE_DATABASES gives it; a test marked stores(...) runs on those backends
    instead (where another backend adds something the module's others do not)."""
    database = _ours(metafunc, "database_url") and not _marked(metafunc, "database_url")
    marked = metafunc.definition.get_closest_marker("stores")
    storages = marked.args if marked else getattr(metafunc.module, "STORAGES", None)
    if storages and "storage" in metafunc.fixturenames:
        if not database:
            metafunc.parametrize("storage", storages, indirect=True)
            return
        pairs = [(name, storage) for name in DATABASES for storage in storages
                 if name in STORE_DATABASES[storage]]
        metafunc.parametrize(["database_url", "storage"], pairs, indirect=True,
                             ids=[f"{name}-{storage}" for name, storage in pairs])
    elif database:
        metafunc.parametrize("database_url", DATABASES, indirect=True)


def _ours(metafunc, argname: str) -> bool:
    """Whether the test uses this file's fixture argname (a module may define its own)."""
    defs = metafunc._arg2fixturedefs.get(argname)
    return bool(defs) and defs[-1].func.__module__ == __name__


def _marked(metafunc, argname: str) -> bool:
    """Whether the test parametrizes argname itself (a mark takes precedence)."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if argname in names:
            return True
    return False


@pytest.fixture
def storage(request):
    """Where the app keeps its bytes: "local" (the data directory), "s3" (the session's
    SeaweedFS), "azure" (its Azurite) or "gcs" (its GCS emulator), each under a prefix of
    this test's own; "local" unless the module says."""
    return getattr(request, "param", "local")


@pytest.fixture
def app_config() -> dict:
    """More configuration for the app fixture; a test module overrides it."""
    return {}


@pytest.fixture
def receiver():
    """A webhook and pre-create hook receiver on loopback, checking signatures."""
    with HookReceiver(secret=HOOK_SECRET) as running:
        yield running


@pytest.fixture
def app(request, data_dir, database_url, storage, app_config):
    config = {"TESTING": True, "DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
              **app_config}
    if storage == "s3":
        request.getfixturevalue("s3_env")
        config["STORAGE_URL"] = f"s3://{SEAWEEDFS_BUCKET}/app-{uuid.uuid4().hex[:12]}"
    elif storage == "azure":
        config["STORAGE_URL"] = request.getfixturevalue("azure_env").url()
    elif storage == "gcs":
        config["STORAGE_URL"] = request.getfixturevalue("gcs_env").url()
    app = create_app(config)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client whose every answer is checked against the OpenAPI document, and read
    and closed as a server does (so call_on_close work has run when a request returns)."""
    app.test_client_class = TestClient
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

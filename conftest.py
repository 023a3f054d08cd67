"""Shared test helpers: real service processes on 127.0.0.1, always stopped by the test that starts them."""

import io
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from throwaway_postgres import PostgresServer, free_port, postgres_bin

MODULE = Path(__file__).with_name("sms_responder.py")


class Service:
    """A service process (python sms_responder.py, gunicorn, ...) with its output in a log file."""

    def __init__(self, argv, env, cwd, port):
        self.argv, self.env, self.cwd, self.port = argv, env, Path(cwd), port
        self.log_path = self.cwd / f"service-{port or uuid.uuid4().hex[:8]}.log"
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        """Start the process and wait until /health answers (any status): bounded by timeout."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        if self.port is None:  # a worker: nothing to wait for
            return self
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop(signal.SIGKILL)
                    raise RuntimeError(f"service did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signal the whole process group and wait; SIGKILL if it does not exit in time. The exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        try:
            os.killpg(self.process.pid, sig)
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=timeout)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- Databases: every behavioural test runs on SQLite and on PostgreSQL -----------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: about the SQLite file itself; not run on PostgreSQL")
    config.addinivalue_line("markers", "postgresql_only: about PostgreSQL itself; not run on SQLite")
    config.addinivalue_line("markers", "slow: takes tens of seconds; started first, so that a parallel run"
                                       " (pytest-xdist) does not end waiting for it alone")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: otherwise in file order


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        backends = ["sqlite", "postgresql"]
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = ["sqlite"]
        elif metafunc.definition.get_closest_marker("postgresql_only"):
            backends = ["postgresql"]
        metafunc.parametrize("backend", backends, scope="function")


def start_postgres():
    """A started PostgresServer, or skip (fail where .ci/run requires PostgreSQL) if there is none."""
    required = os.environ.get("SMS_RESPONDER_REQUIRE_POSTGRES") == "1"
    problem = None
    bin_folder = postgres_bin()
    if bin_folder is None:
        problem = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            problem = "psycopg is not installed (pip install -r requirements-postgres.txt)"
    if problem:
        (pytest.fail if required else pytest.skip)(problem)
    # Durability settings off: these tests are about the service, not about PostgreSQL's disk.
    return PostgresServer(bin_folder, durable=False).initialise().start()


@pytest.fixture(scope="session")
def postgres_server():
    server = start_postgres()
    yield server
    server.stop()
    server.remove()


@pytest.fixture
def database_url(backend, tmp_path, request):
    """DATABASE_URL for the test: a SQLite file, or a schema of its own on the PostgreSQL server."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sms.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    server.execute(f"CREATE SCHEMA {schema}")
    yield server.url(schema)
    drop_schema(server, schema)


def drop_schema(server, schema, tries=5):
    """DROP SCHEMA, tried again when PostgreSQL aborts it as one side of a deadlock: a stopped service's
    backend may still be finishing its last statement in the schema (seen once in a full run)."""
    import psycopg
    for attempt in range(1, tries + 1):
        try:
            server.execute(f"DROP SCHEMA {schema} CASCADE")
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == tries:
                raise
            time.sleep(0.2 * attempt)


@pytest.fixture
def database(tmp_path):
    """The SQLite file of sqlite_only tests."""
    return tmp_path / "sms.db"


@pytest.fixture
def rules_path_for(tmp_path):
    """rules_path_for(toml): the path of a rules file holding `toml`, for RULES_FILE."""
    def write(toml):
        path = tmp_path / "rules.toml"
        path.write_text(toml)
        return str(path)
    return write


@pytest.fixture
def fake_api():
    """Plivo's Send Message API on 127.0.0.1 (fake_plivo_api), with the suite's credentials; stopped after the test."""
    from fake_plivo_api import FakePlivoAPI
    from test_sms_responder import AUTH_ID, AUTH_TOKEN

    with FakePlivoAPI(AUTH_ID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def make_app(database_url):
    """Build apps on the test's database from settings given by field name; closed after the test."""
    from sms_responder import create_app
    from test_sms_responder import AUTH_TOKEN, OUR_NUMBER  # the suite's test credentials

    apps = []

    def build(**overrides):
        settings = {"plivo_auth_token": AUTH_TOKEN, "plivo_number": OUR_NUMBER, "database_url": database_url,
                    **overrides}
        app = create_app({}, **settings)  # {}: never the developer's own environment or .env
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()


class Row(tuple):
    """A row like sqlite3.Row: by index, by column name, dict(row), tuple(row)."""

    def __new__(cls, names, values):
        row = super().__new__(cls, values)
        row.names = names
        return row

    def keys(self):
        return self.names

    def __getitem__(self, key):
        return super().__getitem__(self.names.index(key) if isinstance(key, str) else key)


class PostgresTestConnection:
    """A psycopg connection with sqlite3's interface: ? placeholders, Row rows, commit, `with`."""

    def __init__(self, url):
        import psycopg
        self.connection = psycopg.connect(url, row_factory=lambda cursor: lambda values: Row(
            [column.name for column in cursor.description], values))

    def execute(self, sql, params=()):
        return self.connection.execute(sql.replace("?", "%s"), params)

    def commit(self):
        self.connection.commit()

    def close(self):
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.connection.commit()


def connect(database_url):
    """A test's own connection to the service's database, either kind, with ? placeholders."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        connection.row_factory = sqlite3.Row
        return connection
    return PostgresTestConnection(database_url)


PREVIOUS_RELEASE = Path(__file__).parent / "testdata" / "schema_v3.sql"


def load_previous_release(database_url):
    """Make the test's database the one testdata/schema_v3.sql holds: what the release before reply
    rules wrote."""
    load_release(database_url, PREVIOUS_RELEASE, 3)


def load_release(database_url, dump, version):
    """Make the test's database the one a dump in testdata/ holds, written by the release at schema
    `version`. SQLite runs the dump; PostgreSQL gets that release's schema and the dump's rows."""
    import sms_responder
    text = dump.read_text()
    connection = connect(database_url)
    try:
        if database_url.startswith("sqlite:///"):
            connection.executescript(text)
            return
        with connection:
            connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            connection.execute(f"INSERT INTO schema_version VALUES ({version})")
            for step in sms_responder.MIGRATIONS[:version]:
                for entry in step:
                    for statement in [entry] if isinstance(entry, str) else entry["postgresql"]:
                        connection.execute(statement.format(**sms_responder.POSTGRES_TYPES))
            for line in text.splitlines():
                if line.startswith("INSERT INTO"):
                    connection.connection.execute(line)  # no parameters: a ? in the text stays a ?
    finally:
        connection.close()


def query(database_url, sql, *params):
    """All rows of one query, on a short-lived connection of its own."""
    connection = connect(database_url)
    try:
        return [tuple(row) for row in connection.execute(sql, params).fetchall()]
    finally:
        connection.close()


@pytest.fixture
def logs():
    """The service's log lines during the test, formatted as LOG_FORMAT=text writes them."""
    import sms_responder
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(sms_responder.TextFormatter())
    logger = logging.getLogger("sms_responder")
    logger.addHandler(handler)
    yield stream.getvalue
    logger.removeHandler(handler)


@pytest.fixture
def db(app, database_url):
    """An independent connection to the app's database, for asserting what was stored."""
    app.store.ping()  # creates the schema
    connection = connect(database_url)
    yield connection
    connection.close()


# -- Service processes --------------------------------------------------------------------------

@pytest.fixture
def services(tmp_path):
    """services(env, *args, kind="stdlib", "gunicorn" or "worker") starts one; all are stopped after the test.

    gunicorn serves `app`: the lazy sms_responder:application, or the factory form "sms_responder:create_app()"."""
    started = []

    def start(env, *args, kind="stdlib", workers=3, port=None, program=MODULE, app="sms_responder:application"):
        port = None if kind == "worker" else port or free_port()
        # cwd is tmp_path, so a developer's own .env never leaks into a test.
        full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(MODULE.parent), **env}
        if kind == "stdlib":
            argv = [sys.executable, str(MODULE), "--port", str(port), *args]
        elif kind == "worker":
            argv = [sys.executable, str(program), "worker", *args]
        else:
            argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                    *args, app]
        service = Service(argv, full_env, tmp_path, port)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


# -- Figures: numbers the reliability tests measured, printed at the end of every run ----------

FIGURES = {}


@pytest.fixture
def figures(request):
    """A dict a test fills with what it measured; printed in the terminal summary. It travels with the
    test's report, so that figures measured in pytest-xdist's worker processes reach the summary too."""
    measured = {}
    yield measured
    request.node.user_properties.append(("figures", measured))


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        for name, measured in report.user_properties:
            if name == "figures":
                FIGURES.update(measured)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("measured")
        for name, values in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{key}={value}" for key, value in values.items()))


# -- The browser tests' Chromium: one per test process, shared by every browser test file -------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (nothing is downloaded); skip (fail under .ci/run)
    without it. Playwright's sync API runs one instance per thread, so every browser test file uses this one."""
    if not Path(CHROMIUM).exists():
        (pytest.fail if os.environ.get("SMS_RESPONDER_REQUIRE_POSTGRES") == "1" else pytest.skip)(
            "Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield chromium
        chromium.close()

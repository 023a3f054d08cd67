"""What only the PostgreSQL backend has: a database that restarts, several hosts creating the
schema at once, an optional driver, a password in the URL, text that PostgreSQL cannot hold.

The behavioural tests of the other modules already run on both backends; these start their
own PostgreSQL servers on 127.0.0.1 where they need to stop one.
"""

import concurrent.futures
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
import webtest

import sms_responder
from conftest import query, start_postgres
from test_sms_responder import AUTH_TOKEN, OUR_NUMBER, WEBHOOK_PATH, inbound, post, reply_of, signed

@pytest.fixture
def own_postgres():
    """A PostgreSQL server of the test's own, which the test may stop and start."""
    server = start_postgres()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):  # the test may have stopped it already
        server.stop()
    server.remove()


@pytest.fixture
def schema_url(postgres_server):
    """A fresh, empty schema on the shared server."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    postgres_server.execute(f"CREATE SCHEMA {schema}")
    yield postgres_server.url(schema)
    postgres_server.execute(f"DROP SCHEMA {schema} CASCADE")


def service_env(url, **extra):
    return {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": url, **extra}


def timed_status(url, data=None, headers=None):
    """(HTTP status, seconds taken) of one request."""
    started = time.monotonic()
    try:
        request = urllib.request.Request(url, data=data, headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.monotonic() - started


def signed_webhook(service, form):
    url = f"{service.url}{WEBHOOK_PATH}"
    return url, urllib.parse.urlencode(form).encode(), {**signed(form, url=url),
                                                        "Content-Type": sms_responder.FORM_CONTENT_TYPE}


def test_database_restart_answers_503_then_recovers_without_a_restart(services, own_postgres, figures):
    service = services(service_env(own_postgres.url()))
    assert timed_status(f"{service.url}/health")[0] == 200
    own_postgres.stop()
    health, health_seconds = timed_status(f"{service.url}/health")
    pending = inbound(Text="while down")
    webhook, webhook_seconds = timed_status(*signed_webhook(service, pending))
    assert (health, webhook) == (503, 500)
    assert health_seconds < 5 and webhook_seconds < 5
    own_postgres.start()
    deadline = time.monotonic() + 30
    while timed_status(f"{service.url}/health")[0] != 200:
        assert time.monotonic() < deadline, "health did not recover"
        time.sleep(0.2)
    assert timed_status(*signed_webhook(service, pending))[0] == 200  # Plivo's retry is processed
    assert "not-the-password" not in service.log()
    assert service.process.poll() is None  # the same process throughout
    figures["postgres restart"] = {"health_while_down": health, "health_seconds": round(health_seconds, 2),
                                   "webhook_while_down": webhook, "webhook_seconds": round(webhook_seconds, 2)}


def test_without_psycopg_start_up_names_it_and_exits_2(tmp_path, schema_url):
    hidden = tmp_path / "hide"
    hidden.mkdir()
    for name in ("psycopg", "psycopg_pool"):  # shadow the installed packages, as if they were not installed
        (hidden / f"{name}.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\")\n")
    result = subprocess.run([sys.executable, str(sms_responder.__file__)], cwd=tmp_path, timeout=60,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(hidden), **service_env(
                                schema_url.replace("not-the-password", "s3cret-pw"))},
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "sms_responder: DATABASE_URL: PostgreSQL needs psycopg: pip install -r requirements-postgres.txt"]
    assert "s3cret-pw" not in result.stderr


def test_password_never_appears_in_logs_or_errors(services, own_postgres):
    url = own_postgres.url(password="s3cret-pw")
    service = services(service_env(url, LOG_LEVEL="DEBUG"))
    own_postgres.stop()
    timed_status(f"{service.url}/health")
    timed_status(*signed_webhook(service, inbound()))
    service.stop()
    assert "sms:***@127.0.0.1" in service.log()
    assert "s3cret-pw" not in service.log()


def test_hosts_creating_the_schema_at_once(services, schema_url):
    def start(_):
        return services(service_env(schema_url), kind="gunicorn", workers=2)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        hosts = list(pool.map(start, range(4)))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # every worker's first request creates or checks it
        statuses = list(pool.map(lambda host: timed_status(f"{host.url}/health")[0], hosts * 4))
    assert statuses == [200] * 16
    assert query(schema_url, "SELECT version FROM schema_version") == [(sms_responder.SCHEMA_VERSION,)]
    for host in hosts:
        assert "Traceback" not in host.log()


def test_older_schema_is_migrated_in_place(schema_url):
    import psycopg  # installed wherever the schema_url fixture runs

    connection = psycopg.connect(schema_url, autocommit=True)
    for statement in sms_responder.MIGRATIONS[0]:
        connection.execute(statement.format(**sms_responder.POSTGRES_TYPES))
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version VALUES (1)")
    connection.execute("INSERT INTO messages (message_uuid, from_number, to_number, text, type, media_urls,"
                       " received_at) VALUES ('old', '1', '2', 'kept', 'sms', '[]', now())")
    connection.close()
    app = sms_responder.create_app({}, plivo_auth_token=AUTH_TOKEN, plivo_number=OUR_NUMBER,
                                   database_url=schema_url, reply_mode="api")
    post(webtest.TestApp(app), inbound())
    app.store.close()
    assert query(schema_url, "SELECT version FROM schema_version") == [(sms_responder.SCHEMA_VERSION,)]
    assert query(schema_url, "SELECT text FROM messages WHERE message_uuid = 'old'") == [("kept",)]
    assert query(schema_url, "SELECT count(*) FROM outbox") == [(1,)]


def test_nul_characters_are_stored_as_replacement_characters(schema_url):
    app = sms_responder.create_app({}, plivo_auth_token=AUTH_TOKEN, plivo_number=OUR_NUMBER,
                                   database_url=schema_url)
    form = inbound(Text="a\x00b")
    assert reply_of(post(webtest.TestApp(app), form)) == "You said: ab"
    app.store.close()
    assert query(schema_url, "SELECT text FROM messages") == [("a\ufffdb",)]


def test_postgres_scheme_is_accepted(postgres_server):
    url = postgres_server.url().replace("postgresql://", "postgres://")
    app = sms_responder.create_app({}, plivo_auth_token=AUTH_TOKEN, plivo_number=OUR_NUMBER, database_url=url)
    assert isinstance(app.store, sms_responder.PostgresStore)
    app.store.ping()
    app.store.close()

"""Hardening (issue 27): what a hostile client tried, and what the service does about it now.

The contract's sections "What every route does with a hostile request" (under Routes) and
"Hardening: tokens with scopes, logins that cost little, a record of who did what", one class per
finding of the issue. What one process decides is checked in process (webtest, or a raw WSGI
environ where webtest and wsgiref's validator refuse to build the hostile request); what the
server itself does (reading a body, the Server header, peak memory, the metrics folder at
start-up) through real server processes over raw sockets. Storage is checked on SQLite and
PostgreSQL (the `backend` fixture).
"""

import concurrent.futures
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from wsgiref.util import setup_testing_defaults

import argon2
import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sms_responder
from sms_responder_surfaces import api, inbox, people
from conftest import MODULE, connect, load_release, query
from test_metrics import METRICS_TOKEN, metrics_folder, scraped
from test_reliability import signed_body
from test_sms_responder import (AUTH_ID, AUTH_TOKEN, OUR_NUMBER, SENDER, WEBHOOK_PATH, inbound, post,
                                signed, signed_v2)

API = api.API_MESSAGES_PATH
INBOX = inbox.INBOX_PATH
STATUS_PATH = sms_responder.STATUS_PATH
FORM = sms_responder.FORM_CONTENT_TYPE
PASSWORD = "correct horse battery staple"
NOT_OURS = "14155550999"
RELEASE_8 = Path(__file__).parent / "testdata" / "schema_v8.sql"
#: The tokens testdata/schema_v8.sql was made with (only their digests are in it).
OLD_TOKENS = {"orders": "smsr_orders-token-made-before-scopes-existed-0000",
              "bookings": "smsr_bookings-token-made-before-scopes-existed-00"}


# -- Helpers ---------------------------------------------------------------------------------------

@pytest.fixture
def env(database_url, fake_api):
    """The settings of a service or command run on the test's database."""
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
            "DATABASE_URL": database_url, "PLIVO_AUTH_ID": AUTH_ID, "PLIVO_API_URL": fake_api.url, "TZ": "UTC"}


@pytest.fixture
def app(make_app, fake_api):
    application = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url)
    application.store.ping()
    return application


def run(env, cwd, *args, stdin=""):
    """`python sms_responder.py ARGS` as a program."""
    return subprocess.run([sys.executable, str(MODULE), *args], env=env, cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=60)


def call(app, environ):
    """Call the app with a raw environ (values webtest and wsgiref's validator refuse to build);
    (status, headers, body)."""
    environ = {"SCRIPT_NAME": "", "QUERY_STRING": "", **environ}
    setup_testing_defaults(environ)
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return int(captured["status"][:3]), captured["headers"], body


class Unreadable:
    """A request body that fails the test if any of it is read."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def exchange(port, request, timeout=5):
    """Send raw bytes to a server on 127.0.0.1 and read its answer until it closes the connection:
    (status, {lower-case name: [values]}, body). Our side stays open, so a server still waiting
    for a body makes this time out."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[1]), headers, body


def raw_request(method, path, headers, body=b""):
    lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body  # UTF-8, as a client would send other scripts


def make_token(app, name="orders", scopes=("send",)):
    with app.store.transaction() as tx:
        return api.add_token(tx, name, time.time(), scopes)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def send(client, token, body, status=202):
    return client.post(API, json.dumps(body).encode(), headers={"Content-Type": "application/json", **bearer(token)},
                       status=status)


def add_person(app, name="alice", password=PASSWORD):
    with app.store.transaction() as tx:
        people.add_person(tx, name, password, time.time())


def log_in(browser, name="alice", password=PASSWORD, status=303):
    return browser.post(f"{INBOX}/login", {"name": name, "password": password}, status=status)


def csrf(browser):
    return re.search(r'name="csrf" value="([^"]+)"', browser.get(INBOX).text)[1]


def stored_time(database_url, moment):
    return moment.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else moment


def json_lines(text):
    """The JSON log lines of a program's output (other lines, such as a command's own messages, skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


class HashSpy:
    """Stands in for argon2's PasswordHasher: counts password checks, and how many ran at once."""

    def __init__(self, hasher, pause=0.0):
        self.hasher, self.pause = hasher, pause
        self.checked, self.running, self.most = [], 0, 0
        self.lock = threading.Lock()

    def verify(self, hashed, password):
        with self.lock:
            self.checked.append(hashed)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.pause)
            return self.hasher.verify(hashed, password)
        finally:
            with self.lock:
                self.running -= 1

    def __getattr__(self, name):
        return getattr(self.hasher, name)


@pytest.fixture
def hash_spy(monkeypatch):
    spy = HashSpy(people.passwords())
    monkeypatch.setattr(people, "passwords", lambda: spy)
    return spy


# -- 1. Content-Length: a plain decimal number, or 400 before anything is read ---------------------

NOT_PLAIN = ["-1", "+5", "5.0", "0x10", " 5 5", "5_0", "5, 5", "\u0665"]  # the last: an Arabic-Indic five


class TestContentLength:
    """Finding 1: `Content-Length: -1` passed the body limit, and the stdlib server then read until the
    client closed. A length that is not a plain decimal number is refused before any of the body is read."""

    @pytest.mark.parametrize("length", NOT_PLAIN)
    @pytest.mark.parametrize("path,content_type", [
        (WEBHOOK_PATH, FORM), (STATUS_PATH, FORM), (f"{INBOX}/login", FORM), (API, "application/json")])
    def test_every_post_route_answers_400_without_reading_or_storing(self, app, database_url, path, content_type,
                                                                     length):
        token = make_token(app)
        status, headers, body = call(app, {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_TYPE": content_type, "CONTENT_LENGTH": length,
            "HTTP_AUTHORIZATION": f"Bearer {token}", "wsgi.input": Unreadable()})
        assert status == 400, body
        assert b"Content-Length" in body
        if path == API:
            assert headers["Content-Type"] == "application/json" and json.loads(body)["error"]
        for table in ("messages", "delivery_reports", "login_failures", "outbox"):
            assert query(database_url, f"SELECT count(*) FROM {table}") == [(0,)], table

    @pytest.mark.parametrize("path,content_type", [
        (WEBHOOK_PATH, FORM), (f"{INBOX}/login", FORM), (API, "application/json")])
    def test_over_max_body_bytes_is_413_before_reading_as_before(self, make_app, fake_api, path, content_type):
        app = make_app(max_body_bytes=1000, plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url)
        token = make_token(app)
        status, _, _ = call(app, {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_TYPE": content_type, "CONTENT_LENGTH": "1001",
            "HTTP_AUTHORIZATION": f"Bearer {token}", "wsgi.input": Unreadable()})
        assert status == 413

    def test_leading_zeros_are_a_plain_number(self, app, database_url):
        form = inbound()
        body = urllib.parse.urlencode(form).encode()
        status, _, _ = call(app, {
            "REQUEST_METHOD": "POST", "PATH_INFO": WEBHOOK_PATH, "CONTENT_TYPE": FORM, "HTTP_HOST": "localhost:80",
            "CONTENT_LENGTH": f"000{len(body)}", "wsgi.input": io.BytesIO(body),
            **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in signed(form).items()}})
        assert status == 200
        assert query(database_url, "SELECT count(*) FROM messages") == [(1,)]

    @pytest.mark.parametrize("length", NOT_PLAIN)
    def test_the_stdlib_server_answers_at_once_without_waiting_for_a_body(self, services, env, length):
        service = services(env)
        for path in (WEBHOOK_PATH, f"{INBOX}/login", API):
            started = time.monotonic()
            status, headers, _ = exchange(service.port, raw_request("POST", path, {
                "Host": f"127.0.0.1:{service.port}", "Content-Type": FORM, "Content-Length": length}))
            assert status == 400 and time.monotonic() - started < 5
        assert exchange(service.port, raw_request("GET", "/health", {"Host": "x"}))[0] == 200

    def test_gunicorn_refuses_them_itself_as_before(self, services, env):
        service = services(env, kind="gunicorn", workers=1)
        statuses = {length: exchange(service.port, raw_request("POST", WEBHOOK_PATH, {
            "Host": "x", "Content-Type": FORM, "Content-Length": length}))[0] for length in NOT_PLAIN}
        assert statuses == {length: 400 for length in NOT_PLAIN}


# -- 2. Host and X-Forwarded-Host: a host, or 403 (never 500) --------------------------------------

NOT_A_HOST = ["[", "a b", "x:y:z", "a\x01b", "ex\u00e4mple.com", "[::1", "a]b", "[:::]", "[v1.x]", "a:99999",
              "a:", "a/b", "a@b", ""]


class TestHostHeaders:
    """Finding 2: `Host: [` made the SDK's URL parsing raise (urlsplit: "Invalid IPv6 URL"), a 500 that
    moved the `failed` counter. A malformed host header is refused at the boundary, before any URL is made."""

    def webhook(self, app, path=WEBHOOK_PATH, **headers):
        form = inbound() if path == WEBHOOK_PATH else {"MessageUUID": str(uuid.uuid4()), "Status": "delivered"}
        body = urllib.parse.urlencode(form).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_TYPE": FORM, "HTTP_HOST": "localhost:80",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   **{f"HTTP_{name.upper().replace('-', '_')}": value
                      for name, value in signed(form, f"http://localhost:80{path}").items()}}
        environ.update(headers)
        return call(app, environ)

    @pytest.mark.parametrize("path", [WEBHOOK_PATH, STATUS_PATH])
    @pytest.mark.parametrize("header", ["Host", "X-Forwarded-Host"])
    @pytest.mark.parametrize("value", [value for value in NOT_A_HOST if value], ids=repr)
    def test_a_malformed_host_is_403_naming_the_header(self, app, database_url, logs, path, header, value):
        status, _, _ = self.webhook(app, path, **{f"HTTP_{header.upper().replace('-', '_')}": value})
        assert status == 403
        line = [line for line in logs().splitlines() if " webhook " in line][-1]
        assert "status=403" in line and f"header={header}" in line
        assert query(database_url, "SELECT count(*) FROM messages") == [(0,)]
        assert query(database_url, "SELECT count(*) FROM delivery_reports") == [(0,)]

    @pytest.mark.parametrize("value", ["http://[", "a://b]", "//[", "ht tp"], ids=repr)
    def test_a_malformed_forwarded_proto_is_403_too(self, app, logs, value):
        assert self.webhook(app, HTTP_X_FORWARDED_PROTO=value)[0] == 403
        assert "header=X-Forwarded-Proto" in logs()

    @pytest.mark.parametrize("host", ["[::1]:3000", "[2001:db8::1]", "127.0.0.1:3000", "sms.example.com",
                                      "my_host.internal:8080"])
    def test_addresses_and_names_with_a_port_are_hosts(self, make_app, host):
        client = webtest.TestApp(make_app())
        form = inbound()
        url = f"http://{host}{WEBHOOK_PATH}"
        post(client, form, headers={**signed(form, url), "X-Forwarded-Host": host})
        form = inbound()
        post(client, form, headers={**signed_v2(url), "Host": host}, extra_environ={"HTTP_HOST": host})

    def test_a_public_url_does_not_make_a_malformed_host_acceptable(self, make_app):
        app = make_app(public_url="https://sms.example.com")
        form = inbound()
        body = urllib.parse.urlencode(form).encode()
        status, _, _ = call(app, {
            "REQUEST_METHOD": "POST", "PATH_INFO": WEBHOOK_PATH, "CONTENT_TYPE": FORM, "HTTP_HOST": "[",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in
               signed(form, f"https://sms.example.com{WEBHOOK_PATH}").items()}})
        assert status == 403

    # The app is built once per test, not per example: each example posts a message of its own.
    # Each backend runs on an instance of its own (differing executors); the test keeps nothing on self.
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.differing_executors])
    @given(value=st.text(st.characters(max_codepoint=0xFF), max_size=40),
           header=st.sampled_from(["HTTP_HOST", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO"]))
    def test_no_host_header_makes_a_500(self, app, value, header):
        assert self.webhook(app, **{header: value})[0] in (200, 403)

    def test_on_the_real_server_the_failed_counter_does_not_move(self, services, env, tmp_path):
        service = services({**env, "METRICS_TOKEN": METRICS_TOKEN,
                            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "counts")})
        for header, value in (("Host", "["), ("Host", "x:y:z"), ("X-Forwarded-Host", "[")):
            body, headers = signed_body(service.url, inbound())
            headers = {"Host": f"127.0.0.1:{service.port}", **headers, header: value, "Content-Length": len(body)}
            assert exchange(service.port, raw_request("POST", WEBHOOK_PATH, headers, body))[0] == 403
        samples = scraped(service)
        assert samples[("sms_webhooks_total", '{outcome="failed"}')] == 0
        assert samples[("sms_webhooks_total", '{outcome="rejected"}')] == 3
        assert "Traceback" not in service.log() and service.log().count("header=Host") == 2


# -- 3. Token scopes -------------------------------------------------------------------------------

class TestTokenScopes:
    """Finding 3: any token could read every conversation and cancel anyone's messages. Tokens now have
    scopes: `send` (its own messages), `read` (every message, conversations), `verify`."""

    @pytest.fixture
    def client(self, app):
        return webtest.TestApp(app)

    def test_add_defaults_to_send_takes_scopes_and_list_shows_them(self, env, tmp_path, app, client, database_url):
        sender = run(env, tmp_path, "tokens", "add", "orders")
        assert sender.returncode == 0, sender.stderr
        reader = run(env, tmp_path, "tokens", "add", "reports", "--scope", "read,send")
        run(env, tmp_path, "tokens", "add", "signup", "--scope", "verify")
        listed = {line.split()[0]: line for line in run(env, tmp_path, "tokens", "list").stdout.splitlines()}
        assert " send " in listed["orders"] and " send,read " in listed["reports"]
        assert " verify " in listed["signup"]
        assert query(database_url, "SELECT name, scopes FROM api_tokens ORDER BY name") == [
            ("orders", "send"), ("reports", "send,read"), ("signup", "verify")]
        send(client, sender.stdout.strip(), {"to": SENDER, "text": "hi"})
        client.get(f"{API}?number={SENDER}", headers=bearer(reader.stdout.strip()), status=200)

    @pytest.mark.parametrize("scopes", ["admin", "send,admin", "", ",", "Send"])
    def test_an_unknown_scope_exits_2_with_one_line(self, env, tmp_path, app, database_url, scopes):
        result = run(env, tmp_path, "tokens", "add", "orders", "--scope", scopes)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert "send, read or verify" in result.stderr and result.stdout == ""
        assert query(database_url, "SELECT count(*) FROM api_tokens") == [(0,)]

    @pytest.mark.parametrize("scopes,method,path,missing", [
        (("read",), "POST", API, "send"),
        (("verify",), "POST", API, "send"),
        (("send",), "GET", f"{API}?number={SENDER}", "read"),
        (("verify",), "GET", f"{API}?number={SENDER}", "read"),
        (("verify",), "GET", f"{API}/any-id", "read"),
        (("read",), "DELETE", f"{API}/any-id", "send"),
        (("verify",), "DELETE", f"{API}/any-id", "send"),
    ])
    def test_a_route_outside_the_tokens_scopes_is_403_naming_the_scope(self, app, client, database_url, scopes,
                                                                       method, path, missing):
        token = make_token(app, "limited", scopes)
        body = json.dumps({"to": SENDER, "text": "hi"}).encode() if method == "POST" else None
        extra = {"body": body, "content_type": "application/json"} if body else {}
        answer = client.request(path, method=method, headers=bearer(token), status=403, **extra)
        assert answer.json["scope"] == missing and answer.json["error"]
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]

    def test_send_sees_and_cancels_only_its_own_messages_another_is_404_like_an_unknown_id(self, app, client,
                                                                                         database_url):
        orders, bookings = make_token(app, "orders"), make_token(app, "bookings")
        mine = send(client, orders, {"to": SENDER, "text": "yours"}).json["id"]
        theirs = send(client, bookings, {"to": SENDER, "text": "theirs"}).json["id"]
        unknown = [client.request(f"{API}/no-such-id", method=method, headers=bearer(orders), status=404)
                   for method in ("GET", "DELETE")]
        hidden = [client.request(f"{API}/{theirs}", method=method, headers=bearer(orders), status=404)
                  for method in ("GET", "DELETE")]
        assert [answer.body for answer in hidden] == [answer.body for answer in unknown]
        assert client.get(f"{API}/{mine}", headers=bearer(orders)).json["text"] == "yours"
        client.delete(f"{API}/{mine}", headers=bearer(orders), status=204)
        assert query(database_url, "SELECT text, status FROM outbox ORDER BY text") == [
            ("theirs", "queued"), ("yours", "cancelled")]

    def test_read_sees_every_message_and_conversation_but_cancels_none_of_anothers(self, app, client, database_url):
        orders, auditor = make_token(app, "orders"), make_token(app, "auditor", ("send", "read"))
        theirs = send(client, orders, {"to": SENDER, "text": "theirs"}).json["id"]
        with app.store.transaction() as tx:  # one a person queued from the inbox
            api.queue_outbound(tx, api.OutboundRequest(SENDER, "by hand", OUR_NUMBER), "alice",
                                         "inbox", time.time())
        assert client.get(f"{API}/{theirs}", headers=bearer(auditor)).json["sent_by"] == "orders"
        texts = [item["text"] for item in client.get(f"{API}?number={SENDER}", headers=bearer(auditor)).json["messages"]]
        assert sorted(texts) == ["by hand", "theirs"]
        client.delete(f"{API}/{theirs}", headers=bearer(auditor), status=404)
        assert query(database_url, "SELECT status FROM outbox") == [("queued",), ("queued",)]

    def test_tokens_made_before_scopes_keep_send_and_read(self, env, tmp_path, database_url, make_app, fake_api):
        load_release(database_url, RELEASE_8, 8)
        client = webtest.TestApp(make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url))
        orders = OLD_TOKENS["orders"]
        assert len(client.get(f"{API}?number={SENDER}", headers=bearer(orders)).json["messages"]) == 2
        assert client.get(f"{API}/bookings-message-0001", headers=bearer(orders)).json["sent_by"] == "bookings"
        client.delete(f"{API}/bookings-message-0001", headers=bearer(orders), status=404)
        client.delete(f"{API}/orders-message-0001", headers=bearer(orders), status=204)
        send(client, OLD_TOKENS["bookings"], {"to": SENDER, "text": "still sends"})
        version = "PRAGMA user_version" if database_url.startswith("sqlite") else "SELECT version FROM schema_version"
        assert query(database_url, version) == [(sms_responder.SCHEMA_VERSION,)]
        assert query(database_url, "SELECT name, scopes FROM api_tokens ORDER BY name") == [
            ("bookings", "send,read"), ("orders", "send,read")]
        assert all(" send,read " in line for line in run(env, tmp_path, "tokens", "list").stdout.splitlines())

    def test_the_openapi_document_names_the_scopes_and_the_403s(self, client):
        document = client.get(api.OPENAPI_PATH).json
        assert all(scope in document["components"]["securitySchemes"]["bearer"]["description"]
                   for scope in ("send", "read", "verify"))
        for path, method, scope in ((API, "post", "send"), (API, "get", "read"), (f"{API}/{{id}}", "get", "read"),
                                    (f"{API}/{{id}}", "delete", "send")):
            operation = document["paths"][path][method]
            assert "403" in operation["responses"], (path, method)
            assert scope in operation["description"], (path, method)
        schema = document["components"]["schemas"]["ScopeMissing"]
        assert schema["required"] == ["error", "scope"] and schema["properties"]["scope"]["enum"] == [
            "send", "read", "verify"]


# -- 4. Logins that cost little --------------------------------------------------------------------

class TestLogins:
    """Finding 4: six logins at once took the server from 125 to 453 MB, and a 60,000-character name was
    stored as a failed try. Invalid names and over-long passwords are refused before any hashing, at
    most two password checks run at once per process, and old failed tries are deleted."""

    @pytest.mark.parametrize("name,password", [
        ("a b", PASSWORD), ("x" * 65, PASSWORD), ("x" * 60000, PASSWORD), ("alice\n", PASSWORD),
        ("\u00e5lice", PASSWORD), ("", PASSWORD), ("alice", "p" * 1025)],
        ids=["space", "65 characters", "60,000 characters", "newline", "non-ASCII", "empty", "long password"])
    def test_invalid_names_and_long_passwords_get_the_same_401_unhashed_and_unstored(self, app, database_url,
                                                                                      hash_spy, name, password):
        add_person(app)
        browser = webtest.TestApp(app)
        refused = log_in(browser, name, password, status=401)
        assert hash_spy.checked == []
        assert query(database_url, "SELECT count(*) FROM login_failures") == [(0,)]
        wrong = log_in(browser, "alice", "wrong password!!", status=401)
        assert len(hash_spy.checked) == 1  # a wrong password is checked, and counted
        assert refused.text == wrong.text

    def test_a_password_of_1024_characters_is_checked(self, app, hash_spy):
        add_person(app)
        log_in(webtest.TestApp(app), "alice", "p" * 1024, status=401)
        assert len(hash_spy.checked) == 1

    def test_at_most_two_password_checks_run_at_once(self, app, monkeypatch):
        spy = HashSpy(people.passwords(), pause=0.2)
        monkeypatch.setattr(people, "passwords", lambda: spy)
        add_person(app)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: log_in(webtest.TestApp(app), f"person{i}", PASSWORD, 401).status_int,
                                     range(8)))
        assert statuses == [401] * 8 and len(spy.checked) == 8
        assert spy.most == 2

    def test_twenty_logins_at_once_keep_peak_memory_within_150_mb_of_idle(self, services, tmp_path, figures):
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
               "DATABASE_URL": f"sqlite:///{tmp_path / 'sms.db'}"}
        service = services(env)
        assert exchange(service.port, raw_request("GET", f"{INBOX}/login", {"Host": "x"}))[0] == 200
        idle = peak_memory(service.process.pid)

        def attempt(i):
            connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=120)
            connection.request("POST", f"{INBOX}/login", f"name=person{i:02d}&password=wrong+password+{i}",
                               {"Content-Type": FORM})
            return connection.getresponse().status
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(attempt, range(20)))
        seconds = time.monotonic() - started
        peak = peak_memory(service.process.pid)
        assert statuses == [401] * 20
        figures["twenty logins at once, stdlib server"] = {
            "idle_peak_mb": round(idle / 1e6), "peak_mb": round(peak / 1e6), "growth_mb": round((peak - idle) / 1e6),
            "seconds": round(seconds, 2)}
        assert peak - idle < 150e6

    def test_failed_tries_older_than_the_lockout_window_are_deleted_whatever_the_name(self, app, database_url):
        old = stored_time(database_url, datetime.now(UTC) - timedelta(minutes=16))
        recent = stored_time(database_url, datetime.now(UTC) - timedelta(minutes=5))
        connection = connect(database_url)
        with connection:
            for name, at in (("mallory", old), ("mallory", old), ("bob", old), ("carol", recent)):
                connection.execute("INSERT INTO login_failures (name, failed_at) VALUES (?, ?)", (name, at))
        connection.close()
        add_person(app)
        log_in(webtest.TestApp(app), "alice", "wrong password!!", status=401)
        assert sorted(name for name, in query(database_url, "SELECT name FROM login_failures")) == ["alice", "carol"]

    @pytest.mark.sqlite_only
    def test_the_old_tries_are_found_through_an_index(self, app, database_url):
        plan = query(database_url, "EXPLAIN QUERY PLAN DELETE FROM login_failures WHERE failed_at < ?", "2026")
        assert "USING INDEX login_failures_by_time" in " ".join(row[3] for row in plan)

    def test_a_hash_of_older_parameters_is_rehashed_at_the_next_successful_login(self, app, database_url):
        old = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        connection = connect(database_url)
        with connection:
            connection.execute("INSERT INTO users (name, password, created_at) VALUES (?, ?, ?)",
                               ("alice", old, stored_time(database_url, datetime.now(UTC))))
        connection.close()
        browser = webtest.TestApp(app)
        log_in(browser, "alice", "wrong password!!", status=401)
        assert query(database_url, "SELECT password FROM users") == [(old,)]  # only a login that succeeds
        log_in(browser)
        (new,), = query(database_url, "SELECT password FROM users")
        assert new != old and not people.passwords().check_needs_rehash(new)
        assert new.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        log_in(webtest.TestApp(app))  # the new hash holds the same password
        assert query(database_url, "SELECT password FROM users") == [(new,)]


def peak_memory(pid):
    """A process's peak resident memory so far (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)[1]) * 1024


# -- 5. Opt-out and opt-in by hand: only for our numbers -------------------------------------------

class TestConsentByHand:
    """Finding 5: an opt-out by hand for a pair whose second number is not ours was stored (303)."""

    @pytest.fixture
    def browser(self, app):
        add_person(app)
        browser = webtest.TestApp(app)
        log_in(browser)
        return browser

    @pytest.mark.parametrize("action", ["opt-out", "opt-in"])
    def test_a_number_not_ours_is_404_and_nothing_is_stored(self, browser, database_url, action):
        path = f"{INBOX}/conversations/{SENDER}/{NOT_OURS}/{action}"
        browser.get(path, status=404)
        browser.post(path, {"csrf": csrf(browser)}, status=404)
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]
        assert query(database_url, "SELECT count(*) FROM consent_changes") == [(0,)]

    def test_our_own_numbers_still_work(self, browser, database_url):
        browser.post(f"{INBOX}/conversations/{SENDER}/{OUR_NUMBER}/opt-out", {"csrf": csrf(browser)}, status=303)
        assert query(database_url, "SELECT number_key, to_key FROM opt_outs") == [(SENDER, OUR_NUMBER)]

    def test_a_conversation_with_a_number_no_longer_ours_can_still_be_read(self, browser):
        browser.get(f"{INBOX}/conversations/{SENDER}/{NOT_OURS}", status=200)


# -- 6. A record of who did what -------------------------------------------------------------------

class TestWhoDidWhat:
    """Finding 6: the inbox wrote no log line at all. One INFO line each for logins, logouts, opt-outs
    and opt-ins by hand, people and tokens added or removed; never a password, a session or a token."""

    def test_logins_ok_failed_and_locked(self, make_app, capsys):
        app = make_app(log_format="json")
        add_person(app)
        browser = webtest.TestApp(app)
        capsys.readouterr()
        token = log_in(browser).headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
        for _ in range(5):
            log_in(webtest.TestApp(app), "alice", "wrong password!!", status=401)
        log_in(webtest.TestApp(app), status=429)
        log_in(webtest.TestApp(app), "a b", status=401)
        output = capsys.readouterr().err
        logins = [entry for entry in json_lines(output) if entry["message"] == "login"]
        assert [(entry["level"], entry["outcome"], entry["name"]) for entry in logins] == [
            ("INFO", "ok", "alice"), *[("INFO", "failed", "alice")] * 5, ("INFO", "locked", "alice"),
            ("INFO", "failed", "a b")]
        assert PASSWORD not in output and "wrong password" not in output and token not in output

    def test_the_name_as_typed_cut_to_64_characters_and_escaped(self, app, logs):
        forged = "mallory\u2028\x85\r\n2026-12-05 10:00:00,000 INFO login outcome=ok name=alice"
        browser = webtest.TestApp(app)
        log_in(browser, forged, status=401)
        log_in(browser, "y" * 100, status=401)
        written = logs()
        assert written.splitlines() == written.split("\n")[:-1]  # no line break but the lines' own
        logins = [line for line in written.splitlines() if " INFO login " in line]
        assert len(logins) == 2 and logins[0].index("outcome=failed") < logins[0].index("name=")
        assert "mallory" in logins[0] and "\u2028" not in written and "\x85" not in written
        assert f"name={'y' * 64}" in logins[1] and "y" * 65 not in logins[1]

    def test_logout_and_consent_by_hand(self, make_app, capsys):
        app = make_app(log_format="json")
        add_person(app)
        browser = webtest.TestApp(app)
        log_in(browser)
        for action in ("opt-out", "opt-in"):
            browser.post(f"{INBOX}/conversations/{SENDER}/{OUR_NUMBER}/{action}", {"csrf": csrf(browser)}, status=303)
        session = browser.cookies["sms_inbox"]
        browser.post(f"{INBOX}/logout", {"csrf": csrf(browser)}, status=303)
        output = capsys.readouterr().err
        entries = {entry["message"]: entry for entry in json_lines(output)}
        assert entries["opt-out by hand"]["by"] == "alice" and entries["opt-out by hand"]["customer"] == "***0123"
        assert entries["opt-in by hand"]["by"] == "alice" and entries["opt-in by hand"]["number"] == OUR_NUMBER
        assert entries["logout"]["name"] == "alice" and entries["logout"]["level"] == "INFO"
        assert SENDER not in output and session not in output

    def test_people_added_given_a_new_password_and_removed(self, env, tmp_path, app):
        env = {**env, "LOG_FORMAT": "json"}
        results = [run(env, tmp_path, "users", "add", "alice", stdin=PASSWORD + "\n"),
                   run(env, tmp_path, "users", "password", "alice", stdin="a brand new password\n"),
                   run(env, tmp_path, "users", "remove", "alice")]
        entries = [entry for result in results for entry in json_lines(result.stderr)]
        assert [(entry["level"], entry["message"], entry["name"]) for entry in entries] == [
            ("INFO", "person added", "alice"), ("INFO", "password changed", "alice"),
            ("INFO", "person removed", "alice")]
        assert not any(PASSWORD in result.stderr or "brand new" in result.stderr for result in results)

    def test_tokens_added_and_removed_with_their_scopes(self, env, tmp_path, app):
        added = run(env, tmp_path, "tokens", "add", "orders", "--scope", "send,read")
        removed = run(env, tmp_path, "tokens", "remove", "orders")
        token = added.stdout.strip()
        lines = [line for line in added.stderr.splitlines() + removed.stderr.splitlines() if " INFO " in line]
        assert len(lines) == 2
        assert "token added" in lines[0] and "name=orders" in lines[0] and "scopes=send,read" in lines[0]
        assert "token removed" in lines[1] and "name=orders" in lines[1] and "scopes=send,read" in lines[1]
        assert token not in added.stderr + removed.stderr


# -- 6, continued: what every answer carries, and what start-up says -------------------------------

class TestHeadersAndStartUp:
    """Finding 6, continued: no `nosniff`, no `no-store` on API answers, no HSTS; the stdlib server's
    `Server` header showed the Python version; V2 without PUBLIC_URL was accepted silently."""

    PATHS = [("GET", "/health"), ("GET", "/nowhere"), ("POST", WEBHOOK_PATH), ("GET", api.OPENAPI_PATH),
             ("GET", f"{API}/x"), ("GET", "/api/nowhere"), ("GET", f"{INBOX}/login"), ("GET", INBOX),
             ("GET", f"{INBOX}/updates"), ("GET", f"{INBOX}/static/inbox.css")]

    @pytest.mark.parametrize("public_url", ["", "https://sms.example.com"])
    @pytest.mark.parametrize("method,path", PATHS)
    def test_nosniff_everywhere_no_store_and_hsts_on_api_and_inbox(self, make_app, public_url, method, path):
        client = webtest.TestApp(make_app(public_url=public_url))
        answer = client.request(path, method=method, status="*")
        private = path.startswith(("/api/", INBOX))
        assert answer.headers.getall("X-Content-Type-Options") == ["nosniff"]
        assert answer.headers.getall("Cache-Control") == (["no-store"] if private else [])
        hsts = ["max-age=31536000"] if private and public_url else []
        assert answer.headers.getall("Strict-Transport-Security") == hsts

    def test_the_stdlib_servers_server_header_names_no_python_version(self, services, env):
        service = services(env)
        answers = [exchange(service.port, raw_request("GET", "/health", {"Host": "x"})),
                   exchange(service.port, b"GET / extra HTTP/1.1\r\nHost: x\r\n\r\n")]  # http.server's own answer
        assert [status for status, _, _ in answers] == [200, 400]
        for _, headers, _ in answers:
            assert len(headers["server"]) == 1
            assert "python" not in headers["server"][0].lower() and not re.search(r"\d", headers["server"][0])

    def test_v2_without_public_url_warns_once_at_start_up(self, make_app, capsys):
        make_app()
        warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line and "V2" in line]
        assert len(warnings) == 1 and "PUBLIC_URL" in warnings[0] and "body" in warnings[0]
        for settings_ in ({"public_url": "https://sms.example.com"}, {"signature_versions": "v3"},
                          {"validate_signature": False}):
            make_app(**settings_)
            assert "V2" not in capsys.readouterr().err, settings_

    def test_the_real_server_logs_it_at_start(self, services, env):
        service = services(env)
        service.stop()
        assert len([line for line in service.log().splitlines() if "WARNING" in line and "V2" in line]) == 1


# -- 7. The metrics folder the service picks itself ------------------------------------------------

class TestMetricsFolder:
    """Finding 7: the folder was made in /tmp under a name anyone can work out, and one someone else
    made first was used as is. It is now private to its owner; a symbolic link or another user's folder
    stops start-up with one line naming it."""

    @pytest.fixture
    def metered(self, env):
        return {**env, "METRICS_TOKEN": METRICS_TOKEN}

    @pytest.fixture
    def folder(self, metered, tmp_path):
        """The folder a service of this test would pick (removed afterwards, whatever it became)."""
        path = Path(metrics_folder(SimpleNamespace(cwd=tmp_path, env=metered)))
        assert path.name.startswith("sms_responder-metrics-") and not os.path.lexists(path)
        yield path
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)

    def start(self, env, tmp_path):
        return subprocess.run([sys.executable, str(MODULE), "--port", "0"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=20)

    def test_the_folder_is_created_readable_by_its_owner_only(self, services, metered, folder):
        service = services(metered)
        assert service.process.poll() is None
        assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700

    def test_a_symbolic_link_stops_start_up_with_one_line(self, metered, tmp_path, folder):
        target = tmp_path / "elsewhere"
        target.mkdir()
        folder.symlink_to(target)
        result = self.start(metered, tmp_path)
        assert (result.returncode, len(result.stderr.splitlines())) == (2, 1), result.stderr
        assert str(folder) in result.stderr and "symbolic link" in result.stderr
        assert list(target.iterdir()) == []

    @pytest.mark.skipif(os.getuid() != 0, reason="only root can give a folder to another user")
    def test_another_users_folder_stops_start_up_with_one_line(self, metered, tmp_path, folder):
        folder.mkdir(mode=0o700)
        os.chown(folder, 12345, 12345)
        result = self.start(metered, tmp_path)
        assert (result.returncode, len(result.stderr.splitlines())) == (2, 1), result.stderr
        assert str(folder) in result.stderr and "12345" in result.stderr
        assert list(folder.iterdir()) == []

    def test_a_folder_others_may_write_to_stops_start_up(self, metered, tmp_path, folder):
        folder.mkdir()
        folder.chmod(0o777)
        result = self.start(metered, tmp_path)
        assert (result.returncode, len(result.stderr.splitlines())) == (2, 1), result.stderr
        assert str(folder) in result.stderr and list(folder.iterdir()) == []

    def test_a_folder_of_the_previous_release_is_made_private(self, services, metered, folder):
        folder.mkdir()
        folder.chmod(0o755)  # what os.makedirs made under the usual umask
        services(metered)
        assert folder.stat().st_mode & 0o777 == 0o700

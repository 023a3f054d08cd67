"""Verification codes (the contract's section "Verification codes"), on SQLite and PostgreSQL.

Each state and error runs through a real service (`python sms_responder.py`) and a real `worker`
sending to the fake Plivo API on 127.0.0.1; the code a test types is the one the fake API received.
What must hold across processes (racing checks on gunicorn -w 3, or on two hosts sharing one
PostgreSQL; the prefix limit) runs on several processes. The error matrix of a request's body,
which one process decides, runs in process (webtest) against the same database.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import webtest

import sms_responder
from conftest import MODULE, connect, query
from sms_responder_surfaces import api, inbox, people, verification
from test_inbox import PASSWORD, log_in
from test_metrics import METRICS_TOKEN, scraped
from test_operations import Recording
from test_outbound import bearer
from test_sms_responder import AUTH_ID, AUTH_TOKEN, OTHER_NUMBER, OUR_NUMBER, SENDER, inbound, post

NUMBERS = f"{OUR_NUMBER},{OTHER_NUMBER}"
VERIFICATIONS = verification.VERIFICATIONS_PATH
CODE_IN_TEXT = re.compile(r"\b([0-9]{4,10})\b")  # the only run of 4 or more digits in the texts sent


# -- Helpers -----------------------------------------------------------------------------------

@pytest.fixture
def env(database_url, fake_api):
    """The settings of every process of a test: the test's database, sending through the fake API."""
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": NUMBERS,
            "DATABASE_URL": database_url, "PLIVO_AUTH_ID": AUTH_ID, "PLIVO_API_URL": fake_api.url, "TZ": "UTC"}


def settings_of(env):
    """env as create_app's keyword settings."""
    return {name.lower(): value for name, value in env.items() if name not in ("PATH", "TZ")}


@pytest.fixture
def app(make_app, env):
    """An app on the test's database with the test's settings: for tokens and in-process requests."""
    application = make_app(**settings_of(env))
    application.store.ping()
    return application


def make_token(app, name="signup", scopes=("verify",)):
    with app.store.transaction() as tx:
        return api.add_token(tx, name, time.time(), scopes)


@pytest.fixture
def token(app):
    return make_token(app)


@pytest.fixture
def deployment(services, env):
    """deployment(**settings): a started service and worker on the test's database, with these settings."""
    def start(**settings):
        settings_env = {**env, **{name.upper(): str(value) for name, value in settings.items()}}
        service = services(settings_env)
        services(settings_env, kind="worker")
        return service
    return start


def call(service, method, path, token, body=None):
    """(status, headers, JSON or None) of one request to a real service."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    headers = {**(bearer(token) if token else {}), **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(f"{service.url}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            status, header_map, raw = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        status, header_map, raw = error.code, error.headers, error.read()
    return status, header_map, json.loads(raw) if raw else None


def ask(service, token, to=SENDER, **fields):
    """POST /api/verifications for `to`; (status, headers, answer)."""
    return call(service, "POST", VERIFICATIONS, token, {"to": to, **fields})


def check(service, token, verification_id, code):
    return call(service, "POST", f"{VERIFICATIONS}/{verification_id}/check", token, {"code": code})


def sent_codes(fake_api, to=SENDER, count=1, timeout=10):
    """The codes of the first `count` SMS the fake Plivo API accepted for `to`, waiting for the worker."""
    deadline = time.monotonic() + timeout
    while True:
        texts = [payload["text"] for payload in list(fake_api.accepted) if payload["dst"] == to]
        if len(texts) >= count:
            return [CODE_IN_TEXT.search(text)[1] for text in texts[:count]]
        assert time.monotonic() < deadline, f"{len(texts)} of {count} SMS sent to {to}"
        time.sleep(0.05)


def wrong(code):
    """A code of the same length that is not this one."""
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def stored(database_url, moment):
    return moment.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else moment


def backdate(database_url, column, seconds, where="1 = 1"):
    """Move a time of the stored verifications `seconds` into the past, as if they had waited."""
    connection = connect(database_url)
    with connection:
        for row_id, value in connection.execute(f"SELECT id, {column} FROM verifications WHERE {where}").fetchall():
            moment = datetime.fromisoformat(value) if isinstance(value, str) else value
            connection.execute(f"UPDATE verifications SET {column} = ? WHERE id = ?",
                               (stored(database_url, moment - timedelta(seconds=seconds)), row_id))
    connection.close()


def concurrently(count, work):
    """work(i) for i in range(count), all at once; the results in order."""
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


def drain(app):
    worker = sms_responder.OutboxWorker(app)
    while worker.send_next():
        pass


# -- POST /api/verifications: a code sent, and sent again ----------------------------------------

class TestRequest:
    def test_201_with_the_verification_its_location_and_a_code_sent(self, deployment, app, token, fake_api,
                                                                   database_url):
        service = deployment()
        before = datetime.now(UTC)
        status, headers, answer = ask(service, token, "+1 415 555 0123")
        assert status == 201 and set(answer) == {"id", "to", "status", "expires_at", "sends", "checks_left"}
        assert (answer["to"], answer["status"], answer["sends"], answer["checks_left"]) == (SENDER, "pending", 1, 5)
        assert headers["Location"] == f"{VERIFICATIONS}/{answer['id']}"
        expires = datetime.fromisoformat(answer["expires_at"])
        assert expires.utcoffset() == timedelta(0) and abs(expires - before - timedelta(seconds=600)) < timedelta(
            seconds=5)
        [code] = sent_codes(fake_api)
        assert len(code) == 6
        assert fake_api.accepted[0] == {
            "src": OUR_NUMBER, "dst": SENDER, "type": "sms",
            "text": f"Your verification code is {code}. It expires in 10 minutes. Do not share it."}
        assert query(database_url, "SELECT kind, text, text_source, sent_by, sent_via FROM outbox") == [
            ("outbound", "Your verification code is ******. It expires in 10 minutes. Do not share it.",
             f"verification:{answer['id']}", "signup", "api")]

    def test_a_resend_while_pending_is_200_with_the_same_code_and_neither_more_checks_nor_more_time(
            self, deployment, token, fake_api):
        service = deployment()
        _, _, first = ask(service, token)
        [code] = sent_codes(fake_api)
        assert check(service, token, first["id"], wrong(code))[2]["checks_left"] == 4
        status, headers, again = ask(service, token, f"+{SENDER}")
        assert status == 200 and "Location" not in headers
        assert again == {**first, "sends": 2, "checks_left": 4}  # same id, same expires_at
        shown = call(service, "GET", f"{VERIFICATIONS}/{first['id']}", token)[2]
        assert (shown["sends"], shown["checks_left"], shown["expires_at"]) == (2, 4, first["expires_at"])
        assert sent_codes(fake_api, count=2) == [code, code]

    def test_beyond_verify_max_sends_429_with_retry_after_until_it_expires(self, deployment, token, fake_api,
                                                                           database_url):
        service = deployment(verify_max_sends=3, verify_ttl=300)
        statuses = [ask(service, token)[0] for _ in range(3)]
        status, headers, answer = ask(service, token)
        assert (statuses, status) == ([201, 200, 200], 429)
        assert answer == {"error": "max sends reached", "id": query(database_url, "SELECT id FROM verifications")[0][0]}
        assert 295 <= int(headers["Retry-After"]) <= 300
        assert query(database_url, "SELECT sends FROM verifications") == [(3,)]
        assert len(sent_codes(fake_api, count=3)) == 3 and query(database_url, "SELECT count(*) FROM outbox") == [(3,)]

    def test_from_another_number_of_ours_is_another_verification(self, deployment, token, fake_api):
        service = deployment()
        _, _, first = ask(service, token)
        status, _, other = ask(service, token, **{"from": f"+{OTHER_NUMBER}"})
        assert status == 201 and other["id"] != first["id"]
        sent_codes(fake_api, count=2)
        assert sorted(payload["src"] for payload in fake_api.accepted) == sorted([OUR_NUMBER, OTHER_NUMBER])

    def test_once_expired_or_exhausted_a_request_makes_a_new_verification_with_a_new_code(
            self, deployment, token, fake_api, database_url):
        service = deployment(verify_max_checks=1)
        _, _, first = ask(service, token)
        sent_codes(fake_api)  # sent while pending (a code that expired before it left is not sent)
        backdate(database_url, "expires_at", 601)
        status, _, second = ask(service, token)
        assert status == 201 and second["id"] != first["id"] and second["sends"] == 1
        check(service, token, second["id"], wrong(sent_codes(fake_api, count=2)[1]))  # max_attempts now
        status, _, third = ask(service, token)
        assert status == 201 and third["id"] not in (first["id"], second["id"])
        assert query(database_url, "SELECT id, status FROM verifications ORDER BY created_at") == [
            (first["id"], "expired"), (second["id"], "max_attempts"), (third["id"], "pending")]
        assert len({seed for seed, in query(database_url, "SELECT seed FROM verifications")}) == 3  # new codes
        assert len(sent_codes(fake_api, count=3)) == 3

    def test_409_for_an_opted_out_number_and_nothing_sent(self, deployment, app, token, database_url, fake_api):
        service = deployment()
        post(webtest.TestApp(app), inbound(Text="STOP"))
        status, _, answer = ask(service, token, f"+{SENDER}")
        assert (status, answer) == (409, {"error": "opted_out", "to": SENDER})
        assert query(database_url, "SELECT count(*) FROM verifications") == [(0,)]
        assert ask(service, token, **{"from": OTHER_NUMBER})[0] == 201  # opted out of one number of ours only
        drain(app)
        assert [payload["src"] for payload in fake_api.accepted if "code" in payload["text"]] == [OTHER_NUMBER]

    def test_a_queued_code_is_cancelled_when_its_number_opts_out(self, app, token, fake_api, database_url):
        client = webtest.TestApp(app)
        client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token), status=201)
        post(client, inbound(Text="STOP"))
        drain(app)
        assert [payload["dst"] for payload in fake_api.accepted] == []
        assert query(database_url, "SELECT status, error FROM outbox WHERE text_source IS NOT NULL") == [
            ("cancelled", "opted out")]

    def test_verifications_count_toward_api_limit_like_messages(self, deployment, app, token, database_url):
        service = deployment(api_limit=3)
        both = make_token(app, "both", ("send", "verify"))
        assert call(service, "POST", api.API_MESSAGES_PATH, both, {"to": SENDER, "text": "hi"})[0] == 202
        assert [ask(service, both, to)[0] for to in (SENDER, SENDER)] == [201, 200]  # a resend is a send
        status, headers, answer = ask(service, both, "14155550124")
        assert status == 429 and answer["error"] == "API_LIMIT: 3 messages an hour"
        assert 3500 <= int(headers["Retry-After"]) <= 3600
        assert call(service, "POST", api.API_MESSAGES_PATH, both, {"to": SENDER, "text": "hi"})[0] == 429
        assert ask(service, token, "14155550124")[0] == 201  # another token has its own hour
        assert query(database_url, "SELECT count(*) FROM verifications") == [(2,)]

    def test_503_without_plivo_auth_id(self, make_app, env):
        app = make_app(**{**settings_of(env), "plivo_auth_id": ""})
        answer = webtest.TestApp(app).post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(make_token(app)),
                                                 status=503)
        assert answer.json == {"error": "sending needs PLIVO_AUTH_ID"}


class TestRequestErrors:
    """What one process decides of a request's body, in process, against the test's database."""

    @pytest.fixture
    def client(self, app):
        return webtest.TestApp(app)

    @pytest.mark.parametrize("body,field", [
        (b"not json", "body"),
        (b'["a list"]', "body"),
        (b'{"to": "14155550123", "to": "14155550124"}', "body"),
        ({}, "to"),
        ({"to": "call me"}, "to"),
        ({"to": 14155550123}, "to"),
        ({"to": "12"}, "to"),
        ({"to": OUR_NUMBER}, "to"),
        ({"to": "0044 20 7946 0000"}, "to"),
        ({"to": "+1415"}, "to"),
        ({"to": "+1415555012345678"}, "to"),
        ({"to": SENDER, "from": "14155550999"}, "from"),
        ({"to": SENDER, "from": 14155550100}, "from"),
        ({"to": SENDER, "text": "my own text"}, "text"),
    ], ids=["not json", "not an object", "a key twice", "no to", "words", "a number", "2 digits", "our own",
            "no calling code", "too short", "16 digits", "from not ours", "from not a string", "unknown key"])
    def test_400_naming_the_field_and_nothing_stored(self, client, token, database_url, body, field):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = client.post(VERIFICATIONS, data, headers={**bearer(token), "Content-Type": "application/json"},
                             status=400)
        assert answer.json["field"] == field and answer.json["error"]
        assert query(database_url, "SELECT count(*) FROM verifications UNION ALL SELECT count(*) FROM outbox") == [
            (0,), (0,)]

    def test_403_country_not_allowed_outside_verify_countries(self, client, token, database_url):
        answer = client.post_json(VERIFICATIONS, {"to": "+44 7700 900123"}, headers=bearer(token), status=403)
        assert answer.json == {"error": "country not allowed", "field": "to"}
        assert query(database_url, "SELECT count(*) FROM verifications") == [(0,)]

    def test_413_and_415(self, client, token):
        assert client.post(VERIFICATIONS, json.dumps({"to": SENDER, "x": "y" * 70000}).encode(), headers={
            **bearer(token), "Content-Type": "application/json"}, status=413).json["error"]
        assert client.post(VERIFICATIONS, "to=14155550123", headers={
            **bearer(token), "Content-Type": "application/x-www-form-urlencoded"}, status=415).json["error"]


# -- Tokens and scopes -------------------------------------------------------------------------------

class TestTokens:
    ROUTES = [("POST", VERIFICATIONS, {"to": SENDER}), ("POST", f"{VERIFICATIONS}/some-id/check", {"code": "123456"}),
              ("GET", f"{VERIFICATIONS}/some-id", None), ("DELETE", f"{VERIFICATIONS}/some-id", None)]

    @pytest.mark.parametrize("method,path,body", ROUTES, ids=["request", "check", "show", "cancel"])
    def test_401_without_a_token_and_403_naming_verify_without_the_scope(self, app, database_url, method, path,
                                                                        body):
        client = webtest.TestApp(app)
        extra = {"body": json.dumps(body).encode(), "content_type": "application/json"} if body else {}
        refused = client.request(path, method=method, status=401, **extra)
        assert refused.headers["WWW-Authenticate"] == "Bearer" and refused.json["error"]
        sender = make_token(app, "orders", ("send", "read"))
        answer = client.request(path, method=method, headers=bearer(sender), status=403, **extra)
        assert answer.json == {"error": "this token's scopes do not include verify", "scope": "verify"}
        assert query(database_url, "SELECT count(*) FROM verifications") == [(0,)]

    def test_a_token_sees_only_the_verifications_it_asked_for(self, app, token, fake_api):
        client, other = webtest.TestApp(app), make_token(app, "other")
        mine = client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token), status=201).json["id"]
        unknown = [client.request(path, method=method, headers=bearer(other), status=404, **extra).json
                   for method, path, extra in self.requests("no-such-id")]
        hidden = [client.request(path, method=method, headers=bearer(other), status=404, **extra).json
                  for method, path, extra in self.requests(mine)]
        assert hidden == unknown == [{"error": "no verification with this id"}] * 3
        # its own request for the same number is a verification of its own, not a resend of another's
        theirs = client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(other), status=201).json["id"]
        assert theirs != mine
        assert client.get(f"{VERIFICATIONS}/{mine}", headers=bearer(token)).json["status"] == "pending"

    @staticmethod
    def requests(verification_id):
        body = {"body": json.dumps({"code": "123456"}).encode(), "content_type": "application/json"}
        return [("POST", f"{VERIFICATIONS}/{verification_id}/check", body),
                ("GET", f"{VERIFICATIONS}/{verification_id}", {}), ("DELETE", f"{VERIFICATIONS}/{verification_id}", {})]

    def test_other_paths_and_methods(self, app, token):
        client = webtest.TestApp(app)
        assert client.get(f"{VERIFICATIONS}/x/check", headers=bearer(token), status=405).headers["Allow"] == "POST"
        assert client.post_json(f"{VERIFICATIONS}/x", {}, headers=bearer(token), status=405).headers["Allow"] == (
            "GET, DELETE")
        client.get(f"{VERIFICATIONS}/x/other", headers=bearer(token), status=404)
        client.get(VERIFICATIONS, headers=bearer(token), status=405)


# -- POST /api/verifications/ID/check, GET and DELETE: every state ----------------------------------

class TestStates:
    def test_the_right_code_approves_once(self, deployment, token, fake_api, database_url):
        service = deployment()
        _, _, asked = ask(service, token)
        [code] = sent_codes(fake_api)
        status, _, first = check(service, token, asked["id"], code)
        assert (status, first) == (200, {"id": asked["id"], "status": "approved", "valid": True, "checks_left": 5})
        status, _, again = check(service, token, asked["id"], code)
        assert (status, again) == (200, {"id": asked["id"], "status": "approved", "valid": False, "checks_left": 5})
        _, _, shown = call(service, "GET", f"{VERIFICATIONS}/{asked['id']}", token)
        assert set(shown) == {"id", "to", "status", "expires_at", "sends", "checks_left", "created_at", "approved_at"}
        assert (shown["status"], shown["to"], shown["expires_at"]) == ("approved", SENDER, asked["expires_at"])
        assert datetime.fromisoformat(shown["created_at"]) <= datetime.fromisoformat(shown["approved_at"])
        assert query(database_url, "SELECT status FROM verifications") == [("approved",)]

    def test_the_right_code_after_approval_does_not_approve_again(self, deployment, token, fake_api):
        service = deployment()
        _, _, asked = ask(service, token)
        [code] = sent_codes(fake_api)
        answers = [check(service, token, asked["id"], code)[2] for _ in range(3)]
        assert [answer["valid"] for answer in answers] == [True, False, False]
        assert {answer["status"] for answer in answers} == {"approved"}

    def test_wrong_codes_count_down_to_max_attempts_then_even_the_right_code_is_invalid(
            self, deployment, token, fake_api, database_url):
        service = deployment(verify_max_checks=3)
        _, _, asked = ask(service, token)
        [code] = sent_codes(fake_api)
        answers = [check(service, token, asked["id"], wrong(code))[2] for _ in range(3)]
        assert [(answer["status"], answer["valid"], answer["checks_left"]) for answer in answers] == [
            ("pending", False, 2), ("pending", False, 1), ("max_attempts", False, 0)]
        assert check(service, token, asked["id"], code)[2] == {
            "id": asked["id"], "status": "max_attempts", "valid": False, "checks_left": 0}
        assert query(database_url, "SELECT status, checks_left FROM verifications") == [("max_attempts", 0)]

    def test_a_code_of_another_length_is_a_wrong_code(self, deployment, token, fake_api):
        service = deployment()
        _, _, asked = ask(service, token)
        [code] = sent_codes(fake_api)
        assert check(service, token, asked["id"], code + "0")[2]["checks_left"] == 4
        assert check(service, token, asked["id"], code)[2]["valid"] is True

    def test_after_expires_at_expired_and_no_check_is_counted(self, deployment, token, fake_api, database_url):
        service = deployment()
        _, _, asked = ask(service, token)
        [code] = sent_codes(fake_api)
        backdate(database_url, "expires_at", 601)
        assert check(service, token, asked["id"], code)[2] == {
            "id": asked["id"], "status": "expired", "valid": False, "checks_left": 5}
        assert check(service, token, asked["id"], wrong(code))[2]["checks_left"] == 5
        assert call(service, "GET", f"{VERIFICATIONS}/{asked['id']}", token)[2]["status"] == "expired"

    def test_cancelled_by_delete(self, deployment, token, fake_api, database_url):
        service = deployment()
        _, _, asked = ask(service, token)
        [code] = sent_codes(fake_api)
        status, _, body = call(service, "DELETE", f"{VERIFICATIONS}/{asked['id']}", token)
        assert (status, body) == (204, None)
        assert call(service, "DELETE", f"{VERIFICATIONS}/{asked['id']}", token)[0] == 204  # again: still cancelled
        assert check(service, token, asked["id"], code)[2] == {
            "id": asked["id"], "status": "cancelled", "valid": False, "checks_left": 5}
        assert call(service, "GET", f"{VERIFICATIONS}/{asked['id']}", token)[2]["status"] == "cancelled"
        assert ask(service, token)[0] == 201  # no longer pending: a request makes a new one

    def test_delete_of_an_approved_verification_is_409(self, deployment, token, fake_api):
        service = deployment()
        _, _, asked = ask(service, token)
        check(service, token, asked["id"], sent_codes(fake_api)[0])
        status, _, answer = call(service, "DELETE", f"{VERIFICATIONS}/{asked['id']}", token)
        assert (status, answer) == (409, {"error": "it is approved already: nothing to cancel", "status": "approved"})

    @pytest.mark.parametrize("body", [{"code": "123"}, {"code": "12345678901"}, {"code": "12 34"},
                                      {"code": "١٢٣٤٥٦"}, {"code": 123456}, {}, {"code": "123456", "x": 1}, ["123456"]],
                             ids=["3 digits", "11 digits", "a space", "arabic digits", "a number", "none",
                                  "unknown key", "a list"])
    def test_a_code_that_is_not_4_to_10_digits_is_400_and_not_counted(self, app, token, database_url, body):
        client = webtest.TestApp(app)
        verification_id = client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token)).json["id"]
        answer = client.post_json(f"{VERIFICATIONS}/{verification_id}/check", body, headers=bearer(token), status=400)
        assert answer.json["error"] and answer.json["field"] in ("code", "x", "body")
        assert query(database_url, "SELECT checks_left FROM verifications") == [(5,)]

    def test_unknown_id_is_404(self, app, token):
        client = webtest.TestApp(app)
        for method, path, extra in TestTokens.requests("no-such-id"):
            assert client.request(path, method=method, headers=bearer(token), status=404, **extra).json == {
                "error": "no verification with this id"}

    def test_a_code_not_sent_yet_when_cancelled_is_never_sent(self, app, token, fake_api, database_url):
        client = webtest.TestApp(app)
        verification_id = client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token)).json["id"]
        client.delete(f"{VERIFICATIONS}/{verification_id}", headers=bearer(token), status=204)
        drain(app)
        assert fake_api.requests == []
        assert query(database_url, "SELECT status, error FROM outbox") == [("cancelled", "verification cancelled")]


# -- The worker makes the text; nothing else ever holds the code ------------------------------------

class TestTheCodeIsNeverStored:
    @pytest.mark.sqlite_only
    def test_not_in_the_sqlite_file_nor_its_wal(self, deployment, token, fake_api, database_url):
        code, texts = self.a_verification_checked(deployment, token, fake_api)
        path = Path(database_url.removeprefix("sqlite:///"))
        files = {name: name.read_bytes() for name in (path, path.with_name(path.name + "-wal")) if name.exists()}
        assert len(files) == 2 and b"******" in b"".join(files.values())  # the WAL holds the rows written
        for name, content in files.items():
            for form in self.forms_of(code):
                assert form not in content, (name, form)

    def test_not_in_any_table(self, deployment, token, fake_api, database_url, backend):
        code, _ = self.a_verification_checked(deployment, token, fake_api)
        tables = [row[0] for row in query(database_url, (
            # an FTS5 table without content cannot be read whole; its shadow tables (the index) are read
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'"
            if backend == "sqlite" else
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))]
        assert {"verifications", "outbox", "messages"} <= set(tables)
        dump = "\n".join(repr(query(database_url, f"SELECT * FROM {table}")) for table in tables).encode()
        assert b"******" in dump
        for form in self.forms_of(code):
            assert form not in dump

    def test_not_in_the_logs_even_at_debug(self, deployment, token, fake_api, tmp_path):
        code, _ = self.a_verification_checked(deployment, token, fake_api, log_level="DEBUG")
        logs = "".join(path.read_text() for path in tmp_path.glob("service-*.log"))  # the service's and the worker's
        assert "verification action=check" in logs and "outbox outcome=sent" in logs
        assert code not in logs

    def test_not_in_messages_the_api_listings_nor_the_inbox(self, deployment, app, token, fake_api, env, tmp_path):
        code, texts = self.a_verification_checked(deployment, token, fake_api)
        listed = subprocess.run([sys.executable, str(MODULE), "messages", "--json"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and "******" in listed.stdout and code not in listed.stdout
        plain = subprocess.run([sys.executable, str(MODULE), "messages"], env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=60).stdout
        assert "******" in plain and code not in plain
        client, reader = webtest.TestApp(app), make_token(app, "auditor", ("read",))
        conversation = client.get(f"{api.API_MESSAGES_PATH}?number={SENDER}", headers=bearer(reader)).json["messages"]
        assert [item["text"] for item in conversation] == texts
        one = client.get(f"{api.API_MESSAGES_PATH}/{conversation[0]['id']}", headers=bearer(reader)).text
        assert "******" in one and code not in one
        with app.store.transaction() as tx:
            people.add_person(tx, "alice", PASSWORD, time.time())
        log_in(client)
        page = client.get(f"{inbox.INBOX_PATH}/conversations/{SENDER}/{OUR_NUMBER}").text
        assert "******" in page and code not in page

    def test_the_sent_text_is_the_stored_one_with_the_code_in_place_of_the_mask(self, deployment, token, fake_api,
                                                                              database_url):
        service = deployment(verify_text="{code} is your code for {minutes} min. Not {code}?",
                             verify_code_length=8, verify_ttl=90)
        ask(service, token)
        [code] = sent_codes(fake_api)
        assert len(code) == 8 and fake_api.accepted[0]["text"] == f"{code} is your code for 2 min. Not {code}?"
        assert query(database_url, "SELECT text FROM outbox") == [("****** is your code for 2 min. Not ******?",)]

    def test_a_worker_without_the_surface_never_sends_the_masked_text(self, app, token, fake_api, database_url):
        webtest.TestApp(app).post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token), status=201)
        app.text_makers.clear()  # as a worker whose package lacks the verification surface
        assert sms_responder.OutboxWorker(app).send_next() is True
        assert fake_api.requests == []
        assert query(database_url, "SELECT status, attempts, error FROM outbox") == [
            ("queued", 1, "no verification surface in this worker to make the text")]

    def test_a_stolen_database_cannot_test_a_code_without_the_key(self, deployment, token, fake_api, database_url):
        """What the database holds (ID, seed) with any key but the one derived from PLIVO_AUTH_TOKEN makes
        another code; with it, the code (so the code is made, not looked up)."""
        service = deployment()
        ask(service, token)
        [code] = sent_codes(fake_api)
        [(verification_id, seed, digits)] = query(database_url, "SELECT id, seed, digits FROM verifications")
        assert verification.code_of(verification.code_key(AUTH_TOKEN), verification_id, seed, digits) == code
        guesses = {verification.code_of(verification.code_key(key), verification_id, seed, digits)
                   for key in ("", "replace-with-your-plivo-auth-token", "another-token")}
        guesses.add(verification.code_of(AUTH_TOKEN.encode(), verification_id, seed, digits))  # the token as key
        assert code not in guesses

    # -- helpers --

    @staticmethod
    def a_verification_checked(deployment, token, fake_api, **settings):
        """Ask for a 10-digit code (no other number in the files is likely to hold its digits), resend it,
        check a wrong and the right one; (the code, the texts stored for its two SMS)."""
        service = deployment(verify_code_length=10, **settings)
        _, _, asked = ask(service, token)
        ask(service, token)
        code = sent_codes(fake_api, count=2)[0]
        check(service, token, asked["id"], wrong(code))
        assert check(service, token, asked["id"], code)[2]["valid"] is True
        texts = ["Your verification code is ******. It expires in 10 minutes. Do not share it."] * 2
        return code, texts

    @staticmethod
    def forms_of(code):
        """The code as bytes, and the digests a careless store would keep of it."""
        return [code.encode(), hashlib.sha256(code.encode()).hexdigest().encode(),
                hashlib.sha256(code.encode()).digest(), hashlib.md5(code.encode()).hexdigest().encode()]


# -- Races: the database decides ---------------------------------------------------------------------

def hosts_for(services, env, backend):
    """gunicorn -w 3 on SQLite; on PostgreSQL, two hosts (gunicorn -w 2 each) sharing the database."""
    if backend == "postgresql":
        return [services(env, kind="gunicorn", workers=2) for _ in range(2)]
    return [services(env, kind="gunicorn", workers=3)]


class TestRaces:
    def test_10_right_codes_at_once_approve_exactly_once(self, services, env, token, fake_api, database_url, backend,
                                                         figures):
        hosts = hosts_for(services, env, backend)
        services(env, kind="worker")
        _, _, asked = ask(hosts[0], token)
        [code] = sent_codes(fake_api)
        answers = concurrently(10, lambda i: check(hosts[i % len(hosts)], token, asked["id"], code))
        assert [status for status, _, _ in answers] == [200] * 10, answers
        assert sorted(answer["valid"] for _, _, answer in answers) == [False] * 9 + [True]
        assert {(answer["status"], answer["checks_left"]) for _, _, answer in answers} == {("approved", 5)}
        assert query(database_url, "SELECT status, checks_left FROM verifications") == [("approved", 5)]
        figures[f"verification: 10 right codes at once, {backend}"] = {"hosts": len(hosts), "approved": 1}

    def test_10_wrong_codes_at_once_count_exactly_verify_max_checks(self, services, env, token, fake_api, database_url,
                                                                    backend, figures):
        hosts = hosts_for(services, env, backend)
        services(env, kind="worker")
        _, _, asked = ask(hosts[0], token)
        code = wrong(sent_codes(fake_api)[0])
        answers = concurrently(10, lambda i: check(hosts[i % len(hosts)], token, asked["id"], code))
        assert [status for status, _, _ in answers] == [200] * 10, answers
        assert not any(answer["valid"] for _, _, answer in answers)
        # the five counted each saw their own count (4 ... 0); the five after them, max_attempts at 0
        assert sorted(answer["checks_left"] for _, _, answer in answers) == [0] * 6 + [1, 2, 3, 4]
        assert query(database_url, "SELECT status, checks_left FROM verifications") == [("max_attempts", 0)]
        figures[f"verification: 10 wrong codes at once, {backend}"] = {"hosts": len(hosts), "counted": 5}

    def test_10_requests_at_once_make_one_verification_and_send_one_code(self, services, env, token, fake_api,
                                                                         database_url, backend):
        hosts = hosts_for(services, env, backend)
        services(env, kind="worker")
        answers = concurrently(10, lambda i: ask(hosts[i % len(hosts)], token))
        assert sorted(status for status, _, _ in answers) == [200] * 4 + [201] + [429] * 5, answers
        assert len({answer.get("id") for status, _, answer in answers if status != 429}) == 1
        assert query(database_url, "SELECT count(*), max(sends) FROM verifications") == [(1, 5)]
        assert len(set(sent_codes(fake_api, count=5))) == 1


    @pytest.mark.postgresql_only
    @pytest.mark.parametrize("right", [True, False], ids=["right codes", "wrong codes"])
    def test_a_check_that_read_pending_before_another_committed_finds_what_that_one_left(self, make_app, env,
                                                                                          database_url, right):
        """Two checks interleaved in the database, deterministically: the second reads the verification while
        the first has written and not committed. (On SQLite this cannot happen: writers take turns, each
        transaction whole, BEGIN IMMEDIATE.) The second's conditional UPDATE then matches nothing."""
        app = make_app(**settings_of(env), verify_max_checks=1)
        token = make_token(app)
        verification_id = webtest.TestApp(app).post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token)).json["id"]
        [(seed, digits)] = query(database_url, "SELECT seed, digits FROM verifications")
        code = verification.code_of(verification.code_key(AUTH_TOKEN), verification_id, seed, digits)
        code = code if right else wrong(code)
        checks, results = verification.Verifications(app), {}
        first_wrote, second_read, release = threading.Event(), threading.Event(), threading.Event()

        def first():
            with app.store.transaction() as tx:
                results["first"] = checks.check_code(tx, "signup", verification_id, code, time.time())[1]
                first_wrote.set()
                release.wait(10)

        def second():
            first_wrote.wait(10)
            with app.store.transaction() as tx:
                results["second"] = checks.check_code(Signalling(tx, second_read), "signup", verification_id, code,
                                                      time.time())[1]

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        assert second_read.wait(10)  # it has read the verification as the first left it before committing
        release.set()
        for thread in threads:
            thread.join(10)
        assert results == ({"first": "approved", "second": "already_approved"} if right else
                           {"first": "max_attempts", "second": "max_attempts"})
        assert query(database_url, "SELECT status, checks_left FROM verifications") == [
            ("approved", 1) if right else ("max_attempts", 0)]


class Signalling:
    """A transaction that sets an event once its first statement has run."""

    def __init__(self, tx, event):
        self.tx, self.event = tx, event

    def execute(self, sql, params=()):
        cursor = self.tx.execute(sql, params)
        self.event.set()
        return cursor

    def __getattr__(self, name):
        return getattr(self.tx, name)


@pytest.mark.postgresql_only
class TestTwoHosts:
    def test_asked_on_one_host_sent_by_a_worker_checked_on_another(self, services, env, token, fake_api,
                                                                    database_url):
        first, second = services(env), services(env)
        services(env, kind="worker")
        status, _, asked = ask(first, token)
        assert status == 201
        status, _, again = ask(second, token)
        assert (status, again["id"], again["sends"]) == (200, asked["id"], 2)
        codes = sent_codes(fake_api, count=2)
        assert codes[0] == codes[1]
        assert check(second, token, asked["id"], wrong(codes[0]))[2]["checks_left"] == 4
        assert check(second, token, asked["id"], codes[0])[2]["valid"] is True
        assert check(first, token, asked["id"], codes[0])[2]["valid"] is False
        assert call(first, "GET", f"{VERIFICATIONS}/{asked['id']}", token)[2]["status"] == "approved"


# -- SMS pumping: countries and the prefix limit -----------------------------------------------------

class TestCountries:
    def test_the_calling_code_table_is_prefix_free(self):
        codes = verification.CALLING_CODES
        assert all(code.isdigit() and 1 <= len(code) <= 3 for code in codes) and len(codes) > 200
        assert [(a, b) for a in codes for b in codes if a != b and b.startswith(a)] == []

    @pytest.mark.parametrize("number,code,prefix", [
        ("14155550123", "1", "1415"), ("447700900123", "44", "44770"), ("353861234567", "353", "353861"),
        ("79161234567", "7", "7916"), ("8801712345678", "880", "880171"), ("212612345678", "212", "212612"),
        ("18765551234", "1", "1876"), ("0044207946000", None, None), ("2801234567", None, None)])
    def test_a_numbers_calling_code_and_prefix(self, number, code, prefix):
        assert verification.calling_code(number) == code
        if code:
            assert verification.prefix_of(number, code) == prefix

    @pytest.mark.parametrize("countries,allowed,refused", [
        (None, ["+14155550123"], ["+447700900123"]),
        ("1,+44", ["+14155550123", "+447700900123"], ["+33612345678"]),
        ("44", ["+447700900123"], ["+14155550123"]),
        ("*", ["+14155550123", "+447700900123", "+33612345678", "+8801712345678"], []),
    ], ids=["default: PLIVO_NUMBER's", "a list", "not ours", "all"])
    def test_verify_countries(self, make_app, env, countries, allowed, refused):
        settings = {**settings_of(env), **({"verify_countries": countries} if countries else {})}
        app = make_app(**settings)
        client, token = webtest.TestApp(app), make_token(app)
        for number in allowed:
            client.post_json(VERIFICATIONS, {"to": number}, headers=bearer(token), status=201)
        for number in refused:
            assert client.post_json(VERIFICATIONS, {"to": number}, headers=bearer(token), status=403).json == {
                "error": "country not allowed", "field": "to"}

    def test_the_default_follows_plivo_number(self, make_app, env):
        app = make_app(**{**settings_of(env), "plivo_number": "447700900100,353861234500"})
        client, token = webtest.TestApp(app), make_token(app)
        for number in ("+447700900123", "+353861234567"):
            client.post_json(VERIFICATIONS, {"to": number}, headers=bearer(token), status=201)
        client.post_json(VERIFICATIONS, {"to": "+14155550123"}, headers=bearer(token), status=403)

    @pytest.mark.parametrize("countries", ["4", "1,999", "0"])
    def test_a_code_that_is_no_countrys_stops_start_up(self, env, tmp_path, countries):
        result = subprocess.run([sys.executable, str(MODULE)], env={**env, "VERIFY_COUNTRIES": countries},
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("sms_responder: VERIFY_COUNTRIES: ") and "Traceback" not in result.stderr


class TestPrefixLimit:
    NUMBERS = ["14155550101", "14155550102", "14155550103"]  # one prefix: 1 and the area code 415

    def test_beyond_the_limit_new_ones_to_the_prefix_are_refused_on_every_host(self, services, env, token, fake_api,
                                                                             database_url):
        env = {**env, "VERIFY_PREFIX_LIMIT": "3"}
        hosts = [services(env), services(env)]  # two processes on one database
        services(env, kind="worker")
        asked = [ask(hosts[i % 2], token, number)[2] for i, number in enumerate(self.NUMBERS)]
        assert [answer["status"] for answer in asked] == ["pending"] * 3
        for host in hosts:
            status, headers, answer = ask(host, token, "14155550104")
            assert (status, answer) == (429, {"error": "fraud_suspected"})
            assert 43190 <= int(headers["Retry-After"]) <= 43200
        assert ask(hosts[0], token, "12125550100")[0] == 201      # another area code
        assert ask(hosts[1], token, self.NUMBERS[0])[0] == 200    # a resend is not a new verification
        [code] = sent_codes(fake_api, to=self.NUMBERS[0])
        assert check(hosts[0], token, asked[0]["id"], code)[2]["valid"] is True  # a real person in the range
        assert ask(hosts[1], token, "14155550104")[0] == 201
        assert ask(hosts[0], token, "14155550105")[0] == 429      # three not approved again
        assert query(database_url, "SELECT count(*) FROM verifications WHERE prefix = '1415'") == [(4,)]

    def test_the_refusal_lasts_12_hours_from_the_last_of_the_limit(self, make_app, env, database_url):
        app = make_app(**settings_of(env), verify_prefix_limit=2)
        client, token = webtest.TestApp(app), make_token(app)
        for number in self.NUMBERS[:2]:
            client.post_json(VERIFICATIONS, {"to": number}, headers=bearer(token), status=201)
        client.post_json(VERIFICATIONS, {"to": self.NUMBERS[2]}, headers=bearer(token), status=429)
        backdate(database_url, "created_at", 2 * 3600)
        refused = client.post_json(VERIFICATIONS, {"to": self.NUMBERS[2]}, headers=bearer(token), status=429)
        assert 10 * 3600 - 10 <= int(refused.headers["Retry-After"]) <= 10 * 3600
        backdate(database_url, "created_at", 10 * 3600 + 60)
        client.post_json(VERIFICATIONS, {"to": self.NUMBERS[2]}, headers=bearer(token), status=201)

    def test_only_those_within_one_hour_of_each_other_count(self, make_app, env, database_url):
        app = make_app(**settings_of(env), verify_prefix_limit=2)
        client, token = webtest.TestApp(app), make_token(app)
        client.post_json(VERIFICATIONS, {"to": self.NUMBERS[0]}, headers=bearer(token), status=201)
        backdate(database_url, "created_at", 3660)
        client.post_json(VERIFICATIONS, {"to": self.NUMBERS[1]}, headers=bearer(token), status=201)
        client.post_json(VERIFICATIONS, {"to": self.NUMBERS[2]}, headers=bearer(token), status=201)
        client.post_json(VERIFICATIONS, {"to": "14155550104"}, headers=bearer(token), status=429)

    def test_zero_is_no_limit(self, make_app, env):
        app = make_app(**settings_of(env), verify_prefix_limit=0)
        client, token = webtest.TestApp(app), make_token(app)
        for i in range(12):
            client.post_json(VERIFICATIONS, {"to": f"1415555{i:04d}"}, headers=bearer(token), status=201)


# -- Settings -----------------------------------------------------------------------------------------

class TestSettings:
    @pytest.mark.parametrize("name,value", [
        ("VERIFY_TEXT", "Your code"), ("VERIFY_TEXT", "{code} for {name}"), ("VERIFY_TEXT", "{code:d}"),
        ("VERIFY_TEXT", "{code"), ("VERIFY_TEXT", "{code[0]}"), ("VERIFY_TEXT", "{code} " + "x" * 1600),
        ("VERIFY_CODE_LENGTH", "3"), ("VERIFY_CODE_LENGTH", "11"), ("VERIFY_CODE_LENGTH", "six"),
        ("VERIFY_TTL", "59"), ("VERIFY_TTL", "86401"), ("VERIFY_MAX_CHECKS", "0"), ("VERIFY_MAX_SENDS", "0"),
        ("VERIFY_COUNTRIES", "one"), ("VERIFY_COUNTRIES", "1234"), ("VERIFY_COUNTRIES", ","),
        ("VERIFY_PREFIX_LIMIT", "-1"),
    ])
    def test_invalid_setting_is_named(self, name, value):
        with pytest.raises(sms_responder.ConfigError) as error:
            sms_responder.Settings.from_env({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, name: value})
        assert len(error.value.problems) == 1 and error.value.problems[0].startswith(f"{name}: ")

    def test_defaults(self):
        settings = sms_responder.Settings.from_env({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER})
        assert settings.verify_text == ("Your verification code is {code}. It expires in {minutes} minutes."
                                        " Do not share it.")
        assert (settings.verify_code_length, settings.verify_ttl, settings.verify_max_checks,
                settings.verify_max_sends, settings.verify_countries, settings.verify_prefix_limit) == (
            6, 600, 5, 5, (), 10)

    @pytest.mark.parametrize("text,line", [
        ("Your code is ready", "sms_responder: VERIFY_TEXT: has no {code}: the text must carry the code"),
        ("{code} {name}", "sms_responder: VERIFY_TEXT: unknown placeholder {name}; use {code} and {minutes}")])
    def test_verify_text_without_code_or_with_an_unknown_placeholder_stops_start_up(self, env, tmp_path, text, line):
        result = subprocess.run([sys.executable, str(MODULE)], env={**env, "VERIFY_TEXT": text}, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stderr.splitlines()) == (2, [line])


# -- The log line and the counter ---------------------------------------------------------------------

class TestLogAndMetrics:
    def test_one_line_per_request_and_check_with_id_last_four_digits_and_result(self, app, token, fake_api, logs):
        client = webtest.TestApp(app)
        asked = client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token), status=201).json
        client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token), status=200)
        client.post_json(VERIFICATIONS, {"to": "+447700900123"}, headers=bearer(token), status=403)
        drain(app)
        [code] = sent_codes(fake_api, count=1)
        for typed in (wrong(code), code):
            client.post_json(f"{VERIFICATIONS}/{asked['id']}/check", {"code": typed}, headers=bearer(token))
        lines = [line for line in logs().splitlines() if " verification " in line]
        assert [line.split(" INFO verification ", 1)[1] for line in lines] == [
            f"action=request id={asked['id']} recipient=***0123 result=sent",
            f"action=request id={asked['id']} recipient=***0123 result=resent",
            "action=request recipient=***0123 result=country_not_allowed",
            f"action=check id={asked['id']} recipient=***0123 result=wrong_code",
            f"action=check id={asked['id']} recipient=***0123 result=approved"]
        assert code not in logs() and SENDER not in logs()

    def test_sms_verifications_total_by_result_across_processes(self, services, env, token, fake_api, tmp_path):
        env = {**env, "METRICS_TOKEN": METRICS_TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "counts")}
        service = services(env, kind="gunicorn", workers=2)
        services(env, kind="worker")
        before = scraped(service)
        assert {labels for name, labels in before if name == "sms_verifications_total"} == {
            f'{{result="{result}"}}' for result in verification.RESULTS}
        _, _, asked = ask(service, token)
        ask(service, token)
        ask(service, token, "+447700900123")
        [code] = sent_codes(fake_api)
        for typed in (wrong(code), code, code):
            check(service, token, asked["id"], typed)
        counts = {labels: value for (name, labels), value in scraped(service).items()
                  if name == "sms_verifications_total" and value}
        assert counts == {'{result="sent"}': 1, '{result="resent"}': 1, '{result="country_not_allowed"}': 1,
                          '{result="wrong_code"}': 1, '{result="approved"}': 1, '{result="already_approved"}': 1}


# -- The OpenAPI document ------------------------------------------------------------------------------

class TestOpenAPI:
    @pytest.fixture
    def document(self, app):
        return webtest.TestApp(app).get(api.OPENAPI_PATH, status=200).json

    def test_it_describes_the_verification_routes_and_their_answers(self, document):
        from openapi_spec_validator import validate
        validate(document)
        paths = document["paths"]
        assert {(path, method) for path, item in paths.items() for method in item if "verification" in path
                and method != "parameters"} == {(VERIFICATIONS, "post"), (f"{VERIFICATIONS}/{{id}}", "get"),
                                                (f"{VERIFICATIONS}/{{id}}", "delete"),
                                                (f"{VERIFICATIONS}/{{id}}/check", "post")}
        assert set(paths[VERIFICATIONS]["post"]["responses"]) == {
            "200", "201", "400", "401", "403", "409", "413", "415", "429", "503"}
        assert set(paths[f"{VERIFICATIONS}/{{id}}/check"]["post"]["responses"]) == {
            "200", "400", "401", "403", "404", "413", "415"}
        assert set(paths[f"{VERIFICATIONS}/{{id}}"]["delete"]["responses"]) == {"204", "401", "403", "404", "409"}
        for item in (paths[VERIFICATIONS]["post"], paths[f"{VERIFICATIONS}/{{id}}"]["get"]):
            assert "verify scope" in item["description"]

    def test_every_example_against_the_running_service(self, document, deployment, token, fake_api):
        import jsonschema

        def check_answer(operation, status, answer):
            assert str(status) in operation["responses"], (status, answer)
            schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(answer)

        service = deployment()
        paths = document["paths"]
        ids = []
        for name, example in paths[VERIFICATIONS]["post"]["requestBody"]["content"]["application/json"][
                "examples"].items():
            status, _, answer = ask(service, token, **example["value"])
            assert status == 201, (name, answer)
            check_answer(paths[VERIFICATIONS]["post"], status, answer)
            ids.append(answer["id"])
        status, _, again = ask(service, token, **paths[VERIFICATIONS]["post"]["requestBody"]["content"][
            "application/json"]["examples"]["sign-up"]["value"])
        check_answer(paths[VERIFICATIONS]["post"], status, again)
        check_operation = paths[f"{VERIFICATIONS}/{{id}}/check"]["post"]
        typed = check_operation["requestBody"]["content"]["application/json"]["examples"]["typed"]["value"]
        status, _, answer = check(service, token, ids[0], typed["code"])
        check_answer(check_operation, status, answer)
        status, _, answer = check(service, token, ids[0], sent_codes(fake_api)[0])
        assert answer["valid"] is True
        check_answer(check_operation, status, answer)
        for verification_id in ids:
            status, _, answer = call(service, "GET", f"{VERIFICATIONS}/{verification_id}", token)
            check_answer(paths[f"{VERIFICATIONS}/{{id}}"]["get"], status, answer)
        status, _, answer = call(service, "DELETE", f"{VERIFICATIONS}/{ids[0]}", token)  # approved: 409
        check_answer(paths[f"{VERIFICATIONS}/{{id}}"]["delete"], status, answer)
        assert call(service, "DELETE", f"{VERIFICATIONS}/{ids[1]}", token)[0] == 204
        status, _, answer = check(service, token, "no-such-id", "123456")
        check_answer(check_operation, status, answer)


# -- Storage: indexes, purge ----------------------------------------------------------------------------

class TestStorage:
    ROW = sms_responder.OutboxRow(1, None, "outbound", OUR_NUMBER, SENDER, "masked", None, 1, "token",
                                  "verification:some-id")
    WORK = {  # every statement of the verification surface, by the key it reads
        "pending": lambda tx, app: verification.pending_verification(tx, "signup", SENDER, OUR_NUMBER),
        "by id": lambda tx, app: verification.stored_verification(tx, "some-id", "signup"),
        "expired": lambda tx, app: verification.mark_expired(tx, "some-id"),
        "resend": lambda tx, app: verification.add_send(tx, "some-id", 5),
        "approve": lambda tx, app: verification.approve(tx, "some-id", time.time()),
        "wrong code": lambda tx, app: verification.count_wrong_code(tx, "some-id", time.time()),
        "cancel": lambda tx, app: verification.cancel_verification(tx, "some-id", "signup"),
        "prefix limit": lambda tx, app: verification.prefix_refused_for(tx, "1415", 10, time.time()),
        "the SMS's text": lambda tx, app: TestStorage.refused(lambda: verification.Verifications(app).sms_text(
            tx, "some-id", TestStorage.ROW)),
    }

    @staticmethod
    def refused(work):
        with pytest.raises(sms_responder.NotToBeSent):
            work()

    @pytest.mark.parametrize("name", list(WORK))
    def test_each_statement_uses_an_index(self, app, database_url, backend, name):
        connection = connect(database_url)
        try:
            if backend == "sqlite":
                recording = Recording(connection)
                self.WORK[name](sms_responder.SQLiteTransaction(app.store, recording), app)
                assert recording.statements
                for sql, params in recording.statements:
                    plan = " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                    assert "USING" in plan and not re.search(r"\bSCAN (?!CONSTANT ROW)\w+\b(?! USING)", plan), (
                        sql, plan)
            else:  # on an almost empty table PostgreSQL rightly prefers a scan: ask whether an index can serve
                recording = Recording(connection.connection)
                connection.execute("SET enable_seqscan = off")
                self.WORK[name](sms_responder.PostgresTransaction(app.store, recording), app)
                assert recording.statements
                for sql, params in recording.statements:
                    plan = " ".join(row[0] for row in connection.connection.execute(f"EXPLAIN {sql}", params))
                    assert "Seq Scan" not in plan and "Index" in plan, (sql, plan)
        finally:
            connection.close()

    def test_purge_deletes_verifications_older_than_its_days(self, app, token, env, tmp_path, database_url):
        client = webtest.TestApp(app)
        old = client.post_json(VERIFICATIONS, {"to": SENDER}, headers=bearer(token)).json["id"]
        backdate(database_url, "created_at", 3 * 86400)
        new = client.post_json(VERIFICATIONS, {"to": "14155550124"}, headers=bearer(token)).json["id"]
        result = subprocess.run([sys.executable, str(MODULE), "purge", "--days", "2"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert query(database_url, "SELECT id FROM verifications") == [(new,)]
        client.get(f"{VERIFICATIONS}/{old}", headers=bearer(token), status=404)

"""Speaking first: outbound messages (the contract's section "Speaking first"), bullet by bullet.

Tokens and `text` run as programs; the API is called in process (webtest) for what a single
process decides, and through real servers (the stdlib server, gunicorn, two hosts on one
PostgreSQL) for what must hold across processes: revocation, the idempotency race, API_LIMIT.
Every message leaves through the real worker to the fake Plivo API on 127.0.0.1.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sms_responder
from sms_responder_surfaces import api
from conftest import MODULE, connect, query
from test_sms_responder import AUTH_ID, AUTH_TOKEN, OTHER_NUMBER, OUR_NUMBER, SENDER, inbound, post, sdk_v3_signature

NUMBERS = f"{OUR_NUMBER},{OTHER_NUMBER}"
API = api.API_MESSAGES_PATH


# -- Helpers -----------------------------------------------------------------

@pytest.fixture
def env(database_url, fake_api, tmp_path):
    """The settings of a service or command run: the test's database, sending through the fake API."""
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": NUMBERS,
            "DATABASE_URL": database_url, "PLIVO_AUTH_ID": AUTH_ID, "PLIVO_API_URL": fake_api.url, "TZ": "UTC"}


def run(env, cwd, *args):
    """`python sms_responder.py ARGS` as a program."""
    return subprocess.run([sys.executable, str(MODULE), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def app(make_app, fake_api):
    application = make_app(plivo_number=NUMBERS, plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url)
    application.store.ping()
    return application


@pytest.fixture
def client(app):
    return webtest.TestApp(app)


def make_token(app, name="orders", scopes=("send", "read")):
    """A token of every scope these tests use (send, read: what any token could do before scopes; see
    test_hardening.py for what each scope allows)."""
    with app.store.transaction() as tx:
        return api.add_token(tx, name, time.time(), scopes)


@pytest.fixture
def token(app):
    return make_token(app)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def send(client, token, body, status=202, **headers):
    """POST /api/messages with a JSON body (a dict, or raw bytes); the webtest response."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(API, data, headers={"Content-Type": "application/json", **bearer(token), **headers},
                       status=status)


def drain(app):
    """Let a worker send every due row."""
    worker = sms_responder.OutboxWorker(app)
    while worker.send_next():
        pass


def in_minutes(minutes):
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


# -- Tokens ------------------------------------------------------------------------------------

class TestTokens:
    def test_add_prints_a_token_once_and_stores_only_its_digest(self, env, tmp_path, database_url, client):
        result = run(env, tmp_path, "tokens", "add", "orders")
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert len(result.stdout.splitlines()) == 1 and "shown only now" in result.stderr
        assert token.startswith("smsr_") and len(token) >= 43 + 5
        assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        rows = query(database_url, "SELECT name, digest FROM api_tokens")
        assert rows == [("orders", sms_responder.token_digest(token))] and token not in str(rows)
        send(client, token, {"to": SENDER, "text": "hi"})

    def test_list_shows_names_creation_and_last_use_never_a_token(self, env, tmp_path, client):
        token = run(env, tmp_path, "tokens", "add", "orders").stdout.strip()
        run(env, tmp_path, "tokens", "add", "bookings")
        before = run(env, tmp_path, "tokens", "list").stdout.splitlines()
        assert [line.split()[0] for line in before] == ["bookings", "orders"]
        assert all(line.endswith("last used never used") for line in before)
        send(client, token, {"to": SENDER, "text": "hi"})
        after = run(env, tmp_path, "tokens", "list").stdout
        assert "orders" in after and after.count("never used") == 1 and token not in after

    @pytest.mark.parametrize("args,line", [
        (["add", "has space"], "sms_responder: token name 'has space': 1 to 64 letters, digits, '.', '_' or '-'"),
        (["add", "x" * 65], f"sms_responder: token name '{'x' * 65}': 1 to 64 letters, digits, '.', '_' or '-'"),
        (["remove", "nobody"], "sms_responder: there is no token named nobody"),
    ], ids=["space", "too long", "unknown"])
    def test_a_bad_or_unknown_name_is_one_line_and_exit_2(self, env, tmp_path, client, args, line):
        result = run(env, tmp_path, "tokens", *args)
        assert (result.returncode, result.stdout, result.stderr.splitlines()) == (2, "", [line])

    def test_a_name_is_unique(self, env, tmp_path, client):
        run(env, tmp_path, "tokens", "add", "orders")
        result = run(env, tmp_path, "tokens", "add", "orders")
        assert (result.returncode, result.stderr.splitlines()) == (
            2, ["sms_responder: a token named orders exists already; `tokens remove orders` first"])

    def test_revocation_is_felt_within_2_s_by_every_worker_and_host(self, services, env, tmp_path, backend):
        hosts = ([services(env, kind="gunicorn", workers=2) for _ in range(2)] if backend == "postgresql"
                 else [services(env, kind="gunicorn", workers=3)])
        token = run(env, tmp_path, "tokens", "add", "orders", "--scope", "read").stdout.strip()
        assert {status for status, _ in self.requests(hosts, token, 12)} == {200}
        assert run(env, tmp_path, "tokens", "remove", "orders").returncode == 0
        removed = time.monotonic()
        while True:
            statuses = [status for status, _ in self.requests(hosts, token, 12)]
            if set(statuses) == {401}:
                break
            assert time.monotonic() - removed < 2, statuses
        assert time.monotonic() - removed < 2

    @staticmethod
    def requests(hosts, token, count):
        """`count` GETs spread over the hosts, on fresh connections (so over their workers too)."""
        def get(index):
            request = urllib.request.Request(f"{hosts[index % len(hosts)].url}{API}?number={SENDER}",
                                             headers=bearer(token))
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, answer.headers
            except urllib.error.HTTPError as error:
                return error.code, error.headers
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            return list(pool.map(get, range(count)))


# -- POST /api/messages ------------------------------------------------------------------------

class TestCreate:
    def test_202_with_the_message_and_its_location(self, client, token, database_url):
        response = send(client, token, {"to": "+1 415 555 0123", "text": "Your order is ready."})
        body = response.json
        assert set(body) == {"id", "status", "to", "from", "segments", "encoding"}
        assert (body["status"], body["to"], body["from"], body["segments"], body["encoding"]) == (
            "queued", SENDER, OUR_NUMBER, 1, "GSM-7")
        assert response.headers["Location"] == f"{API}/{body['id']}"
        assert query(database_url, "SELECT public_id, kind, status, src, dst, text, sent_by, sent_via FROM outbox") == [
            (body["id"], "outbound", "queued", OUR_NUMBER, SENDER, "Your order is ready.", "orders", "api")]

    def test_from_media_and_ucs2(self, client, token):
        body = send(client, token, {"to": SENDER, "from": f"+{OTHER_NUMBER}", "text": "Ready ✅ " + "x" * 70,
                                    "media_urls": ["https://shop.example/receipt.png"]}).json
        assert (body["from"], body["segments"], body["encoding"]) == (OTHER_NUMBER, 2, "UCS-2")

    def test_1600_characters_are_taken_whole(self, client, token, database_url):
        send(client, token, {"to": SENDER, "text": "a" * 1600})
        assert query(database_url, "SELECT length(text) FROM outbox") == [(1600,)]

    @pytest.mark.parametrize("body,field", [
        (b"not json", "body"),
        (b'["a list"]', "body"),
        (b'{"to": "14155550123", "to": "14155550124", "text": "twice"}', "body"),
        (b'{"to": "14155550123", "text": NaN}', "body"),
        ({"to": SENDER, "text": "hi", "colour": "red"}, "colour"),
        ({"text": "hi"}, "to"),
        ({"to": "call me", "text": "hi"}, "to"),
        ({"to": "12", "text": "hi"}, "to"),
        ({"to": 14155550123, "text": "hi"}, "to"),
        ({"to": OUR_NUMBER, "text": "hi"}, "to"),
        ({"to": SENDER}, "text"),
        ({"to": SENDER, "text": "   "}, "text"),
        ({"to": SENDER, "text": "a" * 1601}, "text"),
        ({"to": SENDER, "text": "bell \x07"}, "text"),
        ({"to": SENDER, "text": "\ud800 lone surrogate"}, "text"),
        ({"to": SENDER, "text": 5}, "text"),
        ({"to": SENDER, "text": "hi", "from": "14155550999"}, "from"),
        ({"to": SENDER, "text": "hi", "media_urls": ["http://plain.example/a.jpg"]}, "media_urls"),
        ({"to": SENDER, "text": "hi", "media_urls": "https://x.example/a.jpg"}, "media_urls"),
        ({"to": SENDER, "text": "hi", "media_urls": [f"https://x.example/{i}.jpg" for i in range(11)]}, "media_urls"),
        ({"to": SENDER, "text": "hi", "send_at": "2026-12-24T09:00:00"}, "send_at"),
        ({"to": SENDER, "text": "hi", "send_at": "tomorrow"}, "send_at"),
        ({"to": SENDER, "text": "hi", "send_at": "2020-01-01T00:00:00Z"}, "send_at"),
        ({"to": SENDER, "text": "hi", "send_at": (datetime.now(UTC) + timedelta(days=31)).isoformat()}, "send_at"),
    ], ids=["not json", "not an object", "a key twice", "NaN", "unknown key", "no to", "words", "2 digits",
            "a number", "our own", "no text", "blank text", "1601 characters", "control character", "surrogate",
            "text not a string", "from not ours", "http media", "media not a list", "11 media", "no offset",
            "not a time", "past", "31 days ahead"])
    def test_a_malformed_body_or_field_is_400_naming_it_and_queues_nothing(self, client, token, database_url,
                                                                          body, field):
        answer = send(client, token, body, status=400)
        assert answer.content_type == "application/json" and answer.json["field"] == field
        assert answer.json["error"]
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]

    def test_an_mms_needs_no_text_and_send_at_may_be_a_minute_late(self, client, token):
        assert send(client, token, {"to": SENDER, "media_urls": ["https://x.example/a.jpg"]}).json["status"] == "queued"
        late = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
        assert send(client, token, {"to": SENDER, "text": "hi", "send_at": late}).json["status"] == "queued"

    @pytest.mark.parametrize("headers,challenge", [
        ({}, "Bearer"), ({"Authorization": "Bearer smsr_not-a-token"}, 'Bearer error="invalid_token"'),
        ({"Authorization": "Basic b3JkZXJzOnNlY3JldA=="}, "Bearer")], ids=["none", "wrong", "basic"])
    def test_401_with_www_authenticate_without_a_valid_token(self, client, database_url, token, headers, challenge):
        answer = client.post(API, json.dumps({"to": SENDER, "text": "hi"}).encode(),
                             headers={"Content-Type": "application/json", **headers}, status=401)
        assert answer.headers["WWW-Authenticate"] == challenge and answer.json["error"]
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]

    def test_413_over_max_body_bytes_and_415_for_another_type(self, make_app, fake_api):
        app = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url, max_body_bytes=100)
        client, token = webtest.TestApp(app), make_token(app)
        assert send(client, token, {"to": SENDER, "text": "x" * 200}, status=413).json["error"]
        assert client.post(API, "to=14155550123&text=hi", headers={
            **bearer(token), "Content-Type": "application/x-www-form-urlencoded"}, status=415).json["error"]

    def test_429_over_api_limit_per_token_with_retry_after(self, make_app, fake_api, database_url):
        app = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url, api_limit=2)
        client, orders, bookings = webtest.TestApp(app), make_token(app), make_token(app, "bookings")
        for _ in range(2):
            send(client, orders, {"to": SENDER, "text": "hi"})
        refused = send(client, orders, {"to": SENDER, "text": "hi"}, status=429)
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3600 and refused.json["error"]
        send(client, bookings, {"to": SENDER, "text": "hi"})  # another token has its own hour
        assert query(database_url, "SELECT count(*) FROM outbox") == [(3,)]

    def test_an_older_hour_no_longer_counts(self, make_app, fake_api, database_url):
        app = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url, api_limit=1)
        client, token = webtest.TestApp(app), make_token(app)
        send(client, token, {"to": SENDER, "text": "hi"})
        send(client, token, {"to": SENDER, "text": "hi"}, status=429)
        self.backdate_outbox(database_url, hours=1.01)
        send(client, token, {"to": SENDER, "text": "hi"})

    @staticmethod
    def backdate_outbox(database_url, hours):
        when = datetime.now(UTC) - timedelta(hours=hours)
        value = when.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else when
        connection = connect(database_url)
        with connection:
            connection.execute("UPDATE outbox SET queued_at = ?", (value,))
        connection.close()

    def test_503_without_plivo_auth_id(self, make_app):
        app = make_app()
        client, token = webtest.TestApp(app), make_token(app)
        assert send(client, token, {"to": SENDER, "text": "hi"}, status=503).json == {
            "error": "sending needs PLIVO_AUTH_ID"}

    def test_409_for_an_opted_out_recipient_and_nothing_queued(self, client, token, database_url):
        post(client, inbound(Text="STOP"))
        assert send(client, token, {"to": f"+{SENDER}", "text": "sale!"}, status=409).json == {
            "error": "opted_out", "to": SENDER}
        assert query(database_url, "SELECT count(*) FROM outbox WHERE kind = 'outbound'") == [(0,)]
        send(client, token, {"to": SENDER, "from": OTHER_NUMBER, "text": "other number"})  # opted out of one only


class TestIdempotency:
    def test_the_same_key_and_body_answer_the_first_answer_and_queue_once(self, client, token, database_url):
        body = {"to": SENDER, "text": "Your order is ready.", "send_at": in_minutes(10)}
        first = send(client, token, body, **{"Idempotency-Key": "order-1042"})
        again = send(client, token, dict(reversed(body.items())), **{"Idempotency-Key": "order-1042"})
        assert again.json == first.json and again.headers["Location"] == first.headers["Location"]
        assert query(database_url, "SELECT count(*) FROM outbox") == [(1,)]

    def test_the_same_key_with_another_body_is_409(self, client, token, database_url):
        send(client, token, {"to": SENDER, "text": "one"}, **{"Idempotency-Key": "k"})
        assert send(client, token, {"to": SENDER, "text": "two"}, status=409, **{"Idempotency-Key": "k"}).json == {
            "error": "idempotency key reused with another body"}
        assert query(database_url, "SELECT text FROM outbox") == [("one",)]

    def test_keys_are_per_token_and_last_24_hours(self, app, client, token, database_url):
        other = make_token(app, "bookings")
        first = send(client, token, {"to": SENDER, "text": "one"}, **{"Idempotency-Key": "k"}).json
        assert send(client, other, {"to": SENDER, "text": "one"}, **{"Idempotency-Key": "k"}).json["id"] != first["id"]
        connection = connect(database_url)
        with connection:
            when = datetime.now(UTC) - timedelta(hours=25)
            connection.execute("UPDATE api_requests SET created_at = ?", (
                when.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else when,))
        connection.close()
        assert send(client, token, {"to": SENDER, "text": "two"}, **{"Idempotency-Key": "k"}).json["id"] != first["id"]

    def test_a_key_over_200_characters_is_400(self, client, token):
        assert send(client, token, {"to": SENDER, "text": "hi"}, status=400,
                    **{"Idempotency-Key": "k" * 201}).json["field"] == "Idempotency-Key"
        send(client, token, {"to": SENDER, "text": "hi"}, **{"Idempotency-Key": "k" * 200})

    def test_a_race_on_several_workers_and_hosts_queues_one_message(self, services, env, tmp_path, database_url,
                                                                    backend, figures):
        hosts = ([services(env, kind="gunicorn", workers=2) for _ in range(2)] if backend == "postgresql"
                 else [services(env, kind="gunicorn", workers=3)])
        token = run(env, tmp_path, "tokens", "add", "orders").stdout.strip()
        ids = set()
        for round_ in range(5):
            body = json.dumps({"to": SENDER, "text": f"race {round_}"}).encode()
            answers = concurrent_posts(hosts, token, [body] * 20, key=f"race-{round_}")
            assert {status for status, _ in answers} == {202}, answers
            round_ids = {json.loads(document)["id"] for _, document in answers}
            assert len(round_ids) == 1
            ids |= round_ids
        assert query(database_url, "SELECT count(*), count(DISTINCT public_id) FROM outbox") == [(5, 5)]
        figures[f"idempotency race, {backend}"] = {"rounds": 5, "copies": 100, "ids": len(ids), "rows": 5}

    def test_api_limit_holds_across_processes(self, services, env, tmp_path, database_url, backend, figures):
        env = {**env, "API_LIMIT": "7"}
        hosts = ([services(env, kind="gunicorn", workers=2) for _ in range(2)] if backend == "postgresql"
                 else [services(env, kind="gunicorn", workers=3)])
        token = run(env, tmp_path, "tokens", "add", "orders").stdout.strip()
        bodies = [json.dumps({"to": SENDER, "text": f"message {i}"}).encode() for i in range(30)]
        statuses = sorted(status for status, _ in concurrent_posts(hosts, token, bodies))
        assert statuses == [202] * 7 + [429] * 23
        assert query(database_url, "SELECT count(*) FROM outbox") == [(7,)]
        figures[f"API_LIMIT across processes, {backend}"] = {"sent": 30, "accepted": 7, "refused": 23}


def concurrent_posts(hosts, token, bodies, key=None):
    """POST every body at once, spread over the hosts; (status, body) of each."""
    def post_one(index):
        headers = {**bearer(token), "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(f"{hosts[index % len(hosts)].url}{API}", data=bodies[index],
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post_one, range(len(bodies))))


# -- GET and DELETE /api/messages/ID, and the conversation -----------------------------------

class TestReadAndCancel:
    def test_get_shows_every_field(self, client, token):
        created = send(client, token, {"to": SENDER, "text": "See you at 9", "send_at": in_minutes(60)}).json
        message = client.get(f"{API}/{created['id']}", headers=bearer(token)).json
        assert set(message) == {"id", "to", "from", "text", "media_urls", "status", "error", "created_at", "send_at",
                                "sent_at", "plivo_message_uuid", "segments", "sent_by"}
        assert (message["status"], message["to"], message["from"], message["text"], message["sent_by"]) == (
            "scheduled", SENDER, OUR_NUMBER, "See you at 9", "orders")
        assert datetime.fromisoformat(message["created_at"]).utcoffset() == timedelta(0)
        assert abs(datetime.fromisoformat(message["send_at"]) - datetime.now(UTC) - timedelta(minutes=60)) < \
            timedelta(seconds=5)
        assert (message["sent_at"], message["plivo_message_uuid"], message["error"]) == (None, None, None)

    def test_unknown_ids_are_404_and_every_route_needs_a_token(self, client, token):
        assert client.get(f"{API}/nope", headers=bearer(token), status=404).json["error"]
        assert client.delete(f"{API}/nope", headers=bearer(token), status=404).json["error"]
        for method, path in (("GET", f"{API}/x"), ("DELETE", f"{API}/x"), ("GET", f"{API}?number={SENDER}")):
            assert client.request(path, method=method, status=401).headers["WWW-Authenticate"] == "Bearer"

    def test_delete_cancels_a_scheduled_or_queued_message_and_409_once_it_has_left(self, app, client, token,
                                                                                   fake_api):
        scheduled = send(client, token, {"to": SENDER, "text": "later", "send_at": in_minutes(5)}).json["id"]
        queued = send(client, token, {"to": SENDER, "text": "now"}).json["id"]
        client.delete(f"{API}/{scheduled}", headers=bearer(token), status=204)
        client.delete(f"{API}/{scheduled}", headers=bearer(token), status=204)  # cancelled already: the same
        assert client.get(f"{API}/{scheduled}", headers=bearer(token)).json["status"] == "cancelled"
        drain(app)
        assert client.delete(f"{API}/{queued}", headers=bearer(token), status=409).json["status"] == "sent"
        assert [message["text"] for message in fake_api.accepted] == ["now"]

    def test_the_conversation_is_both_directions_newest_first(self, client, token):
        post(client, inbound(Text="Is my order ready?"))
        send(client, token, {"to": SENDER, "text": "Yes, come by."})
        post(client, inbound(Text="Thanks!"))
        post(client, inbound(Text="someone else", From="14155550777"))
        items = client.get(f"{API}?number=%2B{SENDER}", headers=bearer(token)).json["messages"]
        assert [(item["direction"], item["text"]) for item in items] == [
            ("in", "Thanks!"), ("out", "Yes, come by."), ("in", "Is my order ready?")]
        assert set(items[0]) == {"direction", "message_uuid", "from", "to", "text", "media_urls", "received_at",
                                 "outcome", "rule", "reply"}
        assert items[0]["reply"] == "You said: Thanks!" and items[1]["sent_by"] == "orders"
        assert len(client.get(f"{API}?number={SENDER}&limit=2", headers=bearer(token)).json["messages"]) == 2
        future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert client.get(f"{API}?number={SENDER}&since={urllib.parse.quote(future)}",
                          headers=bearer(token)).json == {"messages": []}

    @pytest.mark.parametrize("query_string,field", [
        ("", "number"), ("number=abc", "number"), (f"number={SENDER}&limit=501", "limit"),
        (f"number={SENDER}&limit=0", "limit"), (f"number={SENDER}&since=yesterday", "since"),
        (f"number={SENDER}&colour=red", "colour")])
    def test_the_conversations_parameters_are_checked(self, client, token, query_string, field):
        assert client.get(f"{API}?{query_string}", headers=bearer(token), status=400).json["field"] == field


# -- Sending: the outbox and the worker ----------------------------------------------------------

class TestSending:
    def test_a_worker_sends_within_2_s_and_delivery_reports_move_the_status(self, services, env, tmp_path,
                                                                            fake_api, figures):
        service = services({**env, "PUBLIC_URL": "http://127.0.0.1"}, "--with-worker")
        token = run(env, tmp_path, "tokens", "add", "orders").stdout.strip()
        started = time.monotonic()
        status, body = http(service, "POST", API, token, {"to": SENDER, "text": "Your order is ready."})
        assert status == 202
        message_id = json.loads(body)["id"]
        wait_for(lambda: fake_api.accepted, 2)
        figures["outbound pick-up"] = {"seconds": round(time.monotonic() - started, 2)}
        assert fake_api.accepted == [{"src": OUR_NUMBER, "dst": SENDER, "text": "Your order is ready.", "type": "sms",
                                      "url": "http://127.0.0.1/webhooks/plivo/status"}]
        sent = wait_for(lambda: self.status_of(service, token, message_id, "sent"), 5)
        assert sent["sent_at"] and sent["plivo_message_uuid"]
        report = {"MessageUUID": sent["plivo_message_uuid"], "Status": "delivered", "To": SENDER, "From": OUR_NUMBER}
        answer = post_raw_path(service.url, sms_responder.STATUS_PATH, report, "http://127.0.0.1")
        assert answer == 200
        assert self.status_of(service, token, message_id, "delivered")

    @staticmethod
    def status_of(service, token, message_id, wanted):
        document = json.loads(http(service, "GET", f"{API}/{message_id}", token)[1])
        return document if document["status"] == wanted else None

    def test_an_mms_goes_as_plivos_mms(self, app, client, token, fake_api):
        send(client, token, {"to": SENDER, "media_urls": ["https://x.example/a.jpg", "https://x.example/b.jpg"]})
        send(client, token, {"to": SENDER, "text": "caption", "media_urls": ["https://x.example/c.jpg"]})
        drain(app)
        assert fake_api.accepted == [
            {"src": OUR_NUMBER, "dst": SENDER, "type": "mms",
             "media_urls": ["https://x.example/a.jpg", "https://x.example/b.jpg"]},
            {"src": OUR_NUMBER, "dst": SENDER, "text": "caption", "type": "mms",
             "media_urls": ["https://x.example/c.jpg"]}]

    def test_scheduled_messages_wait_and_leave_in_send_at_order(self, app, client, token, fake_api, database_url):
        send(client, token, {"to": SENDER, "text": "second", "send_at": in_minutes(2)})
        send(client, token, {"to": SENDER, "text": "first", "send_at": in_minutes(1)})
        send(client, token, {"to": SENDER, "text": "not yet", "send_at": in_minutes(60)})
        drain(app)
        assert fake_api.accepted == []
        with app.store.transaction() as tx:  # three minutes from now, as a worker will see it then
            claimed = [sms_responder.claim_due(tx, time.time() + 180) for _ in range(3)]
        assert [row and row.text for row in claimed] == ["first", "second", None]

    def test_a_stop_cancels_what_waits_for_that_person_at_once(self, app, client, token, fake_api):
        waiting = [send(client, token, {"to": SENDER, "text": "reminder", "send_at": in_minutes(1)}).json["id"],
                   send(client, token, {"to": SENDER, "text": "now"}).json["id"]]
        other = send(client, token, {"to": SENDER, "from": OTHER_NUMBER, "text": "other number"}).json["id"]
        post(client, inbound(Text="STOP"))
        statuses = [client.get(f"{API}/{i}", headers=bearer(token)).json for i in (*waiting, other)]
        assert [(m["status"], m["error"]) for m in statuses] == [("cancelled", "opted out")] * 2 + [("queued", None)]
        drain(app)  # the STOP's confirmation rode in the webhook's XML answer (REPLY_MODE=xml)
        assert [message["text"] for message in fake_api.accepted] == ["other number"]

    def test_an_opt_out_by_command_cancels_too_and_one_at_send_time_is_caught(self, app, client, token, fake_api,
                                                                              env, tmp_path, database_url):
        first = send(client, token, {"to": SENDER, "text": "one"}).json["id"]
        assert run(env, tmp_path, "opt-outs", "add", SENDER, "--to", OUR_NUMBER).returncode == 0
        second = send(client, token, {"to": "14155550777", "text": "two"}).json["id"]
        connection = connect(database_url)  # an opt-out written by another program, without us
        with connection:
            connection.execute("INSERT INTO opt_outs (number, to_number, number_key, to_key, opted_out_at)"
                               " VALUES (?, ?, ?, ?, ?)", ("14155550777", OUR_NUMBER, "14155550777", OUR_NUMBER,
                                                           datetime.now(UTC).isoformat()
                                                           if database_url.startswith("sqlite") else datetime.now(UTC)))
        connection.close()
        drain(app)
        assert fake_api.accepted == []
        assert [client.get(f"{API}/{i}", headers=bearer(token)).json["status"] for i in (first, second)] == [
            "cancelled", "cancelled"]

    def test_the_answer_is_an_ordinary_message_and_outbound_does_not_count_to_the_reply_limit(self, make_app,
                                                                                              fake_api):
        app = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url, reply_limit=1)
        client, token = webtest.TestApp(app), make_token(app)
        for i in range(3):
            send(client, token, {"to": SENDER, "text": f"update {i}"})
        drain(app)
        answer = post(client, inbound(Text="Thanks"))
        assert b"You said: Thanks" in answer.body


def wait_for(check, seconds):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def http(service, method, path, token, body=None):
    """(status, body) of one request to a real service."""
    data = None if body is None else json.dumps(body).encode()
    headers = {**bearer(token), **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(f"{service.url}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_raw_path(base_url, path, form, public_url):
    """POST a form to another webhook path of a real service, V3-signed for PUBLIC_URL; its status."""
    nonce = str(uuid.uuid4().int)[:20]
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Plivo-Signature-V3-Nonce": nonce,
               "X-Plivo-Signature-V3": sdk_v3_signature(f"{public_url}{path}", form, nonce)}
    request = urllib.request.Request(f"{base_url}{path}", data=urllib.parse.urlencode(form).encode(),
                                     headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


# -- sms-responder text ------------------------------------------------------------------------

class TestTextCommand:
    def test_queued_then_sent_by_the_worker(self, env, tmp_path, client, database_url, app, fake_api):
        result = run(env, tmp_path, "text", "+1 415 555 0123", "Your table is ready")
        assert result.returncode == 0, result.stderr
        kind, message_id = result.stdout.split()
        assert kind == "queued"
        assert query(database_url, "SELECT public_id, dst, text, sent_by, sent_via FROM outbox") == [
            (message_id, SENDER, "Your table is ready", "cli", "cli")]
        drain(app)
        assert fake_api.accepted[0]["text"] == "Your table is ready"

    def test_at_schedules_in_local_time_and_media_makes_an_mms(self, env, tmp_path, client, database_url):
        tokyo = ZoneInfo("Asia/Tokyo")
        at = (datetime.now(tokyo) + timedelta(hours=2)).replace(microsecond=0)
        result = run({**env, "TZ": "Asia/Tokyo"}, tmp_path, "text", "--from", OTHER_NUMBER, "--at",
                     at.replace(tzinfo=None).isoformat(), "--media", "https://x.example/a.jpg", SENDER, "")
        assert result.returncode == 0, result.stderr
        kind, message_id, word, when = result.stdout.split()
        assert (kind, word, when) == ("scheduled", "at", at.isoformat())  # 2 hours ahead in Tokyo: +09:00
        assert query(database_url, "SELECT public_id, src, status, media_urls FROM outbox") == [
            (message_id, OTHER_NUMBER, "scheduled", '["https://x.example/a.jpg"]')]

    def test_an_opted_out_recipient_is_exit_1_with_one_line(self, env, tmp_path, client, database_url):
        post(client, inbound(Text="STOP"))
        result = run(env, tmp_path, "text", SENDER, "sale!")
        assert (result.returncode, result.stdout, result.stderr.splitlines()) == (
            1, "", [f"not sent: +{SENDER} has opted out of {OUR_NUMBER}"])
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]

    @pytest.mark.parametrize("args,line", [
        (["call-me", "hi"], "sms_responder: NUMBER: 'call-me' is not a phone number of 3 to 20 digits"),
        ([SENDER, "hi", "--from", "14155550999"], "sms_responder: --from: must be one of PLIVO_NUMBER"),
        ([SENDER, "hi", "--at", "tomorrow"], "sms_responder: --at: 'tomorrow' is not an ISO 8601 time such as "
                                             "2026-12-24T09:00"),
        ([SENDER, "hi", "--at", "2020-01-01T09:00"], "sms_responder: --at: is in the past"),
        ([SENDER, "hi", "--media", "ftp://x.example/a.jpg"],
         "sms_responder: --media: 'ftp://x.example/a.jpg' is not an https:// URL"),
        ([SENDER, ""], "sms_responder: TEXT: required (unless media_urls has a URL)"),
    ], ids=["number", "from", "at", "past", "media", "empty"])
    def test_bad_arguments_are_one_line_and_exit_2(self, env, tmp_path, client, args, line):
        result = run(env, tmp_path, "text", *args)
        assert (result.returncode, result.stderr.splitlines()) == (2, [line])

    def test_without_plivo_auth_id_it_stops(self, env, tmp_path, client):
        result = run({**env, "PLIVO_AUTH_ID": ""}, tmp_path, "text", SENDER, "hi")
        assert (result.returncode, result.stderr.splitlines()) == (
            2, ["sms_responder: PLIVO_AUTH_ID is required to send through the Plivo REST API (text)"])


# -- GET /api/openapi.json -------------------------------------------------------------------------

class TestOpenAPI:
    @pytest.fixture
    def document(self, client):
        answer = client.get(api.OPENAPI_PATH, status=200)  # no token needed
        assert answer.content_type == "application/json"
        return answer.json

    def test_it_is_a_valid_openapi_3_1_document(self, document):
        from openapi_spec_validator import validate
        from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
        assert document["openapi"] == "3.1.0"
        validate(document)  # raises on any error
        broken = json.loads(json.dumps(document))
        broken["paths"]["/api/messages"]["post"]["responses"]["202"] = {"content": "no description, no media"}
        with pytest.raises(OpenAPIValidationError):  # the validator does find errors
            validate(broken)

    def test_it_describes_every_route_and_status_the_service_answers(self, document):
        operations = {(path, method) for path, item in document["paths"].items() for method in item
                      if method in ("get", "post", "delete")}
        assert operations == {("/api/messages", "post"), ("/api/messages", "get"), ("/api/messages/{id}", "get"),
                              ("/api/messages/{id}", "delete"), ("/api/openapi.json", "get"),
                              ("/api/verifications", "post"), ("/api/verifications/{id}", "get"),
                              ("/api/verifications/{id}", "delete"), ("/api/verifications/{id}/check", "post")}
        assert set(document["paths"]["/api/messages"]["post"]["responses"]) == {
            "202", "400", "401", "403", "409", "413", "415", "429", "503"}

    def test_every_example_against_the_running_service(self, document, services, env, tmp_path):
        """Each request example is sent to a real server; each answer has a documented status and matches
        that status's schema; each documented answer example matches its own schema."""
        import jsonschema

        def check(schema, instance):  # the document's components at the root: its #/components refs resolve
            jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(instance)

        for item in document["paths"].values():
            for method, operation in item.items():
                if method == "parameters":  # the path's own parameters, not an operation
                    continue
                for answer in operation["responses"].values():
                    content = answer.get("content", {}).get("application/json", {})
                    if "example" in content:
                        check(content["schema"], content["example"])
        service = services(env)
        token = run(env, tmp_path, "tokens", "add", "examples", "--scope", "send,read").stdout.strip()
        post_op = document["paths"]["/api/messages"]["post"]
        created = []
        for name, example in post_op["requestBody"]["content"]["application/json"]["examples"].items():
            body = dict(example["value"])
            if "send_at" in body:  # the example's date may have passed: the same time of day, tomorrow
                body["send_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            status, answer = http(service, "POST", API, token, body)
            assert str(status) in post_op["responses"], (name, status, answer)
            check(post_op["responses"][str(status)]["content"]["application/json"]["schema"], json.loads(answer))
            created.append(json.loads(answer)["id"])
        get_op = document["paths"]["/api/messages/{id}"]["get"]
        for message_id in created:
            status, answer = http(service, "GET", f"{API}/{message_id}", token)
            check(get_op["responses"][str(status)]["content"]["application/json"]["schema"], json.loads(answer))
        list_op = document["paths"]["/api/messages"]["get"]
        params = {parameter["name"]: parameter["example"] for parameter in list_op["parameters"]}
        status, answer = http(service, "GET", f"{API}?{urllib.parse.urlencode(params)}", token)
        check(list_op["responses"][str(status)]["content"]["application/json"]["schema"], json.loads(answer))
        status, _ = http(service, "DELETE", f"{API}/{created[1]}", token)  # the scheduled one
        assert str(status) in document["paths"]["/api/messages/{id}"]["delete"]["responses"] and status == 204


# -- Hostile input ----------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(["to", "text", "from", "media_urls", "send_at", "colour"]), JSON_VALUES,
                    max_size=6),
    st.fixed_dictionaries({"to": st.sampled_from([SENDER, "+1 415 555 0123", OUR_NUMBER, "x"]),
                           "text": st.text(max_size=1700)},
                          optional={"media_urls": st.lists(st.text(max_size=30), max_size=12),
                                    "send_at": st.text(max_size=40), "from": st.text(max_size=20)}),
    JSON_VALUES)


class TestHostileInput:
    # Fixtures per test, not per example: each example counts rows before and after. Each backend runs on an
    # instance of its own (differing executors); the test keeps nothing on self.
    @settings(max_examples=400, deadline=None, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.differing_executors])
    @given(body=BODIES, raw=st.binary(max_size=200), use_raw=st.booleans(),
           authorization=st.sampled_from(["valid", "none", "wrong", "garbage"]))
    def test_no_body_gets_a_500_and_no_unauthenticated_request_queues(self, hostile_app, body, raw, use_raw,
                                                                       authorization):
        client, token, database_url = hostile_app
        header = {"valid": f"Bearer {token}", "none": None, "wrong": "Bearer smsr_" + "A" * 43,
                  "garbage": "Bearer \u00ff\u00fe"}[authorization]
        data = raw if use_raw else json.dumps(body).encode()
        before = query(database_url, "SELECT count(*) FROM outbox")[0][0]
        headers = {"Content-Type": "application/json", **({"Authorization": header} if header else {})}
        answer = client.post(API, data, headers=headers, expect_errors=True)
        assert answer.status_int in (202, 400, 401, 409, 429), (answer.status, answer.body)
        assert answer.content_type == "application/json"
        after = query(database_url, "SELECT count(*) FROM outbox")[0][0]
        assert after == before + (answer.status_int == 202)
        if authorization != "valid":
            assert answer.status_int == 401

    @pytest.fixture
    def hostile_app(self, app, client, token, database_url):
        return client, token, database_url

    def test_tokens_are_compared_in_constant_time_after_a_lookup_by_digest(self, app, token, monkeypatch):
        compared, statements = [], []
        real = sms_responder.hmac.compare_digest
        monkeypatch.setattr(sms_responder.hmac, "compare_digest",
                            lambda a, b: compared.append((a, b)) or real(a, b))

        class Spy:
            def __init__(self, tx):
                self.tx = tx

            def __getattr__(self, name):
                return getattr(self.tx, name)

            def execute(self, sql, params=()):
                statements.append((sql, params))
                return self.tx.execute(sql, params)

        with app.store.transaction() as tx:
            assert api.token_holder(Spy(tx), token, time.time()).name == "orders"
            assert api.token_holder(Spy(tx), token[:-1] + "x", time.time()) is None
        digest = sms_responder.token_digest(token)
        assert compared == [(digest, digest)]  # the match is confirmed by compare_digest
        assert all(token not in str(params) for _, params in statements)  # the token never reaches SQL


# -- The log -------------------------------------------------------------------------------------

class TestLogging:
    def test_one_line_per_request_with_method_path_status_token_and_recipient(self, client, token, logs):
        send(client, token, {"to": SENDER, "text": "secret plans"})
        send(client, "smsr_wrong", {"to": SENDER, "text": "x"}, status=401)
        lines = [line for line in logs().splitlines() if " api " in line]
        assert len(lines) == 2
        assert " INFO api method=POST path=/api/messages status=202 token=orders recipient=***0123 ms=" in lines[0]
        assert " status=401 " in lines[1] and "token=" not in lines[1]
        assert token not in logs() and "secret plans" not in logs()


# -- The operating commands show outbound messages ---------------------------------------------

class TestOperating:
    def test_messages_lists_both_directions_in_time_order(self, client, token, env, tmp_path):
        post(client, inbound(Text="Is it ready?"))
        created = send(client, token, {"to": SENDER, "text": "Yes!", "media_urls": ["https://x.example/a.jpg"]}).json
        post(client, inbound(Text="Great"))
        lines = [json.loads(line) for line in run(env, tmp_path, "messages", "--json").stdout.splitlines()]
        assert [(line["direction"], line["text"]) for line in lines] == [
            ("in", "Is it ready?"), ("out", "Yes!"), ("in", "Great")]
        assert lines[1] == {"direction": "out", **client.get(f"{API}/{created['id']}", headers=bearer(token)).json}
        text = run(env, tmp_path, "messages").stdout.splitlines()
        assert text[2].split()[2:5] == [OUR_NUMBER, SENDER, "queued"]
        assert text[2].endswith("[out] Yes! [+1 media] (by orders)")
        assert [json.loads(line)["direction"] for line in run(
            env, tmp_path, "messages", "--json", "--to", SENDER).stdout.splitlines()] == ["out"]

    def test_stats_counts_outbound_messages_per_status(self, app, client, token, env, tmp_path):
        send(client, token, {"to": SENDER, "text": "one"})
        send(client, token, {"to": SENDER, "text": "two", "send_at": in_minutes(30)})
        drain(app)
        report = json.loads(run(env, tmp_path, "stats", "--json").stdout)
        assert report["outbound"] == {"scheduled": 1, "sent": 1}
        assert "outbound" in run(env, tmp_path, "stats").stdout

    def test_purge_erases_an_outbound_messages_text_media_and_numbers(self, app, client, token, env, tmp_path,
                                                                      database_url):
        sent = send(client, token, {"to": SENDER, "text": "old", "media_urls": ["https://x.example/a.jpg"]}).json
        waiting = send(client, token, {"to": SENDER, "text": "waiting", "send_at": in_minutes(60)}).json
        drain(app)
        TestCreate.backdate_outbox(database_url, hours=49)
        send(client, token, {"to": SENDER, "text": "new"})
        assert run(env, tmp_path, "purge", "--days", "2").stdout.strip() == "purged 1 messages"
        old = client.get(f"{API}/{sent['id']}", headers=bearer(token)).json
        assert (old["to"], old["from"], old["text"], old["media_urls"], old["status"]) == (None, None, None, [], "sent")
        assert client.get(f"{API}/{waiting['id']}", headers=bearer(token)).json["text"] == "waiting"
        assert "(purged)" in run(env, tmp_path, "messages").stdout

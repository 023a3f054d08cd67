"""Slow replies: REPLY_MODE=api, the outbox, its workers, and delivery reports.

The Plivo REST API cannot be reached from here, so fake_plivo_api.FakePlivoAPI plays
it: a real HTTP server on 127.0.0.1 that checks the path, Basic auth and JSON body as
Plivo documents them. Everything else is real: SQLite files, worker processes,
kill -9, SDK-signed delivery reports.
"""

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import webtest

import sms_responder
from conftest import query
from sms_responder import OutboxWorker
from test_sms_responder import (AUTH_ID, AUTH_TOKEN, OUR_NUMBER, SENDER, WEBHOOK_PATH, count, inbound, post, reply_of, signed,
                                signed_v2)

PUBLIC_URL = "https://sms.example.com"
STATUS_PATH = sms_responder.STATUS_PATH
STATUS_URL = f"http://localhost:80{STATUS_PATH}"


# -- Fixtures and helpers -----------------------------------------------------

@pytest.fixture
def api_settings(fake_api):
    return {"reply_mode": "api", "plivo_auth_id": AUTH_ID, "plivo_api_url": fake_api.url}


@pytest.fixture
def app(make_app, api_settings):
    return make_app(**api_settings)


@pytest.fixture
def client(app):
    return webtest.TestApp(app)


@pytest.fixture
def worker(app):
    return OutboxWorker(app)


def outbox(db, message_uuid=None):
    """The outbox rows (of one inbound message), as dicts."""
    if message_uuid:
        return [dict(row) for row in db.execute("SELECT * FROM outbox WHERE message_uuid = ?", (message_uuid,))]
    return [dict(row) for row in db.execute("SELECT * FROM outbox ORDER BY queued_at")]


def work_until(worker, done, timeout=15):
    """Let the worker send due rows until done() is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the outbox did not get there in time"
        if not worker.send_next():
            time.sleep(0.05)


def report(client, plivo_message_uuid, status, error_code="", expected=200):
    form = {"MessageUUID": plivo_message_uuid, "Status": status, "ErrorCode": error_code, "To": SENDER,
            "From": OUR_NUMBER, "Type": "sms", "Units": "1"}
    return client.post(STATUS_PATH, form, headers=signed(form, url=STATUS_URL), status=expected)


# -- The webhook in api mode ----------------------------------------------------

class TestApiModeWebhook:
    def test_answers_an_empty_response_at_once_and_queues_the_reply(self, client, db):
        form = inbound(Text="hello")
        assert reply_of(post(client, form)) is None
        [row] = outbox(db)
        assert (row["message_uuid"], row["status"], row["src"], row["dst"], row["text"], row["attempts"]) == (
            form["MessageUUID"], "queued", OUR_NUMBER, SENDER, None, 0)
        assert db.execute("SELECT outcome FROM messages").fetchone()[0] == "replied"

    def test_reply_function_does_not_run_in_the_request(self, make_app, api_settings):
        calls = []
        client = webtest.TestApp(make_app(**api_settings, reply=lambda message: calls.append(message) or "late"))
        started = time.monotonic()
        post(client, inbound())
        assert calls == [] and time.monotonic() - started < 1

    @pytest.mark.parametrize("text,expected", [
        ("STOP", sms_responder.DEFAULT_STOP_TEXT), ("HELP", sms_responder.DEFAULT_HELP_TEXT)])
    def test_confirmations_are_queued_with_their_text(self, client, db, text, expected):
        assert reply_of(post(client, inbound(Text=text))) is None
        assert outbox(db)[0]["text"] == expected

    def test_reply_limit_applies(self, make_app, api_settings, db):
        client = webtest.TestApp(make_app(**api_settings, reply_limit=1))
        post(client, inbound())
        post(client, inbound())
        assert count(db, "outbox") == 1

    def test_nothing_is_queued_for_an_opted_out_sender(self, client, db):
        post(client, inbound(Text="STOP"))
        post(client, inbound(Text="hello?"))
        assert [row["text"] for row in outbox(db)] == [sms_responder.DEFAULT_STOP_TEXT]

    def test_duplicates_queue_nothing(self, client, db):
        form = inbound()
        post(client, form)
        post(client, form)
        assert count(db, "outbox") == 1


# -- The worker ---------------------------------------------------------------------

class TestWorker:
    def test_reply_is_sent_once_as_plivo_documents(self, make_app, api_settings, fake_api, database_url):
        app = make_app(**api_settings, public_url=PUBLIC_URL)
        worker = OutboxWorker(app)
        form = inbound(Text="hello")
        post(webtest.TestApp(app), form, headers=signed(form, url=f"{PUBLIC_URL}{WEBHOOK_PATH}"))
        assert worker.send_next() is True
        assert worker.send_next() is False
        [request] = fake_api.requests
        assert request["path"] == f"/v1/Account/{AUTH_ID}/Message/"
        assert request["body"] == {"src": OUR_NUMBER, "dst": SENDER, "text": "You said: hello", "type": "sms",
                                   "url": f"{PUBLIC_URL}{STATUS_PATH}"}
        [(status, attempts, plivo_uuid, reply)] = query(database_url, "SELECT status, attempts, plivo_message_uuid,"
                                                        " reply FROM outbox JOIN messages USING (message_uuid)")
        assert (status, attempts, reply) == ("sent", 1, "You said: hello") and plivo_uuid

    def test_no_status_callback_url_without_public_url(self, client, worker, fake_api):
        post(client, inbound())
        worker.send_next()
        assert "url" not in fake_api.requests[0]["body"]

    def test_server_error_then_success_sends_once(self, client, worker, fake_api, db):
        fake_api.answers = [500]
        post(client, inbound())
        work_until(worker, lambda: outbox(db)[0]["status"] == "sent")
        assert [request["body"]["text"] for request in fake_api.requests] == ["You said: hello"] * 2
        assert len(fake_api.accepted) == 1
        assert outbox(db)[0]["attempts"] == 2

    def test_too_many_requests_is_retried_after_retry_after(self, client, worker, fake_api, db):
        fake_api.answers = [429]
        post(client, inbound())
        worker.send_next()
        [row] = outbox(db)
        assert (row["status"], row["error"]) == ("queued", "429 scripted 429")
        assert row["next_attempt_at"] - time.time() > 0.5  # Retry-After: 1
        work_until(worker, lambda: outbox(db)[0]["status"] == "sent")

    @pytest.mark.parametrize("answer", [400, 401, 404])
    def test_other_client_errors_fail_without_retry(self, client, worker, fake_api, db, answer):
        fake_api.answers = [answer]
        post(client, inbound())
        worker.send_next()
        [row] = outbox(db)
        assert (row["status"], row["error"]) == ("failed", f"{answer} scripted {answer}")
        assert worker.send_next() is False and len(fake_api.requests) == 1

    def test_plivos_own_error_is_recorded(self, make_app, api_settings, fake_api, db):
        worker = OutboxWorker(make_app(**{**api_settings, "plivo_auth_id": "MAWRONGAUTHID0000001"}))
        post(webtest.TestApp(worker.app), inbound())
        worker.send_next()
        assert outbox(db)[0]["error"] == "404 not found"  # the auth id is part of the path

    def test_timeout_is_retried(self, client, worker, fake_api, db, monkeypatch):
        monkeypatch.setattr(sms_responder, "API_TIMEOUT", 0.5)  # the real 10 s, shortened for the test
        fake_api.answers = ["hang"]
        post(client, inbound())
        worker.send_next()
        assert outbox(db)[0]["status"] == "queued" and "timed out" in outbox(db)[0]["error"]
        work_until(worker, lambda: outbox(db)[0]["status"] == "sent")

    def test_network_error_is_retried_with_backoff(self, make_app, api_settings, db):
        worker = OutboxWorker(make_app(**{**api_settings, "plivo_api_url": "http://127.0.0.1:9"}))
        post(webtest.TestApp(worker.app), inbound())
        before = time.time()
        worker.send_next()
        [row] = outbox(db)
        assert (row["status"], row["attempts"]) == ("queued", 1) and row["error"].startswith("network")
        assert before + 1 <= row["next_attempt_at"] <= time.time() + 1.25

    def test_gives_up_after_send_max_attempts(self, make_app, api_settings, fake_api, db):
        worker = OutboxWorker(make_app(**api_settings, send_max_attempts=2))
        fake_api.answers = [500, 500, 500]
        post(webtest.TestApp(worker.app), inbound())
        work_until(worker, lambda: outbox(db)[0]["status"] == "failed")
        assert len(fake_api.requests) == 2 and outbox(db)[0]["attempts"] == 2

    @pytest.mark.parametrize("attempts", range(1, 10))
    def test_backoff_is_exponential_from_one_second_to_sixty_with_jitter(self, attempts):
        delays = [sms_responder.retry_delay(attempts) for _ in range(200)]
        base = min(60.0, 2.0 ** (attempts - 1))
        assert all(base <= delay <= min(60.0, base * 1.25) for delay in delays)
        assert len(set(delays)) > 1 or base == 60.0

    def test_reply_queued_before_a_stop_is_not_sent_after_it(self, client, worker, fake_api, db):
        post(client, inbound(Text="hello"))
        post(client, inbound(Text="STOP"))
        work_until(worker, lambda: all(row["status"] in ("sent", "cancelled") for row in outbox(db)))
        assert [row["status"] for row in outbox(db)] == ["cancelled", "sent"]
        assert [payload["text"] for payload in fake_api.accepted] == [sms_responder.DEFAULT_STOP_TEXT]

    def test_help_after_a_stop_is_still_sent(self, client, worker, fake_api, db):
        post(client, inbound(Text="STOP"))
        post(client, inbound(Text="HELP"))
        work_until(worker, lambda: all(row["status"] == "sent" for row in outbox(db)))

    def test_reply_function_runs_in_the_worker(self, make_app, api_settings, fake_api, db):
        seen = []

        def slow_reply(message):
            seen.append((message.sender, message.text))
            time.sleep(0.2)
            return f"thought about {message.text!r}"

        worker = OutboxWorker(make_app(**api_settings, reply=slow_reply))
        post(webtest.TestApp(worker.app), inbound(Text="life"))
        worker.send_next()
        assert seen == [(SENDER, "life")]
        assert fake_api.accepted[0]["text"] == "thought about 'life'"

    def test_no_reply_from_the_reply_function_cancels(self, make_app, api_settings, fake_api, db):
        worker = OutboxWorker(make_app(**api_settings, reply=lambda message: None))
        post(webtest.TestApp(worker.app), inbound())
        worker.send_next()
        assert outbox(db)[0]["status"] == "cancelled" and fake_api.requests == []

    def test_failing_reply_function_is_retried(self, make_app, api_settings, fake_api, db):
        failures = [RuntimeError("model offline")]

        def flaky(message):
            if failures:
                raise failures.pop()
            return "back"

        worker = OutboxWorker(make_app(**api_settings, reply=flaky))
        post(webtest.TestApp(worker.app), inbound())
        worker.send_next()
        assert (outbox(db)[0]["status"], outbox(db)[0]["error"]) == ("queued", "the reply function failed")
        work_until(worker, lambda: outbox(db)[0]["status"] == "sent")

    def test_a_lost_claim_is_not_sent(self, client, app, fake_api, db):
        post(client, inbound())
        with app.store.transaction() as tx:
            first = sms_responder.claim_due(tx, time.time())
        with app.store.transaction() as tx:  # the first worker stalls past its lease: another claims the row
            second = sms_responder.claim_due(tx, time.time() + sms_responder.OUTBOX_LEASE + 1)
        with app.store.transaction() as tx:
            assert sms_responder.prepare_send(tx, first, "stale", time.time()) is False
            assert sms_responder.prepare_send(tx, second, "fresh", time.time()) is True

    def test_attempts_of_dead_workers_count(self, make_app, api_settings, fake_api, db):
        app = make_app(**api_settings, send_max_attempts=2)
        post(webtest.TestApp(app), inbound())
        with app.store.transaction() as tx:  # two claims whose workers died (their leases ran out)
            sms_responder.claim_due(tx, time.time())
            sms_responder.claim_due(tx, time.time() + sms_responder.OUTBOX_LEASE + 1)
        db.execute("UPDATE outbox SET next_attempt_at = 0")
        db.commit()
        OutboxWorker(app).send_next()
        assert outbox(db)[0]["status"] == "failed" and fake_api.requests == []


# -- Delivery reports ---------------------------------------------------------------

@pytest.fixture
def sent(client, worker, db):
    """A reply sent through the fake API; its Plivo message UUID."""
    post(client, inbound())
    worker.send_next()
    return outbox(db)[0]["plivo_message_uuid"]


class TestDeliveryReports:
    def test_report_is_stored_and_moves_the_row(self, client, sent, db):
        response = report(client, sent, "delivered")
        assert response.body == b""
        assert outbox(db)[0]["status"] == "delivered"
        rows = db.execute("SELECT plivo_message_uuid, status, error_code FROM delivery_reports").fetchall()
        assert [tuple(row) for row in rows] == [(sent, "delivered", "")]

    def test_repeats_are_idempotent(self, client, sent, db):
        for _ in range(3):
            report(client, sent, "delivered")
        assert count(db, "delivery_reports") == 1 and outbox(db)[0]["status"] == "delivered"

    @pytest.mark.parametrize("sequence,final", [
        (["delivered", "sent"], "delivered"), (["delivered", "undelivered"], "delivered"),
        (["undelivered", "delivered"], "undelivered"), (["queued"], "sent"), (["sent", "queued"], "sent"),
        (["queued", "sent", "delivered"], "delivered"), (["rejected"], "failed"), (["read"], "sent")])
    def test_a_report_never_moves_a_row_back(self, client, sent, db, sequence, final):
        for status in sequence:
            report(client, sent, status)
        assert outbox(db)[0]["status"] == final

    def test_error_code_is_recorded(self, client, sent, db):
        report(client, sent, "undelivered", "30")
        assert (outbox(db)[0]["status"], outbox(db)[0]["error"]) == ("undelivered", "30")

    def test_report_that_arrives_before_the_send_is_recorded(self, app, client, db):
        post(client, inbound())
        with app.store.transaction() as tx:
            row = sms_responder.claim_due(tx, time.time())
            sms_responder.add_delivery_report(tx, sms_responder.DeliveryReport("plivo-1", "delivered", ""), time.time(), None)
        with app.store.transaction() as tx:
            sms_responder.finish_attempt(tx, row, "sent", plivo_message_uuid="plivo-1")
        assert outbox(db)[0]["status"] == "delivered"

    def test_unknown_uuid_is_stored_and_answered(self, client, db):
        report(client, "never-sent-by-us", "delivered")
        assert count(db, "delivery_reports") == 1

    def test_unsigned_report_is_403_and_stores_nothing(self, client, sent, db):
        client.post(STATUS_PATH, {"MessageUUID": sent, "Status": "failed"}, status=403)
        assert count(db, "delivery_reports") == 0 and outbox(db)[0]["status"] == "sent"

    def test_v2_signed_report(self, client, sent, db):
        form = {"MessageUUID": sent, "Status": "delivered"}
        client.post(STATUS_PATH, form, headers=signed_v2(url=STATUS_URL), status=200)
        assert outbox(db)[0]["status"] == "delivered"

    def test_missing_status_is_400(self, client):
        form = {"MessageUUID": "x"}
        client.post(STATUS_PATH, form, headers=signed(form, url=STATUS_URL), status=400)


# -- Real worker processes -------------------------------------------------------

@pytest.fixture
def worker_env(database_url, fake_api):
    return {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "PLIVO_AUTH_ID": AUTH_ID,
            "PLIVO_API_URL": fake_api.url, "REPLY_MODE": "api", "DATABASE_URL": database_url}


def queue_messages(env, count_, **fields):
    """Queue replies through the api-mode webhook of an app on the workers' database."""
    app = sms_responder.create_app({key: value for key, value in env.items()})
    client = webtest.TestApp(app)
    forms = [inbound(From=f"1415{i:07d}", Text=f"message {i}", **fields) for i in range(count_)]
    for form in forms:
        post(client, form)
    app.store.close()
    return forms


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def statuses(database_url):
    return dict(query(database_url, "SELECT status, count(*) FROM outbox GROUP BY status"))


class TestWorkerProcesses:
    def test_worker_without_auth_id_exits_2(self, services, worker_env):
        service = services({**worker_env, "PLIVO_AUTH_ID": ""}, kind="worker")
        assert service.process.wait(timeout=30) == 2
        assert service.log().strip() == ("sms_responder: PLIVO_AUTH_ID is required to send through the Plivo REST API"
                                         " (worker, --with-worker)")

    def test_serve_with_worker_exits_when_it_cannot_serve(self, services, worker_env, tmp_path):
        taken = services(worker_env)  # holds the port
        result = subprocess.run([sys.executable, str(sms_responder.__file__), "--port", str(taken.port),
                                 "--with-worker"], env={"PATH": os.environ["PATH"], **worker_env}, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)  # a worker thread left running would hang
        assert result.returncode == 1 and "cannot start" in result.stderr

    def test_serve_with_worker_without_auth_id_exits_2(self, worker_env, tmp_path):
        result = subprocess.run([sys.executable, str(sms_responder.__file__), "--with-worker"],
                                env={"PATH": os.environ["PATH"], **worker_env, "PLIVO_AUTH_ID": ""}, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and "PLIVO_AUTH_ID is required" in result.stderr

    def test_serve_with_worker_sends_within_two_seconds(self, services, worker_env, fake_api, figures):
        service = services(worker_env, "--with-worker")
        form = inbound(Text="quick")
        url = f"{service.url}{WEBHOOK_PATH}"
        body = urllib.parse.urlencode(form).encode()
        started = time.monotonic()
        request = urllib.request.Request(url, data=body, headers={**signed(form, url=url),
                                                                  "Content-Type": sms_responder.FORM_CONTENT_TYPE})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.read() == b"<Response></Response>"
        wait_for(lambda: fake_api.accepted, 2, "the reply to reach the API")
        figures["with-worker pick-up"] = {"seconds": round(time.monotonic() - started, 2)}
        assert fake_api.accepted[0]["text"] == "You said: quick"
        assert service.stop() == 0

    def test_two_workers_never_send_a_row_twice(self, services, worker_env, fake_api, database_url, backend, figures):
        forms = queue_messages(worker_env, 500)
        started = time.monotonic()
        workers = [services(worker_env, kind="worker") for _ in range(2)]
        wait_for(lambda: statuses(database_url) == {"sent": 500}, 120, "500 rows sent")
        elapsed = time.monotonic() - started
        assert [worker.stop() for worker in workers] == [0, 0]
        texts = sorted(payload["text"] for payload in fake_api.accepted)
        assert texts == sorted(f"You said: {form['Text']}" for form in forms)  # each once, none twice
        assert len(fake_api.requests) == 500
        logs = [worker.log() for worker in workers]
        shares = [log.count("outcome=sent") for log in logs]
        assert sum(shares) == 500 and min(shares) > 0  # both workers took part
        figures[f"two workers, 500 rows, {backend}"] = {"sent": 500, "duplicates": 0, "per_worker": shares,
                                            "seconds": round(elapsed, 1)}

    def test_own_program_brings_its_reply_function_to_the_worker(self, services, worker_env, fake_api, tmp_path):
        program = tmp_path / "myapp.py"
        program.write_text("import sys\nimport sms_responder\n\n"
                           "def reply(message):\n    return f'{message.text.upper()} from my program'\n\n"
                           "if __name__ == '__main__':\n    sys.exit(sms_responder.main(reply=reply))\n")
        queue_messages(worker_env, 1)
        worker = services(worker_env, kind="worker", program=program)
        wait_for(lambda: fake_api.accepted, 10, "the reply")
        assert fake_api.accepted[0]["text"] == "MESSAGE 0 from my program"
        assert worker.stop() == 0

    @pytest.mark.slow
    def test_kill_9_mid_send_is_sent_once_after_the_lease(self, services, worker_env, fake_api, database_url, backend,
                                                          figures):
        queue_messages(worker_env, 1)
        fake_api.answers = ["hang"]
        first = services(worker_env, kind="worker")
        wait_for(lambda: fake_api.requests, 10, "the first attempt")
        killed_at = time.monotonic()
        first.stop(sms_responder.signal.SIGKILL)
        fake_api.release.set()  # the hung request ends; Plivo never answered it
        second = services(worker_env, kind="worker")
        wait_for(lambda: statuses(database_url) == {"sent": 1}, sms_responder.OUTBOX_LEASE + 15, "the resend")
        waited = time.monotonic() - killed_at
        assert waited > sms_responder.OUTBOX_LEASE - 5  # only once the dead worker's lease ran out
        assert len(fake_api.requests) == 2 and len(fake_api.accepted) == 1
        assert query(database_url, "SELECT attempts FROM outbox") == [(2,)]
        assert second.stop() == 0
        figures[f"worker kill -9 mid-send, {backend}"] = {"attempts": 2, "accepted_by_api": 1,
                                                          "resent_after_s": round(waited, 1)}

"""The team inbox (the contract's section "The team inbox"), on SQLite and PostgreSQL.

`users` runs as a program. What one process decides (sessions, CSRF, headers, the list and a
conversation, answering) is checked in process with webtest; what crosses processes (ending a
session on every host, the login lockout) through real servers. The page itself is tested in a
real browser in test_inbox_browser.py.
"""

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import webtest

import sms_responder
from sms_responder_surfaces import inbox, people
from conftest import MODULE, connect, query
from test_sms_responder import AUTH_ID, AUTH_TOKEN, OUR_NUMBER, SENDER, inbound, post

OWNER = "14155550188"
PASSWORD = "correct horse battery staple"
INBOX = inbox.INBOX_PATH
CONVERSATION = f"{INBOX}/conversations/{SENDER}/{OUR_NUMBER}"


# -- Helpers -----------------------------------------------------------------

@pytest.fixture
def env(database_url, fake_api):
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
            "DATABASE_URL": database_url, "PLIVO_AUTH_ID": AUTH_ID, "PLIVO_API_URL": fake_api.url,
            "FORWARD_TO": OWNER, "TZ": "UTC"}


def run(env, cwd, *args, stdin=""):
    return subprocess.run([sys.executable, str(MODULE), *args], env=env, cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def app(make_app, fake_api):
    application = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url, forward_to=OWNER)
    application.store.ping()
    return application


def add_person(app, name="alice", password=PASSWORD):
    with app.store.transaction() as tx:
        people.add_person(tx, name, password, time.time())


@pytest.fixture
def client(app):
    """A browser-like client with alice logged in."""
    add_person(app)
    browser = webtest.TestApp(app)
    log_in(browser)
    return browser


def log_in(browser, name="alice", password=PASSWORD, status=303):
    return browser.post(f"{INBOX}/login", {"name": name, "password": password}, status=status)


def csrf_of(page):
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def csrf(browser):
    return csrf_of(browser.get(INBOX))


def customer_says(browser, text, **fields):
    """A customer's message through the real webhook; its MessageUUID."""
    form = inbound(**{"Text": text, **fields})
    post(browser, form)
    return form["MessageUUID"]


def stored_time(database_url, moment):
    return moment.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else moment


# -- People --------------------------------------------------------------------------------------

class TestPeople:
    def test_add_reads_a_password_from_standard_input_and_stores_only_a_slow_hash(self, env, tmp_path, app,
                                                                                 database_url):
        result = run(env, tmp_path, "users", "add", "alice", stdin=PASSWORD + "\n")
        assert (result.returncode, result.stdout.strip()) == (0, "alice may log in to the inbox"), result.stderr
        stored = query(database_url, "SELECT name, password FROM users")
        assert stored[0][0] == "alice" and stored[0][1].startswith("$argon2id$") and PASSWORD not in str(stored)
        log_in(webtest.TestApp(app))

    def test_the_password_needs_12_characters_and_a_name_is_checked(self, env, tmp_path, app, database_url):
        short = run(env, tmp_path, "users", "add", "alice", stdin="short pw\n")
        assert (short.returncode, short.stderr.splitlines()) == (
            2, ["sms_responder: the password must have at least 12 characters"])
        bad = run(env, tmp_path, "users", "add", "al ice", stdin=PASSWORD + "\n")
        assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
        assert query(database_url, "SELECT count(*) FROM users") == [(0,)]

    def test_list_remove_and_password(self, env, tmp_path, app, database_url):
        run(env, tmp_path, "users", "add", "alice", stdin=PASSWORD + "\n")
        run(env, tmp_path, "users", "add", "bob", stdin=PASSWORD + "\n")
        assert [line.split()[0] for line in run(env, tmp_path, "users", "list").stdout.splitlines()] == ["alice", "bob"]
        assert run(env, tmp_path, "users", "add", "bob", stdin=PASSWORD + "\n").returncode == 2
        browser = webtest.TestApp(app)
        log_in(browser, "bob")
        assert run(env, tmp_path, "users", "password", "bob", stdin="a brand new password\n").returncode == 0
        browser.get(INBOX, status=303)  # bob's session ended
        log_in(browser, "bob", status=401)
        log_in(browser, "bob", "a brand new password")
        assert run(env, tmp_path, "users", "remove", "bob").returncode == 0
        browser.get(INBOX, status=303)
        assert query(database_url, "SELECT name FROM users") == [("alice",)]
        missing = run(env, tmp_path, "users", "remove", "carol")
        assert (missing.returncode, missing.stderr.splitlines()) == (2, ["sms_responder: there is no one called carol"])

    def test_removing_a_person_ends_their_sessions_on_every_host(self, services, env, tmp_path, backend):
        hosts = ([services(env, kind="gunicorn", workers=2) for _ in range(2)] if backend == "postgresql"
                 else [services(env, kind="gunicorn", workers=3)])
        run(env, tmp_path, "users", "add", "alice", stdin=PASSWORD + "\n")
        cookie = self.login(hosts[0])
        assert all(self.status(host, cookie) == 200 for host in hosts for _ in range(4))
        run(env, tmp_path, "users", "remove", "alice")
        assert all(self.status(host, cookie) == 303 for host in hosts for _ in range(4))

    @staticmethod
    def login(host):
        import http.client
        connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
        body = f"name=alice&password={PASSWORD.replace(' ', '+')}"
        connection.request("POST", f"{INBOX}/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        answer = connection.getresponse()
        assert answer.status == 303
        return answer.getheader("Set-Cookie").split(";")[0]

    @staticmethod
    def status(host, cookie):
        import http.client
        connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
        connection.request("GET", INBOX, headers={"Cookie": cookie})
        return connection.getresponse().status


# -- Login and sessions ------------------------------------------------------------------------

class TestLogin:
    def test_with_no_one_the_inbox_says_how_to_add_someone_and_nothing_else(self, app):
        browser = webtest.TestApp(app)
        page = browser.get(browser.get(INBOX, status=303).headers["Location"])
        assert "sms-responder users add NAME" in page.text and "<form" not in page.text

    def test_one_message_for_an_unknown_name_and_a_wrong_password(self, app):
        add_person(app)
        browser = webtest.TestApp(app)
        unknown, wrong = log_in(browser, "nobody", status=401), log_in(browser, "alice", "wrong password!!", 401)
        assert "Wrong name or password." in unknown.text and "Wrong name or password." in wrong.text
        assert unknown.text == wrong.text.replace('value="alice"', 'value="nobody"')

    def test_the_cookie_and_what_the_database_keeps(self, app, database_url):
        add_person(app)
        browser = webtest.TestApp(app)
        answer = log_in(browser)
        cookie = answer.headers["Set-Cookie"]
        token = cookie.split(";")[0].split("=", 1)[1]
        attributes = [part.strip() for part in cookie.split(";")[1:]]
        assert {"HttpOnly", "SameSite=Strict", "Path=/inbox"} <= set(attributes) and "Secure" not in attributes
        assert len(token) >= 43  # 32 random bytes
        assert query(database_url, "SELECT digest FROM sessions") == [(sms_responder.token_digest(token),)]
        second = log_in(webtest.TestApp(app)).headers["Set-Cookie"].split(";")[0]
        assert second != cookie.split(";")[0]  # a new login gets a new token

    def test_secure_when_public_url_is_https(self, make_app):
        app = make_app(public_url="https://sms.example.com")
        add_person(app)
        assert "Secure" in [part.strip() for part in log_in(webtest.TestApp(app)).headers["Set-Cookie"].split(";")]

    def test_logout_ends_the_session(self, client):
        token = client.cookies["sms_inbox"]
        client.post(f"{INBOX}/logout", {"csrf": csrf(client)}, status=303)
        client.set_cookie("sms_inbox", token)  # the old token is worth nothing now
        client.get(INBOX, status=303)

    def test_five_failures_lock_the_name_for_15_minutes_whatever_the_password(self, app, database_url):
        add_person(app)
        browser = webtest.TestApp(app)
        for _ in range(5):
            log_in(browser, "alice", "wrong password!!", 401)
        locked = log_in(browser, "alice", PASSWORD, 429)
        assert "wait 15 minutes" in locked.text
        connection = connect(database_url)
        with connection:  # 15 minutes later
            connection.execute("UPDATE login_failures SET failed_at = ?",
                               (stored_time(database_url, datetime.now(UTC) - timedelta(minutes=16)),))
        connection.close()
        log_in(browser)

    def test_an_unknown_name_costs_a_hash_check_like_a_wrong_password(self, app, monkeypatch):
        add_person(app)
        checked = []

        class Spy:
            def __init__(self, hasher):
                self.hasher = hasher

            def verify(self, hashed, password):
                checked.append(hashed)
                return self.hasher.verify(hashed, password)

            def __getattr__(self, name):
                return getattr(self.hasher, name)
        hasher = Spy(people.passwords())
        monkeypatch.setattr(people, "passwords", lambda: hasher)
        browser = webtest.TestApp(app)
        log_in(browser, "nobody", status=401)
        log_in(browser, "alice", "wrong password!!", status=401)
        assert len(checked) == 2 and all(hashed.startswith("$argon2id$") for hashed in checked)

    def test_racing_tries_are_counted_before_the_password_is_checked(self, services, env, tmp_path, figures, backend):
        import concurrent.futures
        import http.client
        service = services(env, kind="gunicorn", workers=3)
        run(env, tmp_path, "users", "add", "alice", stdin=PASSWORD + "\n")

        def attempt(_):
            connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
            connection.request("POST", f"{INBOX}/login", "name=alice&password=wrong+password+x",
                               {"Content-Type": "application/x-www-form-urlencoded"})
            return connection.getresponse().status
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            statuses = sorted(pool.map(attempt, range(12)))
        assert statuses == [401] * 5 + [429] * 7
        figures[f"login race, {backend}"] = {"tries": 12, "checked": 5, "refused": 7}

    def test_the_lockout_is_counted_in_the_database_across_hosts(self, services, env, tmp_path, backend):
        hosts = ([services(env, kind="stdlib") for _ in range(2)] if backend == "postgresql"
                 else [services(env, kind="gunicorn", workers=3)])
        run(env, tmp_path, "users", "add", "alice", stdin=PASSWORD + "\n")
        import http.client

        def attempt(host, password):
            connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=20)
            connection.request("POST", f"{INBOX}/login", f"name=alice&password={password}",
                               {"Content-Type": "application/x-www-form-urlencoded"})
            return connection.getresponse().status
        assert [attempt(hosts[i % len(hosts)], "wrong+password+x") for i in range(5)] == [401] * 5
        assert [attempt(host, PASSWORD.replace(" ", "+")) for host in hosts] == [429] * len(hosts)

    def test_a_session_ends_after_inbox_session_hours_idle_and_after_7_days(self, client, database_url):
        connection = connect(database_url)
        with connection:
            connection.execute("UPDATE sessions SET seen_at = ?",
                               (stored_time(database_url, datetime.now(UTC) - timedelta(hours=12, minutes=1)),))
        client.get(INBOX, status=303)
        log_in(client)
        with connection:
            connection.execute("UPDATE sessions SET created_at = ?",
                               (stored_time(database_url, datetime.now(UTC) - timedelta(days=7, minutes=1)),))
        connection.close()
        client.get(INBOX, status=303)


# -- Every route needs a session; every change a CSRF token; every page its headers ----------------

PAGES = [INBOX, f"{INBOX}/new", CONVERSATION, f"{CONVERSATION}/opt-out"]
DATA = [f"{INBOX}/updates", f"{INBOX}/segments?text=hi"]
ACTIONS = [f"{INBOX}/logout", f"{INBOX}/new", f"{CONVERSATION}/send", f"{CONVERSATION}/opt-out",
           f"{CONVERSATION}/opt-in"]


class TestAccess:
    @pytest.mark.parametrize("path", PAGES)
    def test_a_page_without_a_session_redirects_to_the_login_page(self, app, path):
        answer = webtest.TestApp(app).get(path, status=303)
        assert answer.headers["Location"] == f"{INBOX}/login"

    @pytest.mark.parametrize("path", DATA)
    def test_a_data_route_without_a_session_is_401(self, app, path):
        assert webtest.TestApp(app).get(path, status=401).json == {"error": "log in first"}

    @pytest.mark.parametrize("path", ACTIONS)
    def test_a_change_without_a_session_changes_nothing(self, app, path, database_url):
        webtest.TestApp(app).post(path, {"message": "hi", "number": SENDER}, status=303)
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]

    @pytest.mark.parametrize("path", ACTIONS)
    @pytest.mark.parametrize("token", ["missing", "wrong", "another session's"])
    def test_a_change_without_this_sessions_csrf_token_is_403(self, client, app, path, token, database_url):
        other = webtest.TestApp(app)
        log_in(other)
        value = {"missing": None, "wrong": "x" * 64, "another session's": csrf(other)}[token]
        form = {"message": "hi", "number": SENDER, **({"csrf": value} if value else {})}
        client.post(path, form, status=403)
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]
        assert query(database_url, "SELECT count(*) FROM consent_changes") == [(0,)]
        client.get(INBOX, status=200)  # still logged in

    @pytest.mark.parametrize("path", [*PAGES, f"{INBOX}/login"])
    def test_every_page_carries_the_security_headers(self, client, path):
        answer = client.get(path) if path != f"{INBOX}/login" else webtest.TestApp(client.app).get(path)
        policy = dict(part.strip().split(" ", 1) for part in answer.headers["Content-Security-Policy"].split(";"))
        assert policy["script-src"] == "'self'" and "unsafe" not in answer.headers["Content-Security-Policy"]
        assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"
        assert answer.headers["Referrer-Policy"] == "same-origin" and answer.headers["Cache-Control"] == "no-store"
        assert answer.content_type == "text/html" and "<script" not in answer.text.replace(
            '<script src="/inbox/static/inbox.js" defer></script>', "")  # no inline script at all

    def test_the_style_and_script_need_no_session_and_hold_no_data(self, app):
        browser = webtest.TestApp(app)
        assert browser.get(f"{INBOX}/static/inbox.js").content_type == "text/javascript"
        assert browser.get(f"{INBOX}/static/inbox.css").content_type == "text/css"
        browser.get(f"{INBOX}/static/../../sms_responder.py", status=404)
        browser.get(f"{INBOX}/static/openapi.json", status=404)


# -- The list ------------------------------------------------------------------------------------

class TestList:
    def test_newest_activity_first_with_the_last_text_and_marks(self, client, app):
        customer_says(client, "first customer", From="14155550111")
        customer_says(client, "Is my order ready?\nIt's order 12")
        customer_says(client, "STOP", From="14155550222")
        customer_says(client, "a question for the owner", From="14155550333")
        customer_says(client, "the owner's own text", From=OWNER)  # an owner is not a customer
        rows = self.rows(client.get(INBOX))
        assert [row["number"] for row in rows] == ["+14155550333", "+14155550222", f"+{SENDER}", "+14155550111"]
        assert rows[2]["last"] == "Is my order ready?"  # one line
        assert rows[2]["marks"] == ["Unread", "Waiting", "Forwarded"]  # unread: the team issue
        assert rows[1]["marks"] == ["Unread", "Opted out", "Forwarded"]

    def test_an_answer_by_a_person_clears_waiting_and_an_outbound_message_starts_a_conversation(self, client):
        customer_says(client, "hello?")
        client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "Hi! How can we help?"}, status=303)
        client.post(f"{INBOX}/new", {"csrf": csrf(client), "number": "+1 415 555 0999", "message": "Your part is in"},
                    status=303)
        rows = self.rows(client.get(INBOX))
        assert [(row["number"], row["last"], row["marks"]) for row in rows] == [
            ("+14155550999", "Your part is in", []), (f"+{SENDER}", "Hi! How can we help?", ["Forwarded"])]

    def test_search_by_digits_or_words_and_more_on_demand(self, client, app, database_url):
        for i in range(55):
            customer_says(client, f"message {i} about a bouquet" if i % 2 else f"message {i} about cakes",
                          From=f"1415556{i:04d}")
        assert len(self.rows(client.get(INBOX))) == 50
        more = client.get(INBOX).click("More conversations")
        assert [row["number"] for row in self.rows(more)] == [f"+1415556{i:04d}" for i in (4, 3, 2, 1, 0)]
        assert "More conversations" not in more.text  # the last page
        updates = more.html.body["data-updates"]  # the page's own check: the same version while nothing changes
        assert client.get(updates).json["version"] == more.html.body["data-version"]
        assert "More conversations" not in client.get(INBOX, {"q": "cakes"}).text  # 28: one page
        found = self.rows(client.get(INBOX, {"q": "Bouquet 13"}))
        assert [row["number"] for row in found] == ["+14155560013"]
        assert [row["number"] for row in self.rows(client.get(INBOX, {"q": "556 0042"}))] == ["+14155560042"]
        assert len(self.rows(client.get(INBOX, {"q": "cakes"}))) == 28
        assert "No conversation matches" in client.get(INBOX, {"q": "100% _x_"}).text

    @staticmethod
    def rows(page):
        return [{"number": item.select_one(".number").text, "last": item.select_one(".last").text,
                 "marks": [mark.text for mark in item.select(".mark")]}
                for item in page.html.select(".conversations li")]


# -- A conversation ------------------------------------------------------------------------------

class TestConversation:
    def test_everything_both_ways_in_time_order(self, client, app, make_app, fake_api, rules_path_for):
        rules = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url, forward_to=OWNER,
                         rules_file=rules_path_for('[[rule]]\nname = "hours"\nkeywords = ["HOURS"]\nreply = "9-5"\n'))
        customer_says(webtest.TestApp(rules), "HOURS")
        customer_says(client, "photo", Type="mms", Text=None, Body="see this", MediaCount="1",
                      Media0="https://x.example/p.jpg")
        customer_says(client, "from my phone", From=OWNER)  # relayed to the last customer forwarded
        client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "Got it"}, status=303)
        page = client.get(CONVERSATION)
        entries = [" ".join(item.text.split()) for item in page.html.select(".messages > li")]
        assert entries[0].startswith(f"+{SENDER} ") and entries[0].endswith(f"HOURS Forwarded to +{OWNER}")
        assert entries[1].startswith('Automatic answer (rule “hours”)') and entries[1].endswith("9-5")
        assert "see this https://x.example/p.jpg Forwarded to +14155550188" in entries[2]
        assert entries[3].endswith("You said: see this")
        assert entries[4].startswith(f"Answered from the phone of +{OWNER}") and entries[4].endswith("from my phone")
        assert entries[5].startswith("Assigned to alice by alice")  # who answers becomes the assignee (team issue)
        assert entries[6].startswith("Sent by alice") and "queued" in entries[6] and entries[6].endswith("Got it")
        sms_responder_drain(app)
        assert "· sent" in " ".join(client.get(CONVERSATION).html.select(".messages > li")[6].text.split())

    def test_an_answer_goes_through_the_outbound_path(self, client, app, database_url, fake_api):
        client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "Your table is ready"}, status=303)
        assert query(database_url, "SELECT kind, dst, src, text, sent_by, sent_via FROM outbox") == [
            ("outbound", SENDER, OUR_NUMBER, "Your table is ready", "alice", "inbox")]
        sms_responder_drain(app)
        assert fake_api.accepted[0]["text"] == "Your table is ready"

    def test_failed_with_its_reason(self, client, app, fake_api):
        fake_api.answers = [400]
        client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "hello"}, status=303)
        sms_responder_drain(app)
        shown = " ".join(client.get(CONVERSATION).html.select(".messages > li")[-1].text.split())
        assert "failed (400 scripted 400)" in shown

    def test_an_opted_out_customer_cannot_be_answered_and_the_page_says_why(self, client, database_url):
        customer_says(client, "STOP")
        page = client.get(CONVERSATION)
        assert "You cannot answer" in page.text and 'name="message"' not in page.text
        refused = client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "but..."}, status=409)
        assert f"Not sent: +{SENDER} has opted out of {OUR_NUMBER}." in refused.text
        new = client.post(f"{INBOX}/new", {"csrf": csrf(client), "number": SENDER, "message": "sale"}, status=409)
        assert "has opted out" in new.text and "sale" in new.text  # the text typed is kept
        assert query(database_url, "SELECT count(*) FROM outbox WHERE kind = 'outbound'") == [(0,)]

    def test_opt_out_and_in_by_hand_after_a_confirmation(self, client, app, database_url, fake_api):
        scheduled = client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "soon"}, status=303)
        assert scheduled
        confirm = client.get(CONVERSATION).click("Opt out")
        assert "Opt out +14155550123?" in confirm.text
        confirm.forms[1].submit(status=303)
        assert query(database_url, "SELECT number_key, to_key FROM opt_outs") == [(SENDER, OUR_NUMBER)]
        assert query(database_url, "SELECT status, error FROM outbox") == [("cancelled", "opted out")]
        page = client.get(CONVERSATION)
        assert "Opted out by alice" in " ".join(page.text.split())
        page.click("Opt in").forms[1].submit(status=303)
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]
        assert query(database_url, "SELECT change, changed_by FROM consent_changes ORDER BY changed_at") == [
            ("opted out", "alice"), ("opted in", "alice")]

    def test_invalid_numbers_and_texts_are_explained(self, client):
        page = client.post(f"{INBOX}/new", {"csrf": csrf(client), "number": "call me", "message": "hi"}, status=400)
        assert "Not sent: Number" in page.text
        page = client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "   "}, status=400)
        assert "Not sent: Message required" in page.text

    def test_read_only_without_plivo_auth_id(self, make_app, database_url):
        app = make_app(forward_to=OWNER)
        add_person(app)
        browser = webtest.TestApp(app)
        log_in(browser)
        customer_says(browser, "hello")
        page = browser.get(CONVERSATION)
        assert "Read-only" in page.text and 'name="message"' not in page.text
        refused = browser.post(f"{CONVERSATION}/send", {"csrf": csrf_of(page), "message": "hi"}, status=503)
        assert "PLIVO_AUTH_ID" in refused.text
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]

    def test_updates_change_when_the_conversation_does(self, client, app):
        first = client.get(f"{INBOX}/updates", {"with": f"{SENDER}/{OUR_NUMBER}"}).json["version"]
        assert client.get(f"{INBOX}/updates", {"with": f"{SENDER}/{OUR_NUMBER}"}).json["version"] == first
        customer_says(client, "anyone?")
        second = client.get(f"{INBOX}/updates", {"with": f"{SENDER}/{OUR_NUMBER}"}).json["version"]
        assert second != first
        client.post(f"{CONVERSATION}/send", {"csrf": csrf(client), "message": "yes"}, status=303)
        third = client.get(f"{INBOX}/updates", {"with": f"{SENDER}/{OUR_NUMBER}"}).json["version"]
        sms_responder_drain(app)  # queued -> sent: a status change changes it too
        assert client.get(f"{INBOX}/updates", {"with": f"{SENDER}/{OUR_NUMBER}"}).json["version"] not in (
            first, second, third)

    def test_segments_while_typing(self, client):
        assert client.get(f"{INBOX}/segments", {"text": "a" * 161}).json == {
            "segments": 2, "encoding": "GSM-7", "characters": 161}
        assert client.get(f"{INBOX}/segments", {"text": "✅" * 71}).json["encoding"] == "UCS-2"


def sms_responder_drain(app):
    worker = sms_responder.OutboxWorker(app)
    while worker.send_next():
        pass

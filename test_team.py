"""The team divides the work (the contract's section of that name), on SQLite and PostgreSQL.

In process with webtest: assignment and its views, unread per person and the title's count, notes,
saved replies, send later and cancel, the CSRF token of every new form, the log line of every
action, and search: its index kept in step with storing, with purge, and with a database migrated
from the release before. The pages in a real browser, two people at once: test_team_browser.py.
"""

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import webtest

import sms_responder
from conftest import connect, load_release, query
from sms_responder_surfaces import api, people, team
from test_sms_responder import AUTH_ID, OUR_NUMBER, SENDER, inbound, post

OWNER = "14155550188"
PASSWORD = "correct horse battery staple"
INBOX = "/inbox"
CONVERSATION = f"{INBOX}/conversations/{SENDER}/{OUR_NUMBER}"
OTHER = "14155550111"
RELEASE_9 = Path(__file__).parent / "testdata" / "schema_v9.sql"


# -- Helpers -----------------------------------------------------------------

@pytest.fixture
def app(make_app, fake_api):
    application = make_app(plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url, forward_to=OWNER)
    application.store.ping()
    for name in ("alice", "bob"):
        with application.store.transaction() as tx:
            people.add_person(tx, name, PASSWORD, time.time())
    return application


def browser_of(app, name):
    """A browser-like client with `name` logged in."""
    browser = webtest.TestApp(app)
    browser.post(f"{INBOX}/login", {"name": name, "password": PASSWORD}, status=303)
    return browser


@pytest.fixture
def alice(app):
    return browser_of(app, "alice")


@pytest.fixture
def bob(app):
    return browser_of(app, "bob")


def csrf(browser, page=INBOX):
    return re.search(r'name="csrf" value="([^"]+)"', browser.get(page).text)[1]


def customer_says(browser, text, **fields):
    post(browser, inbound(**{"Text": text, **fields}))


def act(browser, action, status=303, path=CONVERSATION, **fields):
    """POST one of a conversation's forms with the session's CSRF token."""
    return browser.post(f"{path}/{action}", {"csrf": csrf(browser), **fields}, status=status)


def rows(page):
    """The list's rows as a person reads them: number, marks, assignee."""
    return [(item.select_one(".number").text, [mark.text for mark in item.select(".mark")],
             item.select_one(".assignee").text) for item in page.html.select(".conversations li")]


def timeline(page):
    return [" ".join(item.text.split()) for item in page.html.select(".messages > li")]


def log_lines(logs, first_word):
    return [line for line in logs().splitlines() if f" INFO {first_word} " in line or line.endswith(f" INFO {first_word}")]


def drain(app):
    worker = sms_responder.OutboxWorker(app)
    while worker.send_next():
        pass


# -- Assignment ------------------------------------------------------------------------------------

class TestAssignment:
    def test_assign_to_me_unassign_and_the_assignee_picked_are_stored_shown_and_logged(self, app, alice, bob,
                                                                                       database_url, logs):
        customer_says(alice, "Is my order ready?")
        act(alice, "assign", assignee="alice")  # the button Assign to me
        stored = query(database_url, "SELECT assignee, assigned_by, assigned_at FROM conversations")
        assert stored[0][:2] == ("alice", "alice") and stored[0][2] is not None
        page = bob.get(CONVERSATION)
        assert "Assigned to alice by alice" in " ".join(page.html.select_one(".owner").text.split())
        act(bob, "assign", assignee="bob")  # the Assignee control, picking a person
        act(bob, "assign", assignee="")     # Unassign
        assert query(database_url, "SELECT assignee, assigned_by FROM conversations") == [(None, None)]
        assert query(database_url, "SELECT assignee, assigned_by FROM assignments ORDER BY assigned_at") == [
            ("alice", "alice"), ("bob", "bob"), (None, "bob")]
        shown = [entry for entry in timeline(bob.get(CONVERSATION)) if entry.startswith(("Assigned", "Unassigned"))]
        assert [entry.split(" · ")[0] for entry in shown] == [
            "Assigned to alice by alice", "Assigned to bob by bob", "Unassigned by bob"]
        lines = log_lines(logs, "assigned") + log_lines(logs, "unassigned")
        assert [re.sub(r"^.* INFO ", "", line) for line in lines] == [
            "assigned by=alice customer=***0123 to=alice", "assigned by=bob customer=***0123 to=bob",
            "unassigned by=bob customer=***0123"]

    def test_the_buttons_and_the_control_a_person_finds(self, alice, bob):
        customer_says(alice, "hello")
        page = alice.get(CONVERSATION)
        buttons = [button.text for button in page.html.select(".owner button")]
        assert "Assign to me" in buttons and "Unassign" not in buttons
        label = page.html.select_one("label[for=assignee]")
        assert label.text == "Assignee"
        assert [option.text for option in page.html.select("#assignee option")] == ["Nobody", "alice", "bob"]
        act(alice, "assign", assignee="alice")
        buttons = [button.text for button in alice.get(CONVERSATION).html.select(".owner button")]
        assert "Unassign" in buttons and "Assign to me" not in buttons
        assert "Assign to me" in [button.text for button in bob.get(CONVERSATION).html.select(".owner button")]

    def test_views_mine_unassigned_and_all_default_all(self, alice, bob):
        customer_says(alice, "one", From="14155550101")
        customer_says(alice, "two", From="14155550102")
        customer_says(alice, "three", From="14155550103")
        act(alice, "assign", path=f"{INBOX}/conversations/14155550101/{OUR_NUMBER}", assignee="alice")
        act(alice, "assign", path=f"{INBOX}/conversations/14155550102/{OUR_NUMBER}", assignee="bob")
        numbers = lambda browser, view: [number for number, _, _ in rows(browser.get(INBOX, view))]  # noqa: E731
        assert numbers(alice, {}) == ["+14155550103", "+14155550102", "+14155550101"]  # All by default
        assert numbers(alice, {"view": "all"}) == numbers(alice, {})
        assert numbers(alice, {"view": "mine"}) == ["+14155550101"]
        assert numbers(bob, {"view": "mine"}) == ["+14155550102"]
        assert numbers(alice, {"view": "unassigned"}) == ["+14155550103"]
        page = alice.get(INBOX)
        assert [link.text for link in page.html.select(".views a")] == ["Mine", "Unassigned", "All"]
        assert page.html.select_one(".views a[aria-current]").text == "All"
        assert [assignee for _, _, assignee in rows(page)] == ["Unassigned", "Assigned to bob", "Assigned to alice"]

    def test_a_person_who_answers_an_unassigned_conversation_becomes_its_assignee(self, alice, bob, database_url,
                                                                                  logs):
        customer_says(alice, "anyone?")
        act(bob, "send", message="Yes, bob here.")
        assert query(database_url, "SELECT assignee, assigned_by FROM conversations") == [("bob", "bob")]
        act(alice, "send", message="And alice.")  # assigned already: it stays bob's
        assert query(database_url, "SELECT assignee FROM conversations") == [("bob",)]
        assert query(database_url, "SELECT count(*) FROM assignments") == [(1,)]
        assert [re.sub(r"^.* INFO ", "", line) for line in log_lines(logs, "answered")] == [
            "answered by=bob customer=***0123 assigned=yes", "answered by=alice customer=***0123"]

    def test_a_new_conversation_is_its_senders(self, alice, database_url):
        alice.post(f"{INBOX}/new", {"csrf": csrf(alice), "number": "+1 415 555 0999", "message": "Your part is in"},
                   status=303)
        assert query(database_url, "SELECT customer, ours, assignee FROM conversations") == [
            ("14155550999", OUR_NUMBER, "alice")]

    def test_no_such_person_and_no_such_conversation_are_refused(self, alice, database_url):
        act(alice, "assign", status=409, assignee="carol")  # no conversation yet either
        customer_says(alice, "hello")
        page = act(alice, "assign", status=409, assignee="carol")
        assert "There is no one called carol." in page.text
        assert query(database_url, "SELECT assignee FROM conversations") == [(None,)]

    def test_removing_a_person_hands_their_conversations_back(self, app, alice, database_url):
        customer_says(alice, "hello")
        act(alice, "assign", assignee="bob")
        with app.store.transaction() as tx:
            people.remove_person(tx, "bob")
        assert query(database_url, "SELECT assignee FROM conversations") == [(None,)]
        assert rows(alice.get(INBOX, {"view": "unassigned"}))[0][0] == f"+{SENDER}"


# -- Unread ------------------------------------------------------------------------------------------

class TestUnread:
    def test_unread_per_person_in_text_and_title_and_opening_reads_it_for_that_person_only(self, alice, bob):
        customer_says(alice, "first", From=OTHER)
        customer_says(alice, "second")
        for browser in (alice, bob):
            page = browser.get(INBOX)
            assert [marks for _, marks, _ in rows(page)] == [["Unread", "Waiting", "Forwarded"]] * 2
            assert page.html.title.text.startswith("(2) ") and browser.get(f"{INBOX}/updates").json["unread"] == 2
        alice.get(CONVERSATION)  # alice opens it
        assert [marks[0] for _, marks, _ in rows(alice.get(INBOX))] == ["Waiting", "Unread"]
        assert alice.get(INBOX).html.title.text.startswith("(1) ")
        assert bob.get(f"{INBOX}/updates").json["unread"] == 2  # bob has not
        alice.get(f"{INBOX}/conversations/{OTHER}/{OUR_NUMBER}")
        page = alice.get(INBOX)
        assert page.html.title.text == "Conversations · SMS inbox" and "Unread" not in page.text
        assert alice.get(f"{INBOX}/updates", {"unread": "1"}).json == {"version": "", "unread": 0}
        customer_says(alice, "third")  # a customer's new message: unread again
        assert alice.get(f"{INBOX}/updates").json["unread"] == 1

    def test_the_list_changes_its_version_when_what_is_unread_changes(self, alice):
        customer_says(alice, "hello")
        before = alice.get(f"{INBOX}/updates").json["version"]
        alice.get(CONVERSATION)
        assert alice.get(f"{INBOX}/updates").json["version"] != before

    def test_owners_and_answers_make_nothing_unread(self, alice, bob):
        customer_says(alice, "hello")
        customer_says(alice, "a relay to the customer", From=OWNER)  # an owner's answer is not a customer's message
        assert bob.get(f"{INBOX}/updates").json["unread"] == 1
        act(bob, "send", message="We are open")  # who answers has read it
        assert bob.get(f"{INBOX}/updates").json["unread"] == 0
        assert alice.get(f"{INBOX}/updates").json["unread"] == 1

    def test_every_page_carries_the_count_and_the_updates_route_needs_a_session(self, app, alice):
        customer_says(alice, "hello")
        for path in (f"{INBOX}/replies", f"{INBOX}/new"):
            page = alice.get(path)
            assert page.html.title.text.startswith("(1) ") and page.html.body["data-updates"] == "/inbox/updates?unread=1"
        webtest.TestApp(app).get(f"{INBOX}/updates", {"unread": "1"}, status=401)


# -- Notes ---------------------------------------------------------------------------------------------

class TestNotes:
    def test_a_note_is_in_the_timeline_with_author_and_time_and_is_never_sent(self, app, alice, bob, database_url,
                                                                              fake_api, logs):
        customer_says(alice, "Is my order ready?")
        act(alice, "note", note="She already paid; waiting for the part.")
        entry = timeline(bob.get(CONVERSATION))[-1]
        assert re.fullmatch(r"Note by alice · \d{4}-\d\d-\d\d \d\d:\d\d UTC · not sent She already paid; waiting"
                            r" for the part\.", entry), entry
        assert query(database_url, "SELECT text, written_by FROM notes") == [
            ("She already paid; waiting for the part.", "alice")]
        drain(app)
        assert query(database_url, "SELECT count(*) FROM outbox WHERE kind = 'outbound'") == [(0,)]
        assert all("waiting for the part" not in str(request) for request in fake_api.requests)
        assert [re.sub(r"^.* INFO ", "", line) for line in log_lines(logs, "note")] == [
            "note added by=alice customer=***0123"]

    def test_never_in_get_api_messages(self, app, alice):
        customer_says(alice, "hello")
        act(alice, "note", note="secret-note-text")
        with app.store.transaction() as tx:
            token = api.add_token(tx, "reader", time.time(), ("read",))
        answer = webtest.TestApp(app).get("/api/messages", {"number": SENDER},
                                          headers={"Authorization": f"Bearer {token}"})
        assert len(answer.json["messages"]) == 1 and "secret-note-text" not in answer.text

    def test_an_empty_note_is_explained_and_notes_work_when_sending_cannot(self, make_app, alice, database_url):
        page = act(alice, "note", status=400, note="   ")
        assert "Note: write something first." in page.text
        read_only = make_app(forward_to=OWNER)  # no PLIVO_AUTH_ID
        browser = browser_of(read_only, "bob")
        customer_says(browser, "hello")
        act(browser, "note", note="call her back")
        assert query(database_url, "SELECT written_by FROM notes") == [("bob",)]


# -- Saved replies --------------------------------------------------------------------------------------

class TestSavedReplies:
    def test_add_change_and_remove_on_their_page(self, alice, bob, database_url, logs):
        page = alice.get(INBOX).click("Saved replies")
        assert [label.text for label in page.html.select("form.stacked label")] == ["Name", "Text"]
        alice.post(f"{INBOX}/replies", {"csrf": csrf(alice), "name": "Hours", "text": "We are open 9 to 5."}, status=303)
        alice.post(f"{INBOX}/replies", {"csrf": csrf(alice), "name": "Pick-up", "text": "Ready at noon."}, status=303)
        page = bob.get(f"{INBOX}/replies")  # shared by the team
        assert [item.select_one(".name").text for item in page.html.select(".replies li")] == ["Hours", "Pick-up"]
        reply_id = query(database_url, "SELECT id FROM saved_replies WHERE name = 'Hours'")[0][0]
        change = page.click(href=f"/replies/{reply_id}$")
        assert change.html.select_one("#text").text == "We are open 9 to 5."
        bob.post(f"{INBOX}/replies/{reply_id}", {"csrf": csrf(bob), "name": "Hours", "text": "Open 8 to 6."},
                 status=303)
        bob.post(f"{INBOX}/replies/{reply_id}/remove", {"csrf": csrf(bob)}, status=303)
        assert query(database_url, "SELECT name, text, changed_by FROM saved_replies") == [
            ("Pick-up", "Ready at noon.", "alice")]
        assert [re.sub(r"^.* INFO ", "", line) for line in log_lines(logs, "saved")] == [
            "saved reply added by=alice name=Hours", "saved reply added by=alice name=Pick-up",
            "saved reply changed by=bob name=Hours", "saved reply removed by=bob name=Hours"]

    def test_names_are_unique_and_texts_fit_a_message(self, alice, database_url):
        alice.post(f"{INBOX}/replies", {"csrf": csrf(alice), "name": "Hours", "text": "9 to 5"}, status=303)
        page = alice.post(f"{INBOX}/replies", {"csrf": csrf(alice), "name": " Hours ", "text": "8 to 6"}, status=400)
        assert "There is a saved reply called “Hours” already." in page.text and "8 to 6" in page.text
        alice.post(f"{INBOX}/replies", {"csrf": csrf(alice), "name": "Long", "text": "x" * 1601}, status=400)
        alice.get(f"{INBOX}/replies/999", status=404)
        assert query(database_url, "SELECT count(*) FROM saved_replies") == [(1,)]

    def test_in_a_conversation_a_saved_reply_goes_into_the_message_box_unsent(self, alice, database_url):
        customer_says(alice, "When are you open?")
        alice.post(f"{INBOX}/replies", {"csrf": csrf(alice), "name": "Hours", "text": "Open <b>9</b> to 5 & Sat."},
                   status=303)
        page = alice.get(CONVERSATION)
        assert page.html.select_one("label[for=saved-reply]").text == "Saved replies"
        option = page.html.select("#saved-reply option")[1]
        assert (option.text, option["data-text"]) == ("Hours", "Open <b>9</b> to 5 & Sat.")  # escaped in the HTML
        assert "data-text=\"Open &lt;b&gt;9&lt;/b&gt; to 5 &amp; Sat.\"" in page.text
        filled = alice.get(CONVERSATION, {"reply": option["value"]})  # without the script: the page again, filled
        assert filled.html.select_one("#message").text == "Open <b>9</b> to 5 & Sat."
        assert query(database_url, "SELECT count(*) FROM outbox WHERE kind = 'outbound'") == [(0,)]


# -- Send later ------------------------------------------------------------------------------------------

class TestSendLater:
    def test_scheduled_in_the_persons_time_zone_as_the_api_would_then_cancelled(self, app, alice, database_url,
                                                                              fake_api, logs):
        customer_says(alice, "Remind me tomorrow")
        zone = ZoneInfo("America/New_York")
        tomorrow = (datetime.now(zone) + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
        act(alice, "send", message="Your appointment is today at 11.", send_at=tomorrow.strftime("%Y-%m-%dT%H:%M"),
            time_zone="America/New_York")
        stored = query(database_url, "SELECT status, send_at, sent_via, sent_by FROM outbox WHERE kind = 'outbound'")
        assert stored[0][0] == "scheduled" and stored[0][2:] == ("inbox", "alice")
        send_at = stored[0][1] if isinstance(stored[0][1], datetime) else datetime.fromisoformat(stored[0][1])
        assert send_at == tomorrow
        page = alice.get(CONVERSATION)
        entry = page.html.select(".messages > li.scheduled")[0]
        assert " ".join(entry.text.split()).startswith("Scheduled by alice for ")
        assert [button.text for button in entry.select("button")] == ["Cancel"]
        drain(app)
        assert fake_api.accepted == []  # not due yet
        entry_form = [form for form in page.forms.values() if form.action.endswith("/cancel")][0]
        entry_form.submit(status=303)
        assert query(database_url, "SELECT status FROM outbox WHERE kind = 'outbound'") == [("cancelled",)]
        assert "Cancel" not in [button.text for button in alice.get(CONVERSATION).html.select(".messages button")]
        assert [re.sub(r"^.* INFO ", "", line) for line in log_lines(logs, "scheduled") + log_lines(logs, "cancelled")
                ] == ["scheduled by=alice customer=***0123 assigned=yes", "cancelled by=alice customer=***0123"]

    @pytest.mark.parametrize(("send_at", "problem"), [
        ("2020-01-01T09:00", "Not sent: Send at is in the past."),
        ("2099-01-01T09:00", "Not sent: Send at is more than 30 days ahead."),
        ("tomorrow at 9", "Not sent: Send at must be a date and time, such as 2026-12-24 09:00."),
    ], ids=["past", "too far", "not a time"])
    def test_the_api_checks_apply_and_the_text_is_kept(self, alice, database_url, send_at, problem):
        page = act(alice, "send", status=400, message="later, please", send_at=send_at, time_zone="Europe/Paris")
        assert problem in page.text and page.html.select_one("#message").text == "later, please"
        assert query(database_url, "SELECT count(*) FROM outbox") == [(0,)]

    def test_without_a_time_zone_the_servers_local_time(self, alice, database_url, monkeypatch):
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        try:
            later = datetime.now(ZoneInfo("Asia/Tokyo")).replace(microsecond=0, second=0) + timedelta(hours=2)
            act(alice, "send", message="later", send_at=later.strftime("%Y-%m-%dT%H:%M"), time_zone="No/Such_Zone")
        finally:
            monkeypatch.undo()
            time.tzset()
        send_at = query(database_url, "SELECT send_at FROM outbox")[0][0]
        assert (send_at if isinstance(send_at, datetime) else datetime.fromisoformat(send_at)) == later

    def test_cancel_only_what_waits_in_this_conversation(self, app, alice, database_url):
        act(alice, "send", message="now")
        act(alice, "send", message="later", send_at=(datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
        queued, scheduled = [public_id for (public_id,) in query(
            database_url, "SELECT public_id FROM outbox ORDER BY id")]
        other = f"{INBOX}/conversations/{OTHER}/{OUR_NUMBER}"
        assert "There is no such message here." in act(alice, "cancel", status=409, path=other, id=scheduled).text
        drain(app)  # the first has left
        assert "Too late to cancel: it is sent." in act(alice, "cancel", status=409, id=queued).text
        assert query(database_url, "SELECT status FROM outbox ORDER BY id") == [("sent",), ("scheduled",)]


# -- Every new form needs the session and its CSRF token --------------------------------------------------

NEW_FORMS = [(f"{CONVERSATION}/assign", {"assignee": "alice"}), (f"{CONVERSATION}/note", {"note": "hi"}),
             (f"{CONVERSATION}/cancel", {"id": "{scheduled}"}),
             (f"{CONVERSATION}/send", {"message": "later", "send_at": "{tomorrow}"}),
             (f"{INBOX}/replies", {"name": "Opening times", "text": "9 to 5"}),
             (f"{INBOX}/replies/{{reply}}", {"name": "Hours", "text": "8 to 6"}),
             (f"{INBOX}/replies/{{reply}}/remove", {})]


class TestForms:
    @pytest.fixture
    def state(self, alice, database_url):
        """A conversation with a scheduled message, and a saved reply: what each form would change."""
        customer_says(alice, "hello")
        tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        act(alice, "send", message="scheduled", send_at=tomorrow)
        act(alice, "assign", assignee="")
        alice.post(f"{INBOX}/replies", {"csrf": csrf(alice), "name": "Hours", "text": "9 to 5"}, status=303)
        values = {"scheduled": query(database_url, "SELECT public_id FROM outbox")[0][0], "tomorrow": tomorrow,
                  "reply": query(database_url, "SELECT id FROM saved_replies")[0][0]}
        return values, self.snapshot(database_url)

    @staticmethod
    def snapshot(database_url):
        return [query(database_url, f"SELECT * FROM {table} ORDER BY 1") for table in (
            "conversations", "assignments", "notes", "saved_replies", "outbox")]

    @pytest.mark.parametrize(("path", "fields"), NEW_FORMS, ids=[path.split(INBOX)[1] for path, _ in NEW_FORMS])
    @pytest.mark.parametrize("token", ["no session", "missing", "wrong", "another session's"])
    def test_refused_without_this_sessions_token_and_nothing_changes(self, app, alice, bob, state, database_url,
                                                                     path, fields, token):
        values, before = state
        path = path.format(**values)
        fields = {name: value.format(**values) for name, value in fields.items()}
        if token == "no session":
            webtest.TestApp(app).post(path, fields, status=303, content_type="application/x-www-form-urlencoded")
        else:
            value = {"missing": None, "wrong": "x" * 64, "another session's": csrf(bob)}[token]
            alice.post(path, {**fields, **({"csrf": value} if value else {})}, status=403,
                       content_type="application/x-www-form-urlencoded")  # as a browser posts a form, even empty
        assert self.snapshot(database_url) == before

    @pytest.mark.parametrize(("path", "fields"), NEW_FORMS, ids=[path.split(INBOX)[1] for path, _ in NEW_FORMS])
    def test_accepted_with_it(self, alice, state, database_url, path, fields):
        values, before = state
        alice.post(path.format(**values), {"csrf": csrf(alice), **{name: value.format(**values) for name, value in
                                                                  fields.items()}}, status=303)
        assert self.snapshot(database_url) != before

    @pytest.mark.parametrize("path", [f"{INBOX}/replies", f"{INBOX}/replies/1", f"{CONVERSATION}?reply=1"])
    def test_the_new_pages_need_a_session(self, app, path):
        assert webtest.TestApp(app).get(path, status=303).headers["Location"] == f"{INBOX}/login"


# -- Search, and the index that serves it ------------------------------------------------------------------

class TestSearch:
    def found(self, browser, search):
        return [number for number, _, _ in rows(browser.get(INBOX, {"q": search}))]

    def test_by_whole_words_in_any_case_every_word_of_customers_owners_and_outbound_messages(self, alice):
        customer_says(alice, "Do you have TULIPS today?", From="14155550101")
        customer_says(alice, "Tulip bulbs for the garden", From="14155550102")
        customer_says(alice, "Roses and tulips, please", From="14155550103")
        customer_says(alice, "@14155550101 Yes: yellow ones", From=OWNER)  # an owner's relay
        alice.post(f"{INBOX}/new", {"csrf": csrf(alice), "number": "14155550104", "message": "Your peonies shipped"},
                   status=303)
        assert self.found(alice, "tulips") == ["+14155550103", "+14155550101"]  # whole words, any case
        assert self.found(alice, "roses TULIPS") == ["+14155550103"]             # every word
        assert self.found(alice, "yellow") == ["+14155550101"]
        assert self.found(alice, "peonies") == ["+14155550104"]
        assert self.found(alice, "5550102") == ["+14155550102"]                  # digits of a number
        assert self.found(alice, "+1 (415) 555-0103") == ["+14155550103"]
        assert self.found(alice, "tulip") == ["+14155550102"]
        assert self.found(alice, "orchids") == [] and self.found(alice, "100% _x_") == []
        assert self.found(alice, "said") == []                                   # not the automatic answers

    def test_a_search_looks_through_every_conversation_whatever_the_view(self, alice):
        customer_says(alice, "tulips", From="14155550101")
        act(alice, "assign", path=f"{INBOX}/conversations/14155550101/{OUR_NUMBER}", assignee="bob")
        page = alice.get(INBOX, {"view": "mine", "q": "tulips"})
        assert [number for number, _, _ in rows(page)] == ["+14155550101"]

    def test_a_message_is_found_as_soon_as_it_is_stored(self, alice):
        for i in range(3):
            customer_says(alice, f"order {i} zinnia")
            assert len(self.found(alice, "zinnia")) == 1
        customer_says(alice, "another zinnia", From=OTHER)
        assert self.found(alice, "zinnia") == [f"+{OTHER}", f"+{SENDER}"]

    @staticmethod
    def indexed(database_url, word):
        """How many messages and outbound messages the index of words holds with this word."""
        if database_url.startswith("sqlite"):
            statements = [f"SELECT count(*) FROM {table} WHERE {table} MATCH ?" for table in ("message_words",
                                                                                               "outbound_words")]
        else:  # through the GIN indexes (the same expressions)
            statements = ["SELECT count(*) FROM messages WHERE to_tsvector('simple', text) @@ to_tsquery('simple', ?)",
                          "SELECT count(*) FROM outbox WHERE kind = 'outbound' AND to_tsvector('simple', text)"
                          " @@ to_tsquery('simple', ?)"]
        return sum(query(database_url, sql, word)[0][0] for sql in statements)

    def test_purge_erases_a_text_from_the_index_and_the_team_record(self, app, alice, database_url):
        customer_says(alice, "my secret word is periwinkle")
        alice.post(f"{INBOX}/new", {"csrf": csrf(alice), "number": OTHER, "message": "periwinkle outbound"}, status=303)
        act(alice, "note", note="note about periwinkle")
        alice.get(CONVERSATION)  # read
        assert self.found(alice, "periwinkle") == [f"+{OTHER}", f"+{SENDER}"]
        drain(app)  # an outbound message is purged once it has left
        connection = connect(database_url)
        with connection:  # 100 days later
            for table, column in (("messages", "received_at"), ("outbox", "queued_at"), ("conversations", "last_at"),
                                  ("notes", "written_at"), ("assignments", "assigned_at"),
                                  ("conversation_reads", "read_at")):
                connection.execute(f"UPDATE {table} SET {column} = ?", (stored_time(
                    database_url, datetime.now(UTC) - timedelta(days=100)),))
        connection.close()
        assert self.indexed(database_url, "periwinkle") == 2 and self.indexed(database_url, "secret") == 1
        assert sms_responder.purge(app.store, 90, time.time()) == 2
        assert self.found(alice, "periwinkle") == [] and self.found(alice, "secret") == []
        # the index itself: a search also skips a purged message by its erased number, so this is what fails
        # when the text stays in the index
        assert self.indexed(database_url, "periwinkle") == 0 and self.indexed(database_url, "secret") == 0
        for table in ("conversations", "notes", "assignments", "conversation_reads"):
            assert query(database_url, f"SELECT count(*) FROM {table}") == [(0,)], table
        customer_says(alice, "periwinkle again")  # the index still serves new messages
        assert self.found(alice, "periwinkle") == [f"+{SENDER}"]

    def test_a_database_of_the_release_before_is_migrated_and_its_messages_indexed(self, make_app, database_url):
        load_release(database_url, RELEASE_9, 9)
        app = make_app(plivo_auth_id=AUTH_ID, forward_to=OWNER)
        with app.store.transaction() as tx:
            people.add_person(tx, "alice", PASSWORD, time.time())
        alice = browser_of(app, "alice")
        assert query(database_url, "SELECT customer, ours, last_in_at IS NULL FROM conversations ORDER BY customer"
                     ) == [("14155550123", OUR_NUMBER, False), ("14155550124", OUR_NUMBER, False),
                           ("14155550125", OUR_NUMBER, True)]
        assert self.found(alice, "bouquet") == ["+14155550123"]
        assert self.found(alice, "noon") == ["+14155550123"]       # the owner's relay
        assert self.found(alice, "tulips") == ["+14155550124"]
        assert self.found(alice, "peonies") == ["+14155550125"]    # an outbound message
        assert self.found(alice, "0124") == ["+14155550124"]
        assert alice.get(f"{INBOX}/updates").json["unread"] == 2

    @pytest.mark.postgresql_only
    def test_indexes_built_beforehand_concurrently_are_kept_by_the_migration(self, make_app, database_url):
        load_release(database_url, RELEASE_9, 9)
        import psycopg
        with psycopg.connect(database_url, autocommit=True) as connection:  # as the README tells an operator
            connection.execute("CREATE INDEX CONCURRENTLY messages_words ON messages USING gin"
                               " (to_tsvector('simple', text))")
            connection.execute("CREATE INDEX CONCURRENTLY outbox_words ON outbox USING gin"
                               " (to_tsvector('simple', text)) WHERE kind = 'outbound'")
        app = make_app(plivo_auth_id=AUTH_ID, forward_to=OWNER)
        with app.store.transaction() as tx:
            people.add_person(tx, "alice", PASSWORD, time.time())
        assert query(database_url, "SELECT version FROM schema_version") == [(sms_responder.SCHEMA_VERSION,)]
        assert query(database_url, "SELECT indexname FROM pg_indexes WHERE strpos(indexname, 'words') > 0"
                     " ORDER BY 1") == [("messages_words",), ("outbox_words",)]
        assert self.found(browser_of(app, "alice"), "tulips") == ["+14155550124"]

    @pytest.mark.sqlite_only
    def test_sqlite_indexes_in_batches_before_it_reads_and_vacuum_keeps_the_rowids(self, app, alice, database_url,
                                                                                monkeypatch):
        monkeypatch.setattr(team, "CATCH_UP_BATCH", 2)
        for i in range(5):
            customer_says(alice, f"batch{i} daisy", From=f"141555502{i:02d}")
        assert query(database_url, "SELECT messages_to FROM inbox_index") == [(0,)]  # the webhook wrote nothing
        assert len(self.found(alice, "daisy")) == 5  # three batches, then the search
        assert query(database_url, "SELECT messages_to FROM inbox_index") == [(5,)]
        connection = connect(database_url)
        connection.execute("VACUUM")
        connection.close()
        assert self.found(alice, "batch3") == ["+14155550203"]


def stored_time(database_url, moment):
    return moment.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else moment

"""The team divides the work, in a real browser: Debian's Chromium, headless, driven by Playwright.

As test_inbox_browser.py: the real service with its worker (`python sms_responder.py --with-worker`,
sending to the fake Plivo API), on SQLite and PostgreSQL, and things found by the names a person
reads. Two people, alice and bob, each in a browser context of their own (their own cookies), for
assignment and unread. Screenshots go to the test's folder, and to $SMS_RESPONDER_SCREENSHOTS when it
is set (the README's pictures come from there).
"""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from conftest import MODULE, query
from test_inbox_browser import LIVE, PASSWORD, conversation_link, customer_says, screenshot, service  # noqa: F401
from test_sms_responder import SENDER

TITLE = "Conversations · SMS inbox"


@pytest.fixture
def team(service, tmp_path):  # noqa: F811 (pytest hands the imported fixture in)
    """The service with bob too (alice is the service fixture's)."""
    added = subprocess.run([sys.executable, str(MODULE), "users", "add", "bob"], input=PASSWORD + "\n", text=True,
                           env={"PATH": os.environ["PATH"], **service.env}, cwd=tmp_path, capture_output=True,
                           timeout=60)
    assert added.returncode == 0, added.stderr
    return service


@pytest.fixture
def person(browser):
    """person(name, width=1100, zone=None): a logged-in tab in a browser context of its own; closed after."""
    contexts = []

    def open_tab(running, name, width=1100, zone=None):
        options = {"viewport": {"width": width, "height": 800 if width > 500 else 740}}
        if width <= 500:
            options.update(is_mobile=True, has_touch=True)
        if zone:
            options["timezone_id"] = zone
        context = browser.new_context(**options)
        contexts.append(context)
        tab = context.new_page()
        tab.errors = []
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))
        tab.goto(f"{running.url}/inbox")
        tab.get_by_label("Name").fill(name)
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        tab.get_by_role("heading", name="Conversations").wait_for()
        return tab

    yield open_tab
    for context in contexts:
        context.close()


def within_live(check, what):
    """Wait until check() is true, at most the contract's 2 s; fail naming `what` otherwise."""
    deadline = time.monotonic() + LIVE
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {LIVE} s"
        time.sleep(0.05)


def row_of(tab, number):
    return tab.locator(".conversations li", has=tab.get_by_role("link", name=f"+{number}"))


class TestTwoPeople:
    def test_assignment_seen_by_the_other_person_live_and_the_views(self, team, person):
        customer_says(team, "Is my bouquet ready?")
        customer_says(team, "Do you deliver on Sunday?", From="14155550111")
        alice, bob = person(team, "alice"), person(team, "bob")
        assert "Unassigned" in row_of(bob, SENDER).inner_text()
        conversation_link(alice, SENDER).click()
        alice.get_by_role("button", name="Assign to me").click()
        alice.get_by_text("Assigned to alice").first.wait_for()
        within_live(lambda: "Assigned to alice" in row_of(bob, SENDER).inner_text(), "bob's list")
        bob.get_by_role("link", name="Mine").click()
        bob.get_by_text("No conversation is assigned to you").wait_for()
        bob.get_by_role("link", name="Unassigned").click()
        expect(bob.locator(".conversations li")).to_have_count(1)  # (waits for the new page, not the old one)
        assert row_of(bob, "14155550111").count() == 1
        bob.get_by_role("link", name="All").click()
        conversation_link(bob, SENDER).click()
        bob.get_by_label("Assignee").select_option("bob")  # the control alone: it takes effect at once
        bob.get_by_text("Assigned to bob").first.wait_for()
        within_live(lambda: "Assigned to bob" in alice.locator(".owner").inner_text(), "alice's open conversation")
        alice.get_by_role("button", name="Unassign").click()
        alice.locator(".owner .unassigned").wait_for()
        assert [row[0] for row in query(team.env["DATABASE_URL"], "SELECT assignee FROM assignments"
                                                                   " ORDER BY assigned_at")] == ["alice", "bob", None]
        assert alice.errors == [] and bob.errors == []

    def test_unread_for_each_person_in_the_list_and_the_title_live(self, team, person):
        alice, bob = person(team, "alice"), person(team, "bob")
        assert alice.title() == TITLE
        customer_says(team, "Hello, anyone there?")
        for tab in (alice, bob):
            within_live(lambda tab=tab: tab.title() == f"(1) {TITLE}", "the title's count")
            row_of(tab, SENDER).get_by_text("Unread").wait_for(timeout=LIVE * 1000)
        conversation_link(alice, SENDER).click()
        alice.get_by_text("Hello, anyone there?", exact=True).wait_for()
        assert alice.title() == f"+{SENDER} · SMS inbox"  # opened: read, for alice
        customer_says(team, "Still there?")  # arrives while alice reads: shown, so read
        alice.get_by_text("Still there?", exact=True).wait_for(timeout=LIVE * 1000)
        time.sleep(1.2)  # a poll after the page was fetched again
        assert alice.title() == f"+{SENDER} · SMS inbox"
        alice.get_by_role("link", name="SMS inbox").click()
        expect(alice).to_have_title(TITLE)  # (waits for the list's page, not the conversation's)
        assert row_of(alice, SENDER).get_by_text("Unread").count() == 0
        assert bob.title() == f"(1) {TITLE}" and row_of(bob, SENDER).get_by_text("Unread").count() == 1
        customer_says(team, "New customer here", From="14155550111")
        for tab, count in ((alice, 1), (bob, 2)):  # each person's own count
            within_live(lambda tab=tab, count=count: tab.title() == f"({count}) {TITLE}", "the title's count")
        assert alice.errors == [] and bob.errors == []


class TestTheTeamsWork:
    def test_a_note_is_shown_to_the_team_and_never_sent_nor_in_the_api(self, team, person, fake_api, tmp_path):
        customer_says(team, "I paid already, where is my part?")
        alice = person(team, "alice")
        conversation_link(alice, SENDER).click()
        alice.get_by_label("Note").fill("She paid on Monday; the part arrives Thursday.")
        alice.get_by_role("button", name="Add note").click()
        note = alice.locator(".team-note")
        note.wait_for()
        assert "Note by alice" in note.inner_text() and "not sent" in note.inner_text()
        bob = person(team, "bob")
        conversation_link(bob, SENDER).click()
        bob.get_by_text("She paid on Monday; the part arrives Thursday.").wait_for()
        time.sleep(1.5)  # the worker runs every second or so: it has nothing to send
        assert fake_api.requests == []
        token = subprocess.run([sys.executable, str(MODULE), "tokens", "add", "reader", "--scope", "read"],
                               env={"PATH": os.environ["PATH"], **team.env}, cwd=tmp_path, capture_output=True,
                               text=True, timeout=60).stdout.strip()
        answer = bob.request.get(f"{team.url}/api/messages?number={SENDER}",
                                 headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 200 and len(answer.json()["messages"]) == 1
        assert "part arrives Thursday" not in answer.text()

    def test_a_saved_reply_put_into_the_message_box_by_keyboard_then_sent(self, team, person, fake_api):
        customer_says(team, "When do you open tomorrow?")
        alice = person(team, "alice")
        alice.get_by_role("link", name="Saved replies").click()
        alice.get_by_label("Name").fill("Opening hours")
        alice.get_by_label("Text").fill("We open at 9 and close at 5.")
        alice.get_by_role("button", name="Add").click()
        alice.get_by_label("Name").fill("Closed")
        alice.get_by_label("Text").fill("We are closed tomorrow.")
        alice.get_by_role("button", name="Add").click()
        alice.locator(".replies li").nth(1).wait_for()
        alice.get_by_role("link", name="SMS inbox").click()
        conversation_link(alice, SENDER).click()
        alice.get_by_label("Message").wait_for()
        for _ in range(60):  # Tab to the control named Saved replies
            alice.keyboard.press("Tab")
            if alice.evaluate("document.activeElement.id") == "saved-reply":
                break
        assert alice.evaluate("document.activeElement.labels[0].textContent") == "Saved replies"
        alice.keyboard.press("ArrowDown")  # the first: Closed (by name)
        alice.keyboard.press("ArrowDown")  # the next replaces it: Opening hours
        box = alice.get_by_label("Message")
        within_live(lambda: box.input_value() == "We open at 9 and close at 5.", "the reply in the Message box")
        alice.get_by_text("28 characters · 1 segment (GSM-7)").wait_for(timeout=LIVE * 1000)
        time.sleep(1.2)
        assert fake_api.requests == []  # put into the box, not sent
        alice.keyboard.press("Tab")  # the Message box
        alice.keyboard.press("End")
        alice.keyboard.type(" See you!")
        alice.keyboard.press("Tab")
        assert alice.evaluate("document.activeElement.textContent") == "Send"
        alice.keyboard.press("Enter")
        alice.get_by_text("Sent by alice").wait_for()
        within_live(lambda: fake_api.accepted, "the worker's send")
        assert fake_api.accepted[0]["text"] == "We open at 9 and close at 5. See you!"
        assert alice.errors == []

    def test_send_later_in_the_persons_time_zone_then_cancel(self, team, person, fake_api):
        customer_says(team, "Can you remind me tomorrow?")
        alice = person(team, "alice", zone="America/New_York")
        conversation_link(alice, SENDER).click()
        # the page's script tells the form the person's time zone; a person never types before it has run
        # (expect reads the field from Playwright's own world: the page's CSP refuses wait_for_function's eval)
        expect(alice.locator("input.time-zone").first).not_to_have_value("")
        alice.get_by_label("Message").fill("Reminder: your appointment is today at 11.")
        tomorrow_9 = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=1)).replace(
            hour=9, minute=0, second=0, microsecond=0)
        alice.get_by_label("Send at").fill(tomorrow_9.strftime("%Y-%m-%dT%H:%M"))
        alice.get_by_role("button", name="Send").click()
        scheduled = alice.locator(".messages li.scheduled")
        scheduled.wait_for()
        assert scheduled.inner_text().startswith("Scheduled by alice for")
        stored = query(team.env["DATABASE_URL"], "SELECT status, send_at FROM outbox WHERE kind = 'outbound'")
        send_at = stored[0][1] if isinstance(stored[0][1], datetime) else datetime.fromisoformat(stored[0][1])
        assert (stored[0][0], send_at) == ("scheduled", tomorrow_9)
        scheduled.get_by_role("button", name="Cancel").click()
        alice.locator(".status.cancelled").wait_for()
        assert query(team.env["DATABASE_URL"], "SELECT status FROM outbox WHERE kind = 'outbound'") == [("cancelled",)]
        time.sleep(1.2)
        assert fake_api.requests == []
        assert alice.errors == []


class TestScreens:
    """The README's pictures, at 360 px and on a desktop: the list with assignees and unread, a conversation
    with a note; nothing wider than the screen."""

    def test_the_list_and_a_conversation_with_a_note(self, team, person, tmp_path):
        customer_says(team, "Is my bouquet ready? It's order 1042.", From="14155550111")
        customer_says(team, "Can I collect the tulips at 5?", From="14155550122")
        customer_says(team, "Do you deliver on Sunday?", From="14155550133")
        customer_says(team, "I paid already, where is my vase? " * 3)
        alice = person(team, "alice")
        alice.get_by_role("link", name="Saved replies").click()
        alice.get_by_label("Name").fill("Your order is here")
        alice.get_by_label("Text").fill("Good news: your order has arrived. Collect it any day from 9 to 5.")
        alice.get_by_role("button", name="Add").click()
        alice.get_by_role("link", name="SMS inbox").click()
        conversation_link(alice, "14155550122").click()
        alice.get_by_role("button", name="Assign to me").click()
        alice.get_by_label("Message").fill("Yes, they are ready.")
        alice.get_by_role("button", name="Send").click()
        alice.get_by_text("Sent by alice").wait_for()
        alice.get_by_role("link", name="SMS inbox").click()
        conversation_link(alice, SENDER).click()
        alice.get_by_label("Assignee").select_option("bob")
        alice.get_by_text("Assigned to bob").first.wait_for()
        alice.get_by_label("Note").fill("She paid on Monday; the vase comes Thursday. Call her when it does.")
        alice.get_by_role("button", name="Add note").click()
        alice.locator(".team-note").wait_for()
        tabs = {width: person(team, "bob", width) for width in (1100, 360)}  # bob has read nothing yet
        for width, tab in tabs.items():
            row_of(tab, SENDER).get_by_text("Unread").wait_for()
            self.fits(tab, width, "list")
            screenshot(tab, tmp_path, "team-list" + ("-360" if width == 360 else ""))
        for width, tab in tabs.items():
            conversation_link(tab, SENDER).click()
            tab.locator(".team-note").wait_for()
            self.fits(tab, width, "conversation")
            screenshot(tab, tmp_path, "team-conversation" + ("-360" if width == 360 else ""))
            tab.get_by_role("link", name="Saved replies").click()
            tab.wait_for_url("**/inbox/replies")  # measured on the new page, not between the two
            self.fits(tab, width, "saved replies")
            assert tab.errors == []

    @staticmethod
    def fits(tab, width, where):
        scroll = tab.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{where}: {scroll} px wide at {width}"

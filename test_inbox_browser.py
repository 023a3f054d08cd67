"""The team inbox in a real browser: Debian's Chromium, headless, driven by Playwright.

The service runs as a user runs it (`python sms_responder.py --with-worker`, sending to the fake
Plivo API), on SQLite and PostgreSQL. Nothing is downloaded: Playwright drives /usr/bin/chromium.
Each test finds things by the names a person reads (labels, button texts). Screenshots go to the
test's folder, and to $SMS_RESPONDER_SCREENSHOTS when it is set (the README's picture comes from there).
The browser itself is conftest's (one Chromium per test process, shared with test_team_browser.py).
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sms_responder
from conftest import MODULE, query
from test_outbound import post_raw_path
from test_reliability import post_raw, signed_body
from test_sms_responder import AUTH_ID, AUTH_TOKEN, OUR_NUMBER, SENDER, inbound
from throwaway_postgres import free_port

OWNER = "14155550188"
PASSWORD = "correct horse battery staple"
LIVE = 2.0  # seconds: the contract's "within 2 s without a reload"


@pytest.fixture
def service(services, database_url, fake_api, tmp_path):
    """The real service with its worker, and alice who may log in."""
    port = free_port()
    env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
           "PLIVO_AUTH_ID": AUTH_ID, "PLIVO_API_URL": fake_api.url, "FORWARD_TO": OWNER,
           "PUBLIC_URL": f"http://127.0.0.1:{port}"}
    running = services(env, "--with-worker", port=port)  # it makes the database; then alice is added
    added = subprocess.run([sys.executable, str(MODULE), "users", "add", "alice"], input=PASSWORD + "\n", text=True,
                           env={"PATH": os.environ["PATH"], **env}, cwd=tmp_path, capture_output=True, timeout=60)
    assert added.returncode == 0, added.stderr
    return running


@pytest.fixture
def page(browser, tmp_path):
    """A fresh browser tab (its own cookies); console errors and dialogs are collected, never accepted."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    tab = context.new_page()
    tab.errors, tab.dialogs = [], []
    tab.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()


def screenshot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    folder = os.environ.get("SMS_RESPONDER_SCREENSHOTS")
    if folder:
        shutil.copy(path, Path(folder) / f"{name}.png")
    return path


def log_in(page, service):
    page.goto(f"{service.url}/inbox")
    page.get_by_label("Name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Conversations").wait_for()


def customer_says(service, text, **fields):
    status, body = post_raw(service.url, *signed_body(service.url, inbound(**{"Text": text, **fields})))
    assert status == 200, body


def conversation_link(page, number):
    return page.get_by_role("link", name=f"+{number}")


# -- The flows a person goes through ----------------------------------------------------------------

class TestInTheBrowser:
    def test_log_in_and_see_every_conversation(self, page, service, tmp_path):
        customer_says(service, "Do you have tulips today?", From="14155550111")
        customer_says(service, "Is my order ready? It's 1042.")
        customer_says(service, "STOP", From="14155550222")
        log_in(page, service)
        assert conversation_link(page, SENDER).is_visible()
        rows = page.locator(".conversations li")
        assert rows.count() == 3
        assert "Waiting" in rows.nth(1).inner_text() and "Opted out" in rows.nth(0).inner_text()
        screenshot(page, tmp_path, "inbox-list")
        assert page.errors == [] and page.dialogs == []

    def test_a_new_message_appears_live_in_the_list_and_in_an_open_conversation(self, page, browser, service):
        customer_says(service, "first")
        log_in(page, service)
        customer_says(service, "second, while you look", From="14155550333")
        started = time.monotonic()
        conversation_link(page, "14155550333").wait_for(timeout=LIVE * 1000)
        assert time.monotonic() - started < LIVE
        conversation_link(page, SENDER).click()
        page.get_by_text("first", exact=True).wait_for()
        customer_says(service, "third, in the open conversation")
        started = time.monotonic()
        page.get_by_text("third, in the open conversation", exact=True).wait_for(timeout=LIVE * 1000)
        assert time.monotonic() - started < LIVE
        assert page.url.endswith(f"/inbox/conversations/{SENDER}/{OUR_NUMBER}")  # no reload happened
        assert page.errors == []

    def test_answer_and_see_it_delivered(self, page, service, fake_api, tmp_path):
        customer_says(service, "Can I pick up at 5?")
        log_in(page, service)
        conversation_link(page, SENDER).click()
        box = page.get_by_label("Message")
        box.fill("Yes, see you at 5 🙂")
        page.get_by_text("19 characters · 1 segment (UCS-2)").wait_for(timeout=LIVE * 1000)
        box.fill("Yes, see you at 5")
        page.get_by_text("17 characters · 1 segment (GSM-7)").wait_for(timeout=LIVE * 1000)
        page.get_by_role("button", name="Send").click()
        page.get_by_text("Sent by alice").wait_for()
        deadline = time.monotonic() + 5
        while not fake_api.accepted:  # the worker sends it
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert fake_api.accepted[0]["text"] == "Yes, see you at 5"
        page.locator(".status", has_text="sent").wait_for(timeout=LIVE * 1000)
        uuid_ = wait_for_plivo_uuid(service)
        assert post_raw_path(service.url, sms_responder.STATUS_PATH,
                             {"MessageUUID": uuid_, "Status": "delivered", "To": SENDER, "From": OUR_NUMBER},
                             service.url) == 200
        started = time.monotonic()
        page.locator(".status", has_text="delivered").wait_for(timeout=LIVE * 1000)
        assert time.monotonic() - started < LIVE
        screenshot(page, tmp_path, "inbox-conversation")
        assert page.errors == []

    def test_an_opted_out_customer_is_refused_and_the_page_says_why(self, page, service):
        customer_says(service, "STOP")
        log_in(page, service)
        conversation_link(page, SENDER).click()
        page.get_by_text(f"You cannot answer: +{SENDER} has opted out.").wait_for()
        assert page.get_by_label("Message").count() == 0
        page.get_by_role("link", name="New conversation").click()
        page.get_by_label("Number").fill(f"+{SENDER}")
        page.get_by_label("Message").fill("A sale!")
        page.get_by_role("button", name="Send").click()
        page.get_by_text(f"Not sent: +{SENDER} has opted out of {OUR_NUMBER}.").wait_for()
        assert page.get_by_label("Message").input_value() == "A sale!"  # what was typed is kept

    def test_opt_out_and_back_in_by_hand_after_a_confirmation(self, page, service, database_url):
        customer_says(service, "hello")
        log_in(page, service)
        conversation_link(page, SENDER).click()
        page.get_by_role("link", name="Opt out").click()
        page.get_by_role("button", name="Opt out").click()
        page.get_by_text("Opted out by alice").wait_for()
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(1,)]
        page.get_by_role("link", name="Opt in").click()
        page.get_by_role("button", name="Opt in").click()
        page.get_by_text("Opted in by alice").wait_for()
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]

    def test_log_out(self, page, service):
        log_in(page, service)
        page.get_by_role("button", name="Log out").click()
        page.get_by_role("button", name="Log in").wait_for()
        page.goto(f"{service.url}/inbox")
        assert page.url.endswith("/inbox/login")


# -- What a customer may try -------------------------------------------------------------------

class TestUntrustedText:
    ATTACKS = [
        "<script>window.__xss = 'script'</script>",
        "<img src=x onerror=\"window.__xss = 'img'\">",
        "\"><svg onload=\"window.__xss = 'svg'\">",
        "</textarea><script>window.__xss = 'textarea'</script>",
        "{{ 7 * 7 }} {% raw %}",
    ]
    MEDIA = ["javascript:window.__xss='link'", "https://x.example/a.jpg\"><img src=x onerror=\"window.__xss='attr'\">",
             "data:text/html,<script>window.__xss='data'</script>"]

    def test_text_and_media_urls_are_shown_as_text_and_never_run(self, page, service, tmp_path):
        for attack in self.ATTACKS:
            customer_says(service, attack)
        customer_says(service, "look", Type="mms", Text=None, Body="look", MediaCount="3",
                      **{f"Media{i}": url for i, url in enumerate(self.MEDIA)})
        log_in(page, service)
        conversation_link(page, SENDER).click()
        page.get_by_text("look", exact=True).wait_for()
        for attack in self.ATTACKS:
            assert page.get_by_text(attack, exact=True).count() == 1  # shown, literally
        assert page.evaluate("window.__xss") is None and page.dialogs == []
        links = page.locator(".media a")
        assert links.count() == 1 and links.first.get_attribute("href") == self.MEDIA[1]  # https only
        assert page.locator(".messages img, .messages svg, .messages script").count() == 0
        time.sleep(1.5)  # a live update swaps the same escaped content in: still nothing runs
        assert page.evaluate("window.__xss") is None
        screenshot(page, tmp_path, "inbox-untrusted")

    def test_the_content_security_policy_stops_inline_script_in_the_browser(self, page, service):
        log_in(page, service)
        violations = page.evaluate("""() => new Promise(resolve => {
            const seen = [];
            document.addEventListener("securitypolicyviolation", event => seen.push(event.violatedDirective));
            const inline = document.createElement("script");
            inline.textContent = "window.__inline = 1";
            document.body.appendChild(inline);
            setTimeout(() => resolve(seen), 200);
        })""")
        assert page.evaluate("window.__inline") is None
        assert violations and violations[0].startswith("script-src")


# -- Screens and keyboards --------------------------------------------------------------------------

class TestScreens:
    def test_usable_at_360_px(self, browser, service, tmp_path):
        context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
        phone = context.new_page()
        try:
            customer_says(service, "A long question from a customer who writes a lot: " + "word " * 60)
            customer_says(service, "short", From="14155550111")
            log_in(phone, service)
            for where in ("list", "conversation"):
                if where == "conversation":
                    conversation_link(phone, SENDER).click()
                    phone.get_by_label("Message").wait_for()
                width = phone.evaluate("document.documentElement.scrollWidth")
                assert width <= 360, f"{where}: {width} px wide"
                for name in ("Send", "Log out") if where == "conversation" else ("Find", "Log out"):
                    box = phone.get_by_role("button", name=name).bounding_box()
                    assert box["x"] >= 0 and box["x"] + box["width"] <= 360, (where, name, box)
                screenshot(phone, tmp_path, f"inbox-360-{where}")
        finally:
            context.close()

    def test_answering_with_the_keyboard_alone(self, page, service, fake_api):
        customer_says(service, "Are you open on Sunday?")
        page.goto(f"{service.url}/inbox/login")
        page.keyboard.press("Tab")  # the first field may already have focus (autofocus): type into whichever
        page.get_by_label("Name").focus()
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Conversations").wait_for()
        for _ in range(30):  # Tab to the conversation's link, then Enter
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent").find(f"+{SENDER}") >= 0:
                break
        page.keyboard.press("Enter")
        page.get_by_label("Message").wait_for()
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "message":
                break
        page.keyboard.type("Yes, 10 to 4.")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Send"
        page.keyboard.press("Enter")
        page.get_by_text("Sent by alice").wait_for()
        deadline = time.monotonic() + 5
        while not fake_api.accepted:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert fake_api.accepted[0]["text"] == "Yes, 10 to 4."


def wait_for_plivo_uuid(service):
    """The Plivo message UUID the worker recorded for the one outbound message."""
    deadline = time.monotonic() + 5
    while True:
        rows = query(service.env["DATABASE_URL"], "SELECT plivo_message_uuid FROM outbox WHERE kind = 'outbound'")
        if rows and rows[0][0]:
            return rows[0][0]
        assert time.monotonic() < deadline
        time.sleep(0.05)

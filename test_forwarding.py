"""A person in the loop (FORWARD_TO): forwards to the owners, relays of their answers, and the refusals.

The contract's section, bullet by bullet, on SQLite and PostgreSQL, in both reply modes;
what must hold across processes runs under gunicorn -w 3 (SQLite) and on two hosts sharing
one PostgreSQL; `try` and `messages` run as programs.
"""

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest
import webtest

import sms_responder
from conftest import MODULE, connect, load_previous_release, query
from fake_plivo_api import FakePlivoAPI
from sms_responder import ConfigError, Settings
from test_reliability import post_raw, signed_body
from test_sms_responder import AUTH_ID, AUTH_TOKEN, OTHER_NUMBER, OUR_NUMBER, SENDER, inbound, post, signed

OWNER = "14155550188"
OWNER_2 = "14155550177"
CUSTOMER = SENDER


# -- Helpers -----------------------------------------------------------------

def sent(response_body):
    """The (src, dst, text) of each <Message> of a Plivo XML answer, in order."""
    root = ET.fromstring(response_body)
    assert root.tag == "Response"
    return [(message.get("src"), message.get("dst"), message.text) for message in root.findall("Message")]


@pytest.fixture
def forwarding(make_app):
    """forwarding(**settings): a webtest client of an app with FORWARD_TO=OWNER (and the given settings)."""
    def build(**settings):
        return webtest.TestApp(make_app(**{"plivo_number": f"{OUR_NUMBER},{OTHER_NUMBER}", "forward_to": OWNER,
                                           **settings}))
    return build


def text(client, body, **fields):
    """Post one message; what the answer sends, as (src, dst, text) tuples."""
    return sent(post(client, inbound(Text=body, **fields)).body)


def from_owner(client, body, owner=OWNER, **fields):
    return text(client, body, From=owner, **fields)


def stored_columns(database_url, columns, where="1 = 1", *params):
    return query(database_url, f"SELECT {columns} FROM messages WHERE {where} ORDER BY received_at", *params)


def backdate_all(database_url, hours):
    """Make every stored message `hours` hours older (the tests cannot wait a day)."""
    connection = connect(database_url)
    with connection:
        for message_uuid, received_at in connection.execute("SELECT message_uuid, received_at FROM messages"):
            moment = (datetime.fromisoformat(received_at) if isinstance(received_at, str) else received_at)
            moment -= timedelta(hours=hours)
            value = moment.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else moment
            connection.execute("UPDATE messages SET received_at = ? WHERE message_uuid = ?", (value, message_uuid))
    connection.close()


# -- Settings --------------------------------------------------------------------------------

class TestSettings:
    def test_an_owner_who_is_also_our_number_stops_start_up(self, tmp_path):
        with pytest.raises(ConfigError) as error:
            Settings.from_env({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
                               "FORWARD_TO": f"{OWNER}, +{OUR_NUMBER}"})
        assert error.value.problems == [f"FORWARD_TO: {OUR_NUMBER} is also in PLIVO_NUMBER; forwards go to people, "
                                        "not to our own numbers"]
        result = subprocess.run([sys.executable, str(MODULE)], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60, env={"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
                                                 "PLIVO_NUMBER": OUR_NUMBER, "FORWARD_TO": OUR_NUMBER})
        assert result.returncode == 2 and result.stderr.startswith("sms_responder: FORWARD_TO: ")

    @pytest.mark.parametrize("name,value", [("FORWARD_TO", "the boss"), ("FORWARD_TEXT", "{sender}: {text}")])
    def test_invalid_values_are_named(self, name, value):
        with pytest.raises(ConfigError) as error:
            Settings.from_env({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, name: value})
        assert [problem.split(":")[0] for problem in error.value.problems] == [name]


# -- Forward ----------------------------------------------------------------------------------

class TestForward:
    def test_a_customers_message_is_forwarded_after_the_reply_to_every_owner(self, forwarding, database_url, logs):
        client = forwarding(forward_to=f"{OWNER},+{OWNER_2}")
        form = inbound(Text="Do you deliver on Sunday?")
        assert sent(post(client, form).body) == [
            (OUR_NUMBER, CUSTOMER, "You said: Do you deliver on Sunday?"),
            (OUR_NUMBER, OWNER, f"{CUSTOMER}: Do you deliver on Sunday?"),
            (OUR_NUMBER, OWNER_2, f"{CUSTOMER}: Do you deliver on Sunday?")]
        assert stored_columns(database_url, "forwarded_to, relayed_to") == [(f"{OWNER},{OWNER_2}", None)]
        assert " forwarded=2 " in [line for line in logs().splitlines() if " webhook " in line][0]

    def test_it_goes_from_the_number_that_received_it_with_forward_text_and_media(self, forwarding):
        client = forwarding(forward_text="[{to}] {from} wrote: {text}")
        mms = {"Type": "mms", "Text": None, "Body": "this one", "MediaCount": "2", "Media0": "https://x.example/1.jpg",
               "Media1": "https://x.example/2.jpg"}
        assert sent(post(client, inbound(To=OTHER_NUMBER, **mms)).body)[1] == (
            OTHER_NUMBER, OWNER, f"[{OTHER_NUMBER}] {CUSTOMER} wrote: this one\nhttps://x.example/1.jpg\n"
                                 "https://x.example/2.jpg")
        long_text = text(client, "é" * 2000)[1][2]
        assert len(long_text) == 1600 and "\x00" not in text(client, "a\x00b")[1][2]  # cleaned and cut as replies

    @pytest.mark.parametrize("body,fields,outcome", [
        ("STOP", {}, "stopped"), ("HELP", {}, "helped"), ("STOP", {"MessageIntent": "optout"}, "plivo_keyword"),
    ], ids=["a STOP", "HELP", "a Plivo intent"])
    def test_keywords_and_intents_are_forwarded_too(self, forwarding, database_url, body, fields, outcome):
        answer = text(forwarding(), body, **fields)
        assert answer[-1] == (OUR_NUMBER, OWNER, f"{CUSTOMER}: {body}")
        assert stored_columns(database_url, "outcome, forwarded_to") == [(outcome, OWNER)]

    def test_an_opted_out_sender_and_a_limited_one_are_forwarded(self, forwarding, rules_path_for):
        client = forwarding(reply_limit=2, rules_file=rules_path_for(
            '[[rule]]\nkeywords = ["hours"]\nreply = "9-5"\nforward = false\n'))
        text(client, "STOP")
        assert text(client, "still there?") == [(OUR_NUMBER, OWNER, f"{CUSTOMER}: still there?")]  # no reply
        other = [text(client, body, From="14155550777") for body in ("hours", "hours", "a question")]
        assert other[2] == [(OUR_NUMBER, OWNER, "14155550777: a question")]  # over the reply limit, forwarded

    def test_at_most_reply_limit_messages_of_a_customer_per_window_whatever_the_owners(self, forwarding,
                                                                                        database_url):
        client = forwarding(forward_to=f"{OWNER},{OWNER_2}", reply_limit=2, reply_window=1)
        answers = [text(client, f"spam {i}") for i in range(4)]
        assert [len(answer) for answer in answers] == [3, 3, 0, 0]  # reply + 2 forwards, twice; then both limits
        assert text(client, "other", From="14155550777")[1:] == [(OUR_NUMBER, OWNER, "14155550777: other"),
                                                                  (OUR_NUMBER, OWNER_2, "14155550777: other")]
        time.sleep(1.1)
        assert len(text(client, "later")) == 3

    def test_a_rule_with_forward_false_is_not_forwarded(self, forwarding, rules_path_for):
        client = forwarding(rules_file=rules_path_for('[[rule]]\nkeywords = ["hours"]\nreply = "9-5"\nforward = false\n'
                                                      '[[rule]]\nkeywords = ["price"]\nreply = "$5"\n'))
        assert text(client, "HOURS") == [(OUR_NUMBER, CUSTOMER, "9-5")]
        assert text(client, "price") == [(OUR_NUMBER, CUSTOMER, "$5"), (OUR_NUMBER, OWNER, f"{CUSTOMER}: price")]

    def test_an_owner_who_opted_out_of_that_number_gets_no_forwards_until_start(self, forwarding):
        client = forwarding()
        assert from_owner(client, "STOP") == [(OUR_NUMBER, OWNER, sms_responder.DEFAULT_STOP_TEXT)]
        assert text(client, "hello") == [(OUR_NUMBER, CUSTOMER, "You said: hello")]
        assert text(client, "hello", To=OTHER_NUMBER)[1] == (OTHER_NUMBER, OWNER, f"{CUSTOMER}: hello")
        assert from_owner(client, "START") == [(OUR_NUMBER, OWNER, sms_responder.DEFAULT_START_TEXT)]
        assert text(client, "hello again")[1] == (OUR_NUMBER, OWNER, f"{CUSTOMER}: hello again")

    def test_duplicates_and_our_own_numbers_are_never_forwarded(self, forwarding):
        client = forwarding()
        form = inbound(Text="once")
        assert len(sent(post(client, form).body)) == 2
        assert sent(post(client, form, headers=signed(form)).body) == []  # Plivo's retry
        assert text(client, "loop?", From=OTHER_NUMBER) == []

    def test_no_forward_to_without_forward_to(self, make_app, database_url):
        client = webtest.TestApp(make_app())
        assert text(client, "hi") == [(OUR_NUMBER, CUSTOMER, "You said: hi")]
        assert stored_columns(database_url, "forwarded_to") == [(None,)]


# -- Relay --------------------------------------------------------------------------------------

class TestRelay:
    def test_a_plain_answer_goes_to_the_last_customer_forwarded_to_this_owner(self, forwarding, database_url):
        client = forwarding()
        text(client, "first customer", From="14155550111")
        text(client, "second customer", From="+14155550222")
        assert from_owner(client, "Yes, we deliver.") == [(OUR_NUMBER, "14155550222", "Yes, we deliver.")]
        assert stored_columns(database_url, "outcome, reply, relayed_to, forwarded_to", "from_number = ?", OWNER) == [
            ("relayed", "Yes, we deliver.", "14155550222", None)]

    def test_the_conversation_is_this_owners_own(self, forwarding):
        client = forwarding(forward_to=f"{OWNER},{OWNER_2}")
        text(client, "for both", From="14155550111")
        from_owner(client, "STOP", owner=OWNER_2)  # OWNER_2 gets no forwards from this number now
        text(client, "for the first owner only", From="14155550222")
        assert from_owner(client, "hello")[0][1] == "14155550222"
        assert from_owner(client, "hello", owner=OWNER_2)[0][1] == "14155550111"

    def test_at_number_chooses_the_customer(self, forwarding):
        client = forwarding()
        assert from_owner(client, "@+1 415 555 0333 nope") == [(OUR_NUMBER, OWNER, "Not sent: no conversation in "
                                                                                    "the last 24 hours; start with "
                                                                                    "@number.")]
        assert from_owner(client, "@+14155550333 Your order is ready.\nSee you!") == [
            (OUR_NUMBER, "14155550333", "Your order is ready.\nSee you!")]
        assert from_owner(client, "@14155550444 Hi", To=OTHER_NUMBER) == [(OTHER_NUMBER, "14155550444", "Hi")]

    @pytest.mark.parametrize("body,reason", [
        ("@14155550333", "Not sent: nothing to send to +14155550333."),
        ("@14155550333 ", "Not sent: nothing to send to +14155550333."),
        (f"@{OTHER_NUMBER} hi", f"Not sent: +{OTHER_NUMBER} is one of our own numbers."),
    ], ids=["nothing after it", "only a space", "our own number"])
    def test_refusals_are_answered_to_the_owner_only(self, forwarding, database_url, body, reason):
        assert from_owner(forwarding(), body) == [(OUR_NUMBER, OWNER, reason)]
        assert stored_columns(database_url, "outcome, reply, relayed_to") == [("not_relayed", reason, None)]

    def test_no_conversation_within_24_hours(self, forwarding, database_url):
        client = forwarding()
        text(client, "yesterday's question")
        backdate_all(database_url, hours=25)
        assert from_owner(client, "sorry for the wait") == [
            (OUR_NUMBER, OWNER, "Not sent: no conversation in the last 24 hours; start with @number.")]
        text(client, "today's question", To=OTHER_NUMBER)  # another number of ours: not this conversation
        assert from_owner(client, "sorry")[0][1] == OWNER

    def test_a_customer_who_opted_out_gets_nothing(self, forwarding, database_url):
        client = forwarding()
        text(client, "STOP")
        assert from_owner(client, "But wait!") == [(OUR_NUMBER, OWNER, f"Not sent: +{CUSTOMER} has opted out.")]
        assert from_owner(client, f"@{CUSTOMER} please") == [(OUR_NUMBER, OWNER,
                                                               f"Not sent: +{CUSTOMER} has opted out.")]

    def test_an_owners_mms_is_relayed_as_text_and_media_lines(self, forwarding):
        client = forwarding()
        text(client, "photo of the bouquet?")
        mms = {"Type": "mms", "Text": None, "Body": "Here it is", "MediaCount": "1", "Media1": "https://x.example/b.jpg"}
        assert sent(post(client, inbound(From=OWNER, **mms)).body) == [
            (OUR_NUMBER, CUSTOMER, "Here it is\nhttps://x.example/b.jpg")]

    def test_an_owner_is_never_answered_by_rules_the_reply_function_or_the_limit(self, forwarding, rules_path_for):
        client = forwarding(reply_limit=1, rules_file=rules_path_for('[[rule]]\nreply = "a rule"\n'))
        text(client, "question")
        assert [from_owner(client, f"answer {i}") for i in range(3)] == [
            [(OUR_NUMBER, CUSTOMER, f"answer {i}")] for i in range(3)]
        assert from_owner(client, "HELP") == [(OUR_NUMBER, OWNER, sms_responder.DEFAULT_HELP_TEXT)]

    def test_an_owner_who_opted_out_can_still_relay_but_gets_no_refusal(self, forwarding):
        client = forwarding()
        from_owner(client, "STOP")
        assert from_owner(client, f"@{CUSTOMER} hello from the shop") == [(OUR_NUMBER, CUSTOMER,
                                                                           "hello from the shop")]
        assert from_owner(client, "@14155550333") == []  # not relayed; an opted-out owner is not texted

    def test_try_shows_forwards_and_relays(self, make_app, database_url, tmp_path):
        client = webtest.TestApp(make_app(forward_to=OWNER))
        text(client, "hello")
        env = {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
               "DATABASE_URL": database_url, "FORWARD_TO": OWNER}
        run = lambda *args: subprocess.run([sys.executable, str(MODULE), "try", *args], env=env, cwd=tmp_path,  # noqa: E731
                                           capture_output=True, text=True, timeout=60).stdout.splitlines()
        assert run("--from", "14155550777", "hi") == [
            "outcome: replied", "rule: none", "reply: You said: hi", "segments: 1 (GSM-7, 12 characters)",
            f"forward: {OWNER}: 14155550777: hi"]
        assert run("--from", OWNER, "On my way") == [
            "outcome: relayed", "rule: none", "reply: On my way", "segments: 1 (GSM-7, 9 characters)",
            f"relay: {CUSTOMER}: On my way"]
        assert query(database_url, "SELECT count(*) FROM messages") == [(1,)]  # try stored nothing

    def test_messages_shows_forwards_and_relays(self, make_app, database_url, tmp_path):
        client = webtest.TestApp(make_app(forward_to=OWNER))
        text(client, "hello")
        from_owner(client, "hi back")
        env = {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
               "DATABASE_URL": database_url}
        run = lambda *args: subprocess.run([sys.executable, str(MODULE), "messages", *args], env=env,  # noqa: E731
                                           cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout
        listed = [json.loads(line) for line in run("--json").splitlines()]
        assert [(entry["forwarded_to"], entry["relayed_to"]) for entry in listed] == [([OWNER], None),
                                                                                      ([], CUSTOMER)]
        lines = run().splitlines()
        assert lines[1].endswith(f"hello -> You said: hello [forwarded to {OWNER}]")
        assert lines[2].endswith(f"hi back -> @{CUSTOMER}: hi back")


# -- Across processes and hosts ---------------------------------------------------------------

class TestAcrossProcesses:
    def test_every_worker_and_host_agrees_on_the_conversation_and_the_limit(self, services, database_url, backend):
        """gunicorn -w 3 on one SQLite file; two hosts, each gunicorn -w 2, on one PostgreSQL."""
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
               "FORWARD_TO": OWNER, "REPLY_LIMIT": "3"}
        hosts = ([services(env, kind="gunicorn", workers=2) for _ in range(2)] if backend == "postgresql"
                 else [services(env, kind="gunicorn", workers=3)])
        answers = []
        for i in range(12):  # alternate customers, spread over every host; the owner answers after each
            host = hosts[i % len(hosts)]
            customer = "14155550111" if i % 2 else "14155550222"
            answers.append(self.post(host, inbound(Text=f"question {i}", From=customer)))
            answers.append(self.post(hosts[(i + 1) % len(hosts)], inbound(Text=f"answer {i}", From=OWNER)))
        forwards = [len([dst for _, dst, _ in answer if dst == OWNER]) for answer in answers[::2]]
        assert forwards == [1] * 6 + [0] * 6  # three of each customer's messages, whichever process took them
        relays = [answer[0][1] for answer in answers[1::2]]
        assert relays[:6] == ["14155550222", "14155550111"] * 3  # each answer to the customer just forwarded
        assert relays[6:] == ["14155550111"] * 6  # then the last one forwarded stays the conversation

    @staticmethod
    def post(host, form):
        status, body = post_raw(host.url, *signed_body(host.url, form))
        assert status == 200, body
        return sent(body)


# -- REPLY_MODE=api: through the outbox -----------------------------------------------------------

class TestApiMode:
    @pytest.fixture
    def api(self):
        with FakePlivoAPI(AUTH_ID, AUTH_TOKEN) as api:
            yield api

    @pytest.fixture
    def app(self, make_app, api):
        return make_app(forward_to=f"{OWNER},{OWNER_2}", reply_mode="api", plivo_auth_id=AUTH_ID,
                        plivo_api_url=api.url)

    def drain(self, app):
        worker = sms_responder.OutboxWorker(app)
        while worker.send_next():
            pass

    def test_forwards_and_relays_are_queued_and_sent_by_the_worker(self, app, api, database_url):
        client = webtest.TestApp(app)
        assert text(client, "hello") == []
        assert sorted(query(database_url, "SELECT kind, dst, text FROM outbox"), key=str) == sorted([
            ("reply", CUSTOMER, None), ("forward", OWNER, f"{CUSTOMER}: hello"),
            ("forward", OWNER_2, f"{CUSTOMER}: hello")], key=str)
        self.drain(app)
        assert text(client, "on it", From=OWNER) == []
        self.drain(app)
        assert sorted((message["src"], message["dst"], message["text"]) for message in api.accepted) == sorted([
            (OUR_NUMBER, CUSTOMER, "You said: hello"), (OUR_NUMBER, OWNER, f"{CUSTOMER}: hello"),
            (OUR_NUMBER, OWNER_2, f"{CUSTOMER}: hello"), (OUR_NUMBER, CUSTOMER, "on it")])
        assert query(database_url, "SELECT status, count(*) FROM outbox GROUP BY status") == [("sent", 4)]
        assert stored_columns(database_url, "reply", "from_number = ?", CUSTOMER) == [("You said: hello",)]

    def test_a_relay_to_a_customer_who_opts_out_before_it_is_sent_is_cancelled(self, app, api, database_url):
        client = webtest.TestApp(app)
        text(client, "hello")
        self.drain(app)
        text(client, "see you at 5", From=OWNER)
        text(client, "STOP")  # before the worker sends the relay
        self.drain(app)
        assert "see you at 5" not in [message["text"] for message in api.accepted]
        assert query(database_url, "SELECT status, error FROM outbox WHERE dst = ? AND text = ?",
                     CUSTOMER, "see you at 5") == [("cancelled", "opted out")]

    def test_the_outbox_of_the_previous_release_migrates_to_a_key_of_its_own(self, make_app, api, database_url):
        load_previous_release(database_url)  # one queued reply, keyed by its message
        app = make_app(reply_mode="api", plivo_auth_id=AUTH_ID, plivo_api_url=api.url, forward_to=OWNER)
        client = webtest.TestApp(app)
        text(client, "new", From="14155550777")  # two rows for one message: the reply and the forward
        assert sorted(query(database_url, "SELECT message_uuid, kind FROM outbox"), key=str) == sorted([
            ("00000000-0000-4000-8000-000000000004", "reply")] + [
            (uuid_, kind) for (uuid_,) in query(database_url, "SELECT message_uuid FROM messages WHERE text = 'new'")
            for kind in ("reply", "forward")], key=str)
        self.drain(app)
        assert sorted(message["text"] for message in api.accepted) == [
            "14155550777: new", "You said: new", "You said: queued please"]


# -- Blank relays: nothing is sent to the customer (issue 15) ---------------------------------------

class TestBlankRelays:
    """An owner's text that is empty once cleaned is refused, never relayed as an SMS of blanks.

    Through the real server (python sms_responder.py), on both backends, in both reply modes:
    in api mode the worker of `serve --with-worker` sends what was queued to the fake Plivo API."""

    BLANK = [
        ({"Text": f"@{CUSTOMER}   "}, "spaces after @number"),
        ({"Text": f"@+{CUSTOMER} \t \n "}, "tabs and newlines after @+number"),
        ({"Text": "    "}, "spaces to the last conversation"),
        ({"Text": "\x01\x02\x08"}, "only characters the cleaning removes"),
        ({"Text": f"@{CUSTOMER} \x01 \x0b "}, "blanks once cleaned, after @number"),
        ({"Type": "mms", "Text": None, "MediaCount": "0"}, "an mms without text or media"),
        ({"Type": "mms", "Text": None, "Body": "  ", "MediaCount": "0"}, "an mms whose text is blanks"),
    ]

    @pytest.fixture(params=["xml", "api"])
    def service(self, request, services, database_url):
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
               "FORWARD_TO": OWNER, "REPLY_MODE": request.param}
        if request.param == "xml":
            yield services(env), None
            return
        with FakePlivoAPI(AUTH_ID, AUTH_TOKEN) as api:
            yield services({**env, "PLIVO_AUTH_ID": AUTH_ID, "PLIVO_API_URL": api.url}, "--with-worker"), api

    @staticmethod
    def sent_by(service, api, form, expected):
        """What the service sends for one message: its XML answer's messages, or (api mode) what reached
        Plivo: the `expected` number of messages, and nothing more within half a second."""
        before = len(api.accepted) if api else 0
        status, body = post_raw(service.url, *signed_body(service.url, form))
        assert status == 200, body
        if api is None:
            return sent(body)
        assert sent(body) == []
        deadline = time.monotonic() + 10
        while len(api.accepted) < before + expected and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker picks a queued row within 2 s
        time.sleep(0.5)
        return [(message["src"], message["dst"], message["text"]) for message in api.accepted[before:]]

    @pytest.mark.parametrize("fields", [fields for fields, _ in BLANK], ids=[name for _, name in BLANK])
    def test_a_blank_relay_sends_nothing_to_the_customer(self, service, database_url, fields):
        service, api = service
        question = self.sent_by(service, api, inbound(Text="Is it ready?"), expected=2)
        assert sorted(dst for _, dst, _ in question) == sorted([CUSTOMER, OWNER])  # the reply, the forward
        answer = self.sent_by(service, api, inbound(From=OWNER, **fields), expected=1)
        assert answer == [(OUR_NUMBER, OWNER, f"Not sent: nothing to send to +{CUSTOMER}.")]
        assert stored_columns(database_url, "outcome, relayed_to", "from_number = ?", OWNER) == [
            ("not_relayed", None)]

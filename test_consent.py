"""Consent as people say it (the contract's section of that name), on SQLite and PostgreSQL.

The three classes of a message (a clear opt-out, maybe one, not one) through the real webhook,
signed with the SDK, for every example of the contract and more; the consent question once a
day, an automatic reply like any other (the limit, forwards, the outbox); OPT_OUT_MATCH=exact;
a rules file's [consent]; YES that means yes; `try`, `messages`, the inbox and the metrics; and
a corpus of ordinary texts that must unsubscribe no one.
"""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st

import sms_responder
from conftest import MODULE, connect, query
from sms_responder import CONSENT, ConfigError, Consent, load_rules
from test_metrics import METRICS_TOKEN, scraped, send
from test_rules import backdate_messages
from test_sms_responder import AUTH_ID, AUTH_TOKEN, OTHER_NUMBER, OUR_NUMBER, SENDER, inbound, post, reply_of

STOP_TEXT = sms_responder.DEFAULT_STOP_TEXT
START_TEXT = sms_responder.DEFAULT_START_TEXT
QUESTION = sms_responder.DEFAULT_CONSENT_CHECK_TEXT
CORPUS = Path(__file__).parent / "testdata" / "ordinary_messages.txt"

# Every example of the contract, unlisted variants of each class, and counter-examples:
# (text, class, what matched). Class "clear" is answered like STOP, "maybe" with the consent
# question, "none" by the reply function.
EXAMPLES = [
    # A keyword with courtesy words around it, as the whole message: the contract's examples ...
    ("Stop please", "clear", "keyword: stop"),
    ("Please STOP!!", "clear", "keyword: stop"),
    ("STOP IT", "clear", "keyword: stop"),
    ("stop now", "clear", "keyword: stop"),
    ("unsubscribe me", "clear", "keyword: unsubscribe"),
    ("opt-out", "clear", "keyword: opt out"),
    ("ＳＴＯＰ", "clear", "keyword: stop"),
    ("Stop. Thanks", "clear", "keyword: stop"),
    # ... and more
    ("Just stop.", "clear", "keyword: stop"),
    ("pls unsubscribe", "clear", "keyword: unsubscribe"),
    ("OK STOP", "clear", "keyword: stop"),
    ("Quit it", "clear", "keyword: quit"),
    ("revoke please", "clear", "keyword: revoke"),
    ("STOP STOP STOP", "clear", "keyword: stop"),
    ("Stop, sorry!", "clear", "keyword: stop"),
    ("UNSUBSCRIBE ME PLEASE", "clear", "keyword: unsubscribe"),
    ("stop asap 🛑🛑", "clear", "keyword: stop"),
    ("Opt out, thank you", "clear", "keyword: opt out"),
    ("Ｕｎｓｕｂ", "clear", "keyword: unsub"),
    # A request for no more messages, in any sentence: the contract's examples ...
    ("stop texting me", "clear", "phrase: stop texting"),
    ("Please stop sending me messages", "clear", "phrase: stop sending me messages"),
    ("Don't text me anymore", "clear", "phrase: don t text"),
    ("do not text me", "clear", "phrase: do not text"),
    ("No more texts", "clear", "phrase: no more texts"),
    ("never text me again", "clear", "phrase: never text"),
    ("Remove me from your list", "clear", "phrase: remove me"),
    ("take me off this list", "clear", "phrase: take me off"),
    ("opt me out", "clear", "phrase: opt me out"),
    ("Please don't text me anymore, I have nothing else to say.", "clear", "phrase: don t text"),
    ("Stop texting me. I never signed up for this.", "clear", "phrase: stop texting"),
    ("Please stop texting me", "clear", "phrase: stop texting"),
    # ... and more
    ("Can you stop texting me?", "clear", "phrase: stop texting"),
    ("I need you to stop sending me these texts", "clear", "phrase: stop sending me these texts"),
    ("Stop txting me pls", "clear", "phrase: stop txting"),
    ("no more messages from this number", "clear", "phrase: no more messages"),
    ("Please remove me", "clear", "phrase: remove me"),
    ("Take me off your mailing list!", "clear", "phrase: take me off"),
    ("I don't want any more texts from you", "clear", "phrase: don t want any more texts"),
    ("I would like to opt out of these messages", "clear", "phrase: i would like to opt out"),
    ("Hi, I want to unsubscribe.", "clear", "phrase: i want to unsubscribe"),
    ("Wrong person. Stop messaging me!", "clear", "phrase: stop messaging"),
    ("Do not send me any more promotional texts", "clear", "phrase: do not send me any more promotional texts"),
    ("Don’t text me", "clear", "phrase: don t text"),  # a typographic apostrophe
    ("who is this?\nstop texting this number", "clear", "phrase: stop texting"),
    ("Can you unsubscribe me? Thanks", "clear", "phrase: unsubscribe me"),
    ("Please put a stop to these texts", "clear", "phrase: put a stop to these texts"),
    # Spanish and French, alone or with courtesy words: the contract's words ...
    ("alto", "clear", "spanish: alto"),
    ("Basta", "clear", "spanish: basta"),
    ("parar", "clear", "spanish: parar"),
    ("cancelar", "clear", "spanish: cancelar"),
    ("baja", "clear", "spanish: baja"),
    ("No más", "clear", "spanish: no mas"),
    ("no mas mensajes", "clear", "spanish: no mas mensajes"),
    ("Arrêt", "clear", "french: arret"),
    ("arrêter", "clear", "french: arreter"),
    ("désabonner", "clear", "french: desabonner"),
    ("DÉSINSCRIRE", "clear", "french: desinscrire"),
    # ... and more
    ("ALTO por favor", "clear", "spanish: alto"),
    ("No más, gracias", "clear", "spanish: no mas"),
    ("Arrêtez svp", "clear", "french: arretez"),
    ("Me désabonner s'il vous plaît", "clear", "french: desabonner"),
    ("BAJA!!", "clear", "spanish: baja"),
    ("darme de baja", "clear", "spanish: darme de baja"),
    # Maybe an opt-out: the contract's examples ...
    ("Should I stop the order?", "maybe", "word: stop"),
    ("Stop! You're making me blush", "maybe", "word: stop"),
    ("stop sending me the wrong size", "maybe", "word: stop"),
    # ... and more
    ("How do I unsubscribe?", "maybe", "word: unsubscribe"),
    ("What happens if I opt out?", "maybe", "word: opt out"),
    ("Can you stop the delivery tomorrow?", "maybe", "word: stop"),
    ("STOP!!! I never signed up", "maybe", "word: stop"),  # a keyword with more words: only asked
    ("I'm going to stop texting now", "maybe", "word: stop"),  # the writer's own texting: not a request
    ("unsub from the emails too?", "maybe", "word: unsub"),
    ("I revoke my consent to the survey", "maybe", "word: revoke"),
    # Not an opt-out: the contract's examples ...
    ("I need to cancel my appointment", "none", None),
    ("What time do you end today?", "none", None),
    ("Is the sale ending soon?", "none", None),
    ("text me the address", "none", None),
    ("Can you send me the menu?", "none", None),
    ("Can I stop by at 5?", "none", None),
    ("Where is the nearest bus stop?", "none", None),
    ("I can't stop laughing", "none", None),
    ("don't send the wrong size", "none", None),
    ("I never got a text from you", "none", None),
    ("don't stop the delivery", "none", None),
    # ... and more
    ("cancel please", "none", None),  # cancel is a whole-message word of step 7 only
    ("I'm trying to quit smoking", "none", None),
    ("I don't text much, call me", "none", None),
    ("If I don't text you back, call the store", "none", None),
    ("you never text me back anymore", "none", None),
    ("Don't stop texting me the deals!", "none", None),
    ("Please don't stop texting me", "none", None),
    ("I never text, I call", "none", None),
    ("Stop by anytime", "none", None),
    ("I missed my stop, running 10 min late", "none", None),
    ("Please stop payment on check 1042", "none", None),
    ("next stop is yours", "none", None),
    ("nonstop flight, landing at 6", "none", None),
    ("I stopped by yesterday but you were closed", "none", None),
    ("Can you message me the invoice?", "none", None),
    ("Sorry wrong number", "none", None),
    ("Thanks!", "none", None),
    ("Please text me when it's ready", "none", None),
]
OUTCOMES = {"clear": ("stopped", STOP_TEXT), "maybe": ("consent_check", QUESTION), "none": ("replied", None)}


# -- Helpers -----------------------------------------------------------------

def answer(client, text, **fields):
    """The reply text to one fresh message (None for an empty Response)."""
    return reply_of(post(client, inbound(Text=text, **fields)))


def stored(database_url, message_uuid):
    return query(database_url, "SELECT outcome, reply FROM messages WHERE message_uuid = ?", message_uuid)[0]


def opted_out(database_url, sender=SENDER):
    return query(database_url, "SELECT count(*) FROM opt_outs WHERE number_key = ?", sender) == [(1,)]


@pytest.fixture
def client(make_app):
    return webtest.TestApp(make_app())


@pytest.fixture
def rules_client(make_app, tmp_path):
    """rules_client(toml, **settings): a client of an app whose RULES_FILE holds `toml`."""
    def build(toml, **settings):
        path = tmp_path / "rules.toml"
        path.write_text(toml)
        return webtest.TestApp(make_app(rules_file=str(path), **settings))
    return build


def problems_of(toml, tmp_path, **options):
    path = tmp_path / "rules.toml"
    path.write_text(toml)
    try:
        load_rules(str(path), [OUR_NUMBER], **options)
    except ConfigError as error:
        return error.problems
    return []


@pytest.fixture
def env(database_url):
    """The settings of a command run on the test's database."""
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
            "DATABASE_URL": database_url, "TZ": "UTC"}


def run(env, cwd, *args):
    return subprocess.run([sys.executable, str(MODULE), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def ordinary_messages():
    return [line for line in CORPUS.read_text().splitlines() if line and not line.startswith("#")]


# -- The three classes ---------------------------------------------------------------------------

class TestTheThreeClasses:
    def test_the_table_is_large_enough_and_holds_each_class(self):
        assert len(EXAMPLES) >= 60 and len({text for text, _, _ in EXAMPLES}) == len(EXAMPLES)
        assert {kind for _, kind, _ in EXAMPLES} == {"clear", "maybe", "none"}

    def test_every_example_through_the_webhook(self, client, database_url):
        """Each from a sender of its own (a fresh conversation): the stored outcome and reply, the opt-out."""
        wrong = []
        for index, (text, kind, _) in enumerate(EXAMPLES):
            sender = f"1415600{index:04d}"
            form = inbound(Text=text, From=sender)
            reply = reply_of(post(client, form))
            outcome, expected_reply = OUTCOMES[kind]
            expected = (outcome, expected_reply or f"You said: {text}", expected_reply or f"You said: {text}",
                        kind == "clear")
            got = (*stored(database_url, form["MessageUUID"]), reply, opted_out(database_url, sender))
            if got != expected:
                wrong.append((text, kind, got))
        assert wrong == []

    @pytest.mark.parametrize("text,kind,matched", EXAMPLES, ids=[text for text, _, _ in EXAMPLES])
    def test_what_matched(self, text, kind, matched):
        match = CONSENT.of(text)
        assert (match.revocation.value if match else "none", match and str(match)) == (kind, matched)

    def test_an_opted_out_sender_gets_nothing_whatever_the_class(self, client, database_url):
        post(client, inbound(Text="Please stop texting me"))
        assert opted_out(database_url)
        for text in ("Please stop texting me", "STOP please", "Should I stop the order?", "hello"):
            form = inbound(Text=text)
            assert reply_of(post(client, form)) is None
            assert stored(database_url, form["MessageUUID"]) == ("opted_out", None)

    def test_a_clear_opt_out_is_stored_like_stop(self, client, database_url):
        assert answer(client, "hello") == "You said: hello"
        assert answer(client, "take me off this list") == STOP_TEXT
        assert query(database_url, "SELECT number, to_number FROM opt_outs") == [(SENDER, OUR_NUMBER)]
        assert answer(client, "hello") is None
        assert answer(client, "HELP") == sms_responder.DEFAULT_HELP_TEXT
        assert answer(client, "START") == START_TEXT
        assert answer(client, "hello") == "You said: hello"

    def test_the_log_line_names_the_kind_of_match_never_its_words(self, client, logs):
        answer(client, "Please stop texting me")
        answer(client, "Should I stop the order?", From="14155550124")
        lines = [line for line in logs().splitlines() if " webhook " in line]
        assert "outcome=stopped" in lines[0] and "consent=phrase" in lines[0]
        assert "outcome=consent_check" in lines[1] and "consent=word" in lines[1]
        assert "texting" not in logs() and "order" not in logs()

    def test_an_owners_text_is_relayed_not_read_for_consent(self, make_app, database_url):
        """An owner (FORWARD_TO) writes to a customer: "stop texting me" is for the customer; STOP still works."""
        owner = "14155550188"
        client = webtest.TestApp(make_app(forward_to=owner))
        post(client, inbound(Text="hi"))  # forwarded to the owner: the conversation the owner answers
        response = post(client, inbound(Text="Please stop texting me", From=owner))
        assert response.body.decode() == (f'<Response><Message src="{OUR_NUMBER}" dst="{SENDER}" type="sms">'
                                          "Please stop texting me</Message></Response>")
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]


class TestTheFastPath:
    """Most messages hold none of the words any class needs, and are decided without normalizing them."""

    @staticmethod
    def reading_in_full(texts):
        """A matcher whose shortcut passes each of these texts on (each of their words is an anchor)."""
        return Consent(anchors=frozenset(word for text in texts for word in sms_responder.consent_words(text)[0].split()))

    def test_the_shortcut_never_hides_a_match(self):
        texts = [text for text, _, _ in EXAMPLES] + ordinary_messages()
        everything = self.reading_in_full(texts)
        for text in texts:
            assert CONSENT.of(text) == everything.of(text), text

    VOCABULARY = sorted({word for words in (
        sms_responder.COURTESY_WORDS, *sms_responder.OPT_OUT_KEYWORDS.values(), sms_responder.REFUSALS,
        sms_responder.WRITER_REFUSALS, sms_responder.SENDING, sms_responder.DETERMINERS, sms_responder.TEXTING,
        sms_responder.AFTER_TEXTING, sms_responder.REMOVALS, sms_responder.LISTS, sms_responder.OPT_OUT_REQUESTS,
        sms_responder.MAYBE_WORDS, sms_responder.STOP_VISITS, sms_responder.STOP_PLACES, sms_responder.NEGATIONS,
        ("i", "you", "can", "the", "order", "cancel", "appointment", "5")) for word in words})

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(["", "", " ", "!", ", ", ". ", "\n"]),
                              st.booleans()), min_size=1, max_size=8))
    def test_the_shortcut_never_hides_a_match_in_any_mix_of_the_words(self, parts):
        text = " ".join((word.upper() if shout else word) + end for word, end, shout in parts)
        assert CONSENT.of(text) == self.reading_in_full([text]).of(text)

    def test_texts_two_lists_can_split_two_ways_end(self, tmp_path):
        """1,600 characters of phrases with two readings ("stop all", "ever again") and a word that ends any
        match: classified in a process bounded by a timeout (backtracking through each split never ends)."""
        texts = ["stop all " * 177 + "x", "stop texting " + "ever again " * 144 + "x",
                 "remove me " + "ever again " * 144 + "x", "please " * 100 + "leave me alone " + "thanks " * 100 + "x"]
        script = ("import json, sys, sms_responder\n"
                  "consent = sms_responder.Consent.with_phrases(['leave me alone'])\n"
                  "print(json.dumps([str(consent.of(text)) for text in json.load(sys.stdin)]))\n")
        result = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True,
                                text=True, timeout=60, cwd=MODULE.parent)
        assert json.loads(result.stdout) == ["word: stop", "word: stop", "None", "None"], result.stderr

    def test_only_a_maybe_reads_the_stored_questions(self, make_app, monkeypatch, backend):
        """An ordinary message (and a clear one) pays no statement more; a maybe one reads once."""
        statements = []
        transaction = sms_responder.SQLiteTransaction if backend == "sqlite" else sms_responder.PostgresTransaction
        real = transaction.execute
        monkeypatch.setattr(transaction, "execute", lambda tx, sql, params=(): (
            statements.append(sql) if "outcome = 'consent_check'" in sql else None) or real(tx, sql, params))
        client = webtest.TestApp(make_app())
        for text in ("hello", "Can I stop by at 5?", "Please stop texting me"):
            answer(client, text, From="14155550111")
        assert statements == []
        answer(client, "Should I stop the order?")
        assert len(statements) == 1

    def test_an_index_serves_the_read(self, make_app, database_url, monkeypatch, backend):
        """The question's read, as the webhook runs it, seeks messages_by_sender (sender, outcome, time)."""
        reads = []
        transaction = sms_responder.SQLiteTransaction if backend == "sqlite" else sms_responder.PostgresTransaction
        real = transaction.execute
        monkeypatch.setattr(transaction, "execute", lambda tx, sql, params=(): (
            reads.append((sql, params)) if "outcome = 'consent_check'" in sql else None) or real(tx, sql, params))
        client = webtest.TestApp(make_app())
        for index in range(30):
            answer(client, "hello", From=f"1415700{index:04d}")
        answer(client, "Should I stop the order?")
        [(sql, params)] = reads
        with contextlib.closing(connect(database_url)) as db:
            if backend == "sqlite":
                plan = " ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
            else:
                db.execute("SET enable_seqscan = off")  # a small table: make the planner show what it may use
                plan = " ".join(row[0] for row in db.execute("EXPLAIN " + sql, params))
        assert "messages_by_sender" in plan, plan


# -- The consent question ------------------------------------------------------------------------

class TestTheQuestionOncePerDay:
    def test_once_per_sender_and_number_of_ours_per_24_hours(self, make_app, database_url):
        client = webtest.TestApp(make_app(plivo_number=[OUR_NUMBER, OTHER_NUMBER]))
        assert answer(client, "Should I stop the order?") == QUESTION
        assert answer(client, "stop sending me the wrong size") == "You said: stop sending me the wrong size"
        assert answer(client, "Should I stop the order?", To=OTHER_NUMBER) == QUESTION  # another number of ours
        assert answer(client, "Should I stop the order?", From="14155550124") == QUESTION  # another sender
        backdate_messages(database_url, 23 * 60)
        assert answer(client, "unsubscribe from what?") == "You said: unsubscribe from what?"
        backdate_messages(database_url, 61)  # the first question is now 24 h 1 min old
        assert answer(client, "unsubscribe from what?") == QUESTION
        assert [row[0] for row in query(database_url, "SELECT outcome FROM messages WHERE from_number = ? AND"
                                        " to_number = ? ORDER BY received_at", SENDER, OUR_NUMBER)] == [
            "consent_check", "replied", "replied", "consent_check"]

    def test_the_sender_as_plivo_sends_it_or_with_a_plus(self, client):
        assert answer(client, "Should I stop the order?", From="+14155550123") == QUESTION
        assert answer(client, "Should I stop the order?", From="14155550123") == "You said: Should I stop the order?"

    def test_a_clear_opt_out_after_the_question_stops(self, client, database_url):
        assert answer(client, "how do I unsubscribe?") == QUESTION
        assert answer(client, "STOP") == STOP_TEXT
        assert opted_out(database_url)

    def test_the_question_comes_before_any_rule(self, rules_client):
        client = rules_client('[[rule]]\npattern = "order"\nreply = "About your order: ..."\n')
        assert answer(client, "Should I stop the order?") == QUESTION
        assert answer(client, "Should I stop the order?") == "About your order: ..."

    def test_its_placeholders_and_a_bad_one_stops_start_up(self, make_app):
        client = webtest.TestApp(make_app(consent_check_text="Stop texts from {to}? Reply STOP. ({text})"))
        assert answer(client, "Stop the order?") == f"Stop texts from {OUR_NUMBER}? Reply STOP. (Stop the order?)"
        with pytest.raises(ConfigError) as error:
            make_app(consent_check_text="Stop texts from {shop}?")
        assert error.value.problems == ["CONSENT_CHECK_TEXT: unknown placeholder {shop}; use {text}, {from} or {to}"]


class TestTheQuestionIsAnAutomaticReply:
    def test_it_is_forwarded_like_any_message(self, make_app, database_url):
        owner = "14155550188"
        client = webtest.TestApp(make_app(forward_to=owner))
        form = inbound(Text="Should I stop the order?")
        body = post(client, form).body.decode()
        assert body == (f'<Response><Message src="{OUR_NUMBER}" dst="{SENDER}" type="sms">{QUESTION}</Message>'
                        f'<Message src="{OUR_NUMBER}" dst="{owner}" type="sms">{SENDER}: Should I stop the order?'
                        "</Message></Response>")
        assert query(database_url, "SELECT outcome, forwarded_to FROM messages") == [("consent_check", owner)]

    def test_it_counts_toward_the_reply_limit(self, make_app, database_url):
        client = webtest.TestApp(make_app(reply_limit=2))
        assert answer(client, "Should I stop the order?") == QUESTION
        assert answer(client, "hello") == "You said: hello"
        assert answer(client, "hello") is None  # the question was one of the two

    def test_over_the_limit_it_is_not_sent(self, make_app, database_url):
        client = webtest.TestApp(make_app(reply_limit=1))
        assert answer(client, "hello") == "You said: hello"
        form = inbound(Text="Should I stop the order?")
        assert reply_of(post(client, form)) is None
        assert stored(database_url, form["MessageUUID"]) == ("rate_limited", None)
        assert answer(client, "Please stop texting me") == STOP_TEXT  # a clear opt-out is always confirmed

    def test_api_mode_queues_it_and_a_clear_opt_out_cancels_what_waits(self, make_app, database_url, fake_api):
        app = make_app(reply_mode="api", plivo_auth_id=AUTH_ID, plivo_api_url=fake_api.url)
        client = webtest.TestApp(app)
        assert post(client, inbound(Text="Should I stop the order?")).body == b"<Response></Response>"
        assert post(client, inbound(Text="hello")).body == b"<Response></Response>"
        assert query(database_url, "SELECT kind, status, text FROM outbox ORDER BY id") == [
            ("reply", "queued", QUESTION), ("reply", "queued", None)]
        assert post(client, inbound(Text="Don't text me anymore")).body == b"<Response></Response>"
        worker = sms_responder.OutboxWorker(app)
        while worker.send_next():
            pass
        assert query(database_url, "SELECT status FROM outbox ORDER BY id") == [("cancelled",), ("cancelled",),
                                                                              ("sent",)]
        assert [message["text"] for message in fake_api.accepted] == [STOP_TEXT]

    def test_metrics_count_the_new_outcome(self, services, database_url, tmp_path):
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
               "METRICS_TOKEN": METRICS_TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "counts")}
        service = services(env)
        assert scraped(service)[("sms_webhooks_total", '{outcome="consent_check"}')] == 0
        assert send(service, "Should I stop the order?") == 200
        assert send(service, "Please stop texting me", From="14155550124") == 200
        samples = scraped(service)
        assert samples[("sms_webhooks_total", '{outcome="consent_check"}')] == 1
        assert samples[("sms_webhooks_total", '{outcome="stopped"}')] == 1


# -- OPT_OUT_MATCH=exact ------------------------------------------------------------------------

class TestExact:
    def test_only_step_7s_words(self, make_app, database_url):
        client = webtest.TestApp(make_app(opt_out_match="exact"))
        for text in ("Please stop texting me", "Should I stop the order?", "alto", "Stop please"):
            assert answer(client, text) == f"You said: {text}"
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]
        assert answer(client, "Stop!") == STOP_TEXT

    def test_the_rules_files_consent_is_checked_but_not_used(self, rules_client, tmp_path):
        toml = '[consent]\nopt_out = ["leave me alone"]\n[[rule]]\nkeywords = ["stop order"]\nreply = "Stopped."\n'
        client = rules_client(toml, opt_out_match="exact")
        assert answer(client, "leave me alone") == "You said: leave me alone"
        assert answer(client, "stop order") == "Stopped."  # a keyword a maybe opt-out would take, allowed here
        assert problems_of('[consent]\nopt_out = [""]\n', tmp_path, phrases=False) == [
            f"RULES_FILE {tmp_path / 'rules.toml'}: [consent]: opt_out: '' is empty once normalized"]

    def test_the_setting_is_checked(self, make_app):
        with pytest.raises(ConfigError) as error:
            make_app(opt_out_match="fuzzy")
        assert error.value.problems == ["OPT_OUT_MATCH: 'fuzzy' is not one of phrases, exact"]


# -- YES that means yes ---------------------------------------------------------------------------

CONFIRM = """
[[rule]]
name = "appointment"
keywords = ["BOOK"]
reply = "Tomorrow at 9? Reply YES to confirm."

[[rule]]
name = "confirmed"
after = ["appointment"]
keywords = ["YES", "Y"]
reply = "Confirmed: tomorrow at 9."
"""


class TestYes:
    @pytest.mark.parametrize("match", ["phrases", "exact"])
    def test_yes_from_a_subscriber_is_an_ordinary_message(self, make_app, database_url, match):
        client = webtest.TestApp(make_app(opt_out_match=match))
        form = inbound(Text="Yes!")
        assert reply_of(post(client, form)) == "You said: Yes!"
        assert stored(database_url, form["MessageUUID"]) == ("replied", "You said: Yes!")

    @pytest.mark.parametrize("match", ["phrases", "exact"])
    def test_yes_opts_in_a_sender_who_opted_out(self, make_app, database_url, match):
        client = webtest.TestApp(make_app(opt_out_match=match))
        answer(client, "STOP")
        assert answer(client, "yes") == START_TEXT
        assert not opted_out(database_url)
        assert answer(client, "yes") == "You said: yes"

    def test_a_rule_with_after_confirms_with_yes(self, rules_client, database_url):
        client = rules_client(CONFIRM)
        assert answer(client, "BOOK") == "Tomorrow at 9? Reply YES to confirm."
        assert answer(client, "YES") == "Confirmed: tomorrow at 9."
        assert query(database_url, "SELECT rule FROM messages ORDER BY received_at") == [
            ("appointment",), ("confirmed",)]
        assert answer(client, "YES") == "You said: YES"  # not after the question
        answer(client, "STOP")
        assert answer(client, "YES") == START_TEXT  # an opted-out sender: YES opts in, whatever the rules

    def test_the_consent_question_in_between_is_the_previous_message(self, rules_client):
        """`after` reads the sender's most recent message: one that got the consent question counts too."""
        client = rules_client(CONFIRM)
        answer(client, "BOOK")
        assert answer(client, "Should I stop the order?") == QUESTION
        assert answer(client, "YES") == "You said: YES"

    def test_start_unstop_and_resume_opt_in_as_before(self, client):
        for text in ("START", "unstop", "Resume."):
            assert answer(client, text) == START_TEXT


# -- The rules file's [consent] -------------------------------------------------------------------

class TestRulesFileConsent:
    def test_its_phrases_opt_out_as_whole_messages_with_courtesy_words(self, rules_client, database_url):
        client = rules_client('[consent]\nopt_out = ["Leave me alone", "not interested"]\n')
        assert answer(client, "leave me alone!!", From="14155550001") == STOP_TEXT
        assert answer(client, "Please, leave me ALONE. Thanks", From="14155550002") == STOP_TEXT
        assert answer(client, "Not interested", From="14155550003") == STOP_TEXT
        assert answer(client, "not interested in the red one", From="14155550004") == (
            "You said: not interested in the red one")
        assert query(database_url, "SELECT number FROM opt_outs ORDER BY number") == [
            ("14155550001",), ("14155550002",), ("14155550003",)]

    def test_try_names_the_rules_file(self, env, tmp_path):
        (tmp_path / "rules.toml").write_text('[consent]\nopt_out = ["leave me alone"]\n')
        result = run({**env, "RULES_FILE": "rules.toml"}, tmp_path, "try", "Leave me alone")
        assert result.stdout.splitlines()[0] == "outcome: stopped (rules file: leave me alone)"

    def test_a_language_listing_alto_answers_in_its_language(self, rules_client):
        client = rules_client('[[language]]\nname = "es"\nopt_out = ["ALTO"]\nstop_text = "Dado de baja."\n')
        assert answer(client, "alto", From="14155550001") == "Dado de baja."  # step 7: the language's word
        assert answer(client, "Alto, por favor", From="14155550002") == "Dado de baja."  # the consent class
        assert answer(client, "basta", From="14155550003") == STOP_TEXT  # not a word of the language

    @pytest.mark.parametrize("toml,expected", [
        ('[consent]\nopt_out = "leave me alone"\n', "[consent]: opt_out must be a list"),
        ('[consent]\nopt_out = [1]\n', "[consent]: opt_out: must be a list of strings"),
        ('[consent]\nopt_out = [""]\n', "[consent]: opt_out: '' is empty once normalized"),
        ('[consent]\nopt_out = ["?!"]\n', "[consent]: opt_out: '?!' is empty once normalized"),
        ('[consent]\nopt_outs = ["x"]\n', '[consent]: unknown key "opt_outs"'),
        ('consent = ["x"]\n', "the file: consent must be a table"),
        ('[[consent]]\nopt_out = ["x"]\n', "the file: consent must be a table"),
        ('[consent]\nopt_out = ["Please!"]\n', '[consent]: opt_out: "Please!" is only courtesy words'),
        ('[consent]\nopt_out = ["start"]\n', '[consent]: opt_out: "start" is a built-in opt-in word'),
        ('[consent]\nopt_out = ["yes"]\n', '[consent]: opt_out: "yes" is a built-in opt-in word'),
        ('[consent]\nopt_out = ["help me"]\n', '[consent]: opt_out: "help me" is a built-in help word'),
        ('[[language]]\nname = "es"\nhelp = ["AYUDA"]\n[consent]\nopt_out = ["ayuda"]\n',
         '[consent]: opt_out: "ayuda" is a help word of language "es"'),
        ('[consent]\nopt_out = ["leave me alone"]\n[[rule]]\nkeywords = ["Leave me alone"]\nreply = ""\n',
         'rule 1: keywords: "Leave me alone" is an opt-out (rules file: leave me alone): opt-outs cannot be rules'),
        ('[[rule]]\nkeywords = ["stop please"]\nreply = ""\n',
         'rule 1: keywords: "stop please" is an opt-out (keyword: stop): opt-outs cannot be rules'),
        ('[[rule]]\nkeywords = ["alto"]\nreply = ""\n',
         'rule 1: keywords: "alto" is an opt-out (spanish: alto): opt-outs cannot be rules'),
        ('[[rule]]\nkeywords = ["stop order"]\nreply = ""\n',
         'rule 1: keywords: "stop order" may be an opt-out (word: stop): it would get the consent question'),
        ('[[language]]\nname = "es"\nhelp = ["ALTO"]\n',
         'language 1 ("es"): help: "ALTO" is an opt-out (spanish: alto); list it under opt_out'),
    ], ids=["not a list", "not strings", "an empty string", "empty once normalized", "unknown key",
            "not a table", "an array of tables", "only courtesy words", "an opt-in word", "yes",
            "a help word once courtesy words are stripped", "a language's help word", "a rule keyword",
            "a rule keyword that is a clear opt-out", "a rule keyword in Spanish",
            "a rule keyword that may be an opt-out", "a language's help word that is an opt-out"])
    def test_each_problem_is_one_line_naming_the_file_and_place(self, tmp_path, toml, expected):
        problems = problems_of(toml, tmp_path)
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"RULES_FILE {tmp_path / 'rules.toml'}: {expected}"), problems

    def test_a_language_may_list_the_spanish_words_and_a_rule_may_take_yes(self, tmp_path):
        assert problems_of('[[language]]\nname = "es"\nopt_out = ["ALTO", "BASTA", "no más"]\n'
                           '[[rule]]\nkeywords = ["YES"]\nreply = "ok"\n', tmp_path) == []

    def test_start_up_stops_with_exit_2(self, env, tmp_path):
        (tmp_path / "rules.toml").write_text('[consent]\nopt_out = [""]\nmore = 1\n')
        for command in ([], ["try", "hi"]):
            result = run({**env, "RULES_FILE": "rules.toml"}, tmp_path, *command)
            assert result.returncode == 2
            assert result.stderr.splitlines() == [
                'sms_responder: RULES_FILE rules.toml: [consent]: unknown key "more"',
                "sms_responder: RULES_FILE rules.toml: [consent]: opt_out: '' is empty once normalized"]

    def test_a_broken_consent_table_on_reload_keeps_the_rules_in_force(self, make_app, tmp_path, logs):
        path = tmp_path / "rules.toml"
        path.write_text('[consent]\nopt_out = ["leave me alone"]\n')
        app = make_app(rules_file=str(path))
        client = webtest.TestApp(app)
        path.write_text('[consent]\nopt_out = ["leave me alone", 7]\n')
        app.rules.check()
        assert "rules not reloaded" in logs() and "[consent]: opt_out: must be a list of strings" in logs()
        assert answer(client, "leave me alone") == STOP_TEXT


# -- What people see: try, messages, the inbox --------------------------------------------------

class TestWhatPeopleSee:
    @pytest.mark.parametrize("text,first_line", [
        ("Please stop texting me", "outcome: stopped (phrase: stop texting)"),
        ("Should I stop the order?", "outcome: consent_check (word: stop)"),
        ("Alto por favor", "outcome: stopped (spanish: alto)"),
        ("hello", "outcome: replied"),
        ("STOP", "outcome: stopped"),  # step 7's word: printed as before
    ])
    def test_try_prints_what_matched(self, env, tmp_path, text, first_line):
        result = run(env, tmp_path, "try", text)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == first_line

    def test_try_shows_the_question_then_ordinary_handling(self, env, tmp_path, make_app):
        result = run(env, tmp_path, "try", "Should I stop the order?")
        assert result.stdout.splitlines()[1:3] == ["rule: none", f"reply: {QUESTION}"]
        client = webtest.TestApp(make_app())
        answer(client, "how do I unsubscribe?")  # asked for real
        result = run(env, tmp_path, "try", "--from", SENDER, "Should I stop the order?")
        assert result.stdout.splitlines()[:3] == ["outcome: replied", "rule: none",
                                                  "reply: You said: Should I stop the order?"]

    def test_messages_show_consent_check(self, env, tmp_path, make_app):
        client = webtest.TestApp(make_app())
        answer(client, "Should I stop the order?")
        lines = run(env, tmp_path, "messages", "--json").stdout.splitlines()
        assert [(json.loads(line)["outcome"], json.loads(line)["reply"]) for line in lines] == [
            ("consent_check", QUESTION)]
        text = run(env, tmp_path, "messages").stdout
        assert "consent_check" in text and "Should I stop the order?" in text

    def test_the_inbox_marks_the_message_in_text(self, make_app):
        from test_inbox import CONVERSATION, add_person, log_in
        app = make_app()
        add_person(app)
        browser = webtest.TestApp(app)
        log_in(browser)
        post(browser, inbound(Text="hello"))
        post(browser, inbound(Text="Should I stop the order?"))
        page = browser.get(CONVERSATION, status=200)
        assert page.text.count("Maybe an opt-out") == 1
        question = page.text.index("Should I stop the order?")
        assert question < page.text.index("Maybe an opt-out") < page.text.index(QUESTION)


# -- Ordinary messages ----------------------------------------------------------------------------

class TestOrdinaryMessages:
    def test_a_corpus_of_ordinary_texts_unsubscribes_no_one_and_rarely_asks(self, client, database_url):
        """Each from a sender of its own, so that each could be asked; what they got, counted."""
        texts = ordinary_messages()
        assert len(texts) >= 300
        for index, text in enumerate(texts):
            post(client, inbound(Text=text, From=f"1415800{index:04d}"))
        outcomes = dict(query(database_url, "SELECT outcome, count(*) FROM messages GROUP BY outcome"))
        assert "stopped" not in outcomes and query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]
        assert outcomes.get("consent_check", 0) * 200 < len(texts), outcomes

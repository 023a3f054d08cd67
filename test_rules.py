"""Reply rules (RULES_FILE): parsing and its errors, each condition, languages, reload, `try`, segments.

The contract's "Reply rules" section, bullet by bullet. Rules that touch storage run on
SQLite and PostgreSQL; reloading runs under gunicorn with three workers; `try` runs as
a program, as users run it.
"""

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import gsm0338  # noqa: F401 - registers the independent "gsm03.38" codec
import pytest
import webtest

import sms_responder
from conftest import MODULE, load_previous_release, query
from fake_plivo_api import FakePlivoAPI
from sms_responder import ConfigError, Hours, load_rules, segments_of
from test_reliability import post_raw, reply_text, signed_body
from test_sms_responder import AUTH_TOKEN, OTHER_NUMBER, OUR_NUMBER, SENDER, inbound, post, reply_of

HOURS_ALWAYS_OPEN = '[hours]\ntimezone = "UTC"\nmon-sun = "00:00-24:00"\n'
HOURS_ALWAYS_CLOSED = '[hours]\ntimezone = "UTC"\n'


# -- Helpers -----------------------------------------------------------------

@pytest.fixture
def rules_path(tmp_path):
    return tmp_path / "rules.toml"


@pytest.fixture
def rules_app(make_app, rules_path):
    """rules_app(toml, **settings): an app whose RULES_FILE holds `toml`."""
    def build(toml, **settings):
        rules_path.write_text(toml)
        return make_app(rules_file=str(rules_path), **settings)
    return build


@pytest.fixture
def rules_client(rules_app):
    """rules_client(toml, **settings): a webtest client of rules_app(toml, **settings)."""
    return lambda toml, **settings: webtest.TestApp(rules_app(toml, **settings))


def answer(client, text, **fields):
    """The reply text to one fresh message (None for an empty Response)."""
    return reply_of(post(client, inbound(Text=text, **fields)))


def stored(database_url, message_uuid):
    """(outcome, rule, reply) stored for one message."""
    return query(database_url, "SELECT outcome, rule, reply FROM messages WHERE message_uuid = ?", message_uuid)[0]


def problems_of(toml, tmp_path, numbers=(OUR_NUMBER,)):
    """The start-up lines a rules file gets (ConfigError's problems); [] when it is valid."""
    path = tmp_path / "rules.toml"
    path.write_text(toml)
    try:
        load_rules(str(path), numbers)
    except ConfigError as error:
        return error.problems
    return []


def run(*args, env, cwd):
    return subprocess.run([sys.executable, str(MODULE), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def try_env(tmp_path, rules_path):
    """The environment of a `try` run in tmp_path with RULES_FILE=rules.toml and a SQLite file."""
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'sms.db'}", "RULES_FILE": rules_path.name}


def try_lines(env, cwd, *args):
    result = run("try", *args, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def wait_for(condition, timeout=10.0):
    """Poll condition() until it is true (its value) or timeout seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return None


# -- Errors stop start-up: one line per problem, naming the file and the place -----------------

RULE = '[[rule]]\nname = "hours"\nkeywords = ["HOURS"]\nreply = "9-5"\n'


class TestRulesFileErrors:
    @pytest.mark.parametrize("toml,expected", [
        (RULE.replace("keywords", "keyword"), 'rule 1 ("hours"): unknown key "keyword"'),
        ('colour = "blue"\n', 'the file: unknown key "colour"'),
        ('[hours]\ntimezone = "UTC"\nmonday = "09:00-17:00"\n', '[hours]: unknown key "monday"'),
        ('[[language]]\nname = "es"\nstop = ["ALTO"]\n', 'language 1 ("es"): unknown key "stop"'),
    ], ids=["rule", "top level", "hours", "language"])
    def test_unknown_key(self, tmp_path, toml, expected):
        assert problems_of(toml, tmp_path) == [f"RULES_FILE {tmp_path / 'rules.toml'}: {expected}"]

    @pytest.mark.parametrize("toml,expected", [
        (RULE.replace('["HOURS"]', '"HOURS"'), 'rule 1 ("hours"): keywords must be a list'),
        ('[[rule]]\nfirst_message = "yes"\nreply = ""\n', "rule 1: first_message must be true or false"),
        ('[[rule]]\nkeywords = ["A", 2]\nreply = ""\n', "rule 1: keywords: must be a list of strings"),
        ('[[rule]]\nreply = 5\n', "rule 1: reply must be a string"),
        ('hours = "9-5"\n', "the file: hours must be a table"),
        ('[rule]\nreply = "x"\n', "the file: rule must be a list"),
    ], ids=["string for list", "string for boolean", "number in list", "number for string", "hours", "[rule]"])
    def test_mistyped_key(self, tmp_path, toml, expected):
        assert problems_of(toml, tmp_path) == [f"RULES_FILE {tmp_path / 'rules.toml'}: {expected}"]

    @pytest.mark.parametrize("toml,expected", [
        ('[[rule]]\nname = "x"\nkeywords = ["A"]\n', 'rule 1 ("x"): reply is required ("" answers nothing)'),
        ('[[rule]]\npattern = "(unclosed"\nreply = ""\n', "rule 1: pattern: invalid regular expression"),
        ('[hours]\ntimezone = "Mars/Olympus_Mons"\n', '[hours]: timezone: unknown time zone "Mars/Olympus_Mons"'),
        ('[hours]\nmon = "09:00-17:00"\n', "[hours]: timezone is required"),
        ('[hours]\ntimezone = "UTC"\nmon = "9-5"\n', "[hours]: mon: '9-5' is not \"HH:MM-HH:MM\""),
        ('[hours]\ntimezone = "UTC"\nmon = "17:00-09:00"\n', '[hours]: mon: "17:00-09:00": the end must be after'),
        ('[hours]\ntimezone = "UTC"\nmon = "10:00-24:30"\n', '[hours]: mon: "10:00-24:30": the end must be after'),
        ('[hours]\ntimezone = "UTC"\nmon-fri = "09:00-17:00"\nwed = "10:00-12:00"\n', "[hours]: wed is given twice"),
        ('[hours]\ntimezone = "UTC"\nfri-mon = "09:00-17:00"\n', '[hours]: unknown key "fri-mon"'),
        ('[hours]\ntimezone = "UTC"\nclosed_dates = ["25/12/2026"]\n', "[hours]: closed_dates: '25/12/2026' is not a date"),
        ('[[rule]]\nwhen = "closed"\nreply = ""\n', "rule 1: when: needs [hours]"),
        (HOURS_ALWAYS_OPEN + '[[rule]]\nwhen = "evening"\nreply = ""\n', 'rule 1: when: "evening" is not "open" or'),
        ('[[rule]]\nonce_per = "12 hours"\nreply = ""\n', 'rule 1: once_per: "12 hours" is not a period'),
        ('[[rule]]\nonce_per = "0h"\nreply = ""\n', 'rule 1: once_per: "0h" is not a period'),
        ('[[rule]]\nto = ["+14155550999"]\nreply = ""\n', "rule 1: to: 14155550999 not in PLIVO_NUMBER"),
        ('[[rule]]\nfrom = ["+44x"]\nreply = ""\n', 'rule 1: from: "44x" is not the start of a phone number'),
        ('[[rule]]\nreply = "Hi {name}"\n', "rule 1: reply: unknown placeholder {name}"),
        (RULE + RULE, 'rule: two rules are named "hours"'),
        ('[[rule]]\nname = "rule 2"\nreply = ""\n[[rule]]\nreply = ""\n', 'rule: two rules are named "rule 2"'),
        ('[[language]]\nname = "es"\n[[language]]\nname = "es"\n', 'language: two languages are named "es"'),
        ('[[language]]\nopt_out = ["ALTO"]\n', "language 1: name is required"),
        ('[[rule]]\nkeywords = ["Stop!"]\nreply = ""\n', 'rule 1: keywords: "Stop!" is a built-in opt-out word'),
        ('[[language]]\nname = "es"\nhelp = ["AYUDA"]\n[[rule]]\nkeywords = ["ayuda"]\nreply = ""\n',
         'rule 1: keywords: "ayuda" is a help word of language "es"'),
        ('[[language]]\nname = "es"\nopt_in = ["help"]\n', 'language 1 ("es"): opt_in: "help" is already a built-in help'),
        ('[[language]]\nname = "es"\nopt_out = ["ALTO"]\nhelp = ["alto"]\n',
         'language 1 ("es"): help: "alto" is already an opt-out word of language "es"'),
        ('[[language]]\nname = "es"\nopt_out = ["PARAR"]\n[[language]]\nname = "pt"\nopt_out = ["parar"]\n',
         'language 2 ("pt"): opt_out: "parar" is already an opt-out word of language "es"'),
    ], ids=["rule without reply", "invalid regular expression", "unknown time zone", "hours without timezone",
            "malformed opening", "opening ends before it starts", "opening past 24:00", "a day given twice",
            "a range backwards in the week", "malformed closed date", "when without hours", "when neither",
            "malformed once_per", "zero once_per", "to not ours", "from not digits", "unknown placeholder",
            "two rules with one name", "a name equal to a default name", "two languages with one name",
            "language without name", "rule keyword is a built-in compliance word",
            "rule keyword is a language word", "word in two families (built in)",
            "word in two families (one language)", "word in two languages"])
    def test_each_problem_is_one_line_naming_the_file_and_place(self, tmp_path, toml, expected):
        problems = problems_of(toml, tmp_path)
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"RULES_FILE {tmp_path / 'rules.toml'}: {expected}"), problems

    def test_toml_syntax_error_names_its_line(self, tmp_path):
        problems = problems_of('[[rule]]\nreply = "ok"\nkeywords = [HOURS]\n', tmp_path)
        assert len(problems) == 1 and problems[0].startswith(f"RULES_FILE {tmp_path / 'rules.toml'}: invalid TOML")
        assert "line 3" in problems[0]

    def test_every_problem_is_reported_at_once(self, tmp_path):
        toml = '[[rule]]\nkeyword = ["A"]\nreply = "{x}"\n[[rule]]\nonce_per = "soon"\n'
        assert [line.split(": ", 1)[1] for line in problems_of(toml, tmp_path)] == [
            'rule 1: unknown key "keyword"', "rule 1: reply: unknown placeholder {x}; use {text}, {from} or {to}",
            'rule 2: reply is required ("" answers nothing)', 'rule 2: once_per: "soon" is not a period such as '
                                                               "90s, 30m, 12h or 7d"]

    def test_missing_file_is_named(self, tmp_path):
        with pytest.raises(ConfigError) as error:
            load_rules(str(tmp_path / "nope.toml"), [OUR_NUMBER])
        assert error.value.problems == [f"RULES_FILE {tmp_path / 'nope.toml'}: cannot read it: No such file or directory"]

    def test_the_example_file_is_valid_as_is(self):
        rules = load_rules(str(MODULE.parent / "rules.example.toml"), [OUR_NUMBER])
        assert len(rules.rules) == 13 and rules.hours is not None and rules.consent.own_phrases
        source = (MODULE.parent / "rules.example.toml").read_text()
        for key in ("keywords", "pattern", "when", "once_per", "first_message", "to", "from", "media", "forward",
                    "after", "within", "reply", "name"):  # every key of a rule, shown at work
            assert re.search(rf"^{key} = ", source, re.MULTILINE), key

    def test_start_up_stops_with_exit_2_and_one_line_per_problem(self, tmp_path, try_env, rules_path):
        rules_path.write_text('[[rule]]\nname = "hours"\nkeyword = ["HOURS"]\nreply = "x"\n[[rule]]\nwhen = "open"\n')
        for command in ([], ["try", "hi"]):
            result = run(*command, env=try_env, cwd=tmp_path)
            assert result.returncode == 2
            assert result.stderr.splitlines() == [
                'sms_responder: RULES_FILE rules.toml: rule 1 ("hours"): unknown key "keyword"',
                'sms_responder: RULES_FILE rules.toml: rule 2: reply is required ("" answers nothing)',
                'sms_responder: RULES_FILE rules.toml: rule 2: when: needs [hours] (and its timezone)']
        assert not (tmp_path / "sms.db").exists()


# -- What each condition matches, through the webhook -------------------------------------------

class TestRuleConditions:
    """Each key of a [[rule]], and first-match-wins, on both backends."""

    def test_keywords_match_the_whole_normalized_text(self, rules_client):
        client = rules_client('[[rule]]\nkeywords = ["HOURS", "when  are you OPEN"]\nreply = "9-5"\n')
        assert [answer(client, text) for text in ("hours", "  Hours!! ", "When are you open?", "hours please")] == [
            "9-5", "9-5", "9-5", "You said: hours please"]

    def test_pattern_is_searched_ignoring_case(self, rules_client):
        client = rules_client("[[rule]]\npattern = '\\b(price|cost)s?\\b'\nreply = \"$5\"\n")
        assert [answer(client, text) for text in ("What's the PRICE?", "costs", "priceless")] == [
            "$5", "$5", "You said: priceless"]

    @pytest.mark.parametrize("hours,when,expected", [
        (HOURS_ALWAYS_OPEN, "open", "rule"), (HOURS_ALWAYS_OPEN, "closed", "default"),
        (HOURS_ALWAYS_CLOSED, "closed", "rule"), (HOURS_ALWAYS_CLOSED, "open", "default"),
    ], ids=["open while open", "closed while open", "closed while closed", "open while closed"])
    def test_when_follows_the_hours(self, rules_client, hours, when, expected):
        client = rules_client(hours + f'[[rule]]\nwhen = "{when}"\nreply = "rule"\n', reply_text="default")
        assert answer(client, "hi") == expected

    def test_to_and_from(self, rules_client):
        client = rules_client(
            f'[[rule]]\nto = ["+{OTHER_NUMBER}"]\nreply = "other line"\n'
            '[[rule]]\nfrom = ["+44", "1212"]\nreply = "UK or NYC"\n', plivo_number=f"{OUR_NUMBER},{OTHER_NUMBER}")
        assert answer(client, "hi", To=OTHER_NUMBER) == "other line"
        assert answer(client, "hi", From="+447700900123") == "UK or NYC"
        assert answer(client, "hi", From="12125550123") == "UK or NYC"
        assert answer(client, "hi") == "You said: hi"

    def test_media(self, rules_client):
        client = rules_client('[[rule]]\nmedia = true\nreply = "nice picture"\n'
                              '[[rule]]\nmedia = false\nreply = "words only"\n')
        mms = {"Type": "mms", "Text": None, "Body": "look", "MediaCount": "1", "Media0": "https://x.example/1.jpg"}
        assert reply_of(post(client, inbound(**mms))) == "nice picture"
        assert reply_of(post(client, inbound(**{**mms, "MediaCount": "0", "Media0": None}))) == "words only"
        assert answer(client, "hi") == "words only"

    def test_first_match_wins_and_a_rule_without_conditions_matches_everything(self, rules_client):
        client = rules_client('[[rule]]\nkeywords = ["hours"]\nreply = "first"\n[[rule]]\nreply = "catch-all"\n'
                              '[[rule]]\nkeywords = ["hours"]\nreply = "never"\n')
        assert [answer(client, text) for text in ("HOURS", "anything")] == ["first", "catch-all"]

    def test_an_earlier_rule_without_keywords_wins_over_a_later_keyword_rule(self, rules_client):
        client = rules_client('[[rule]]\nfrom = ["44"]\nreply = "uk"\n[[rule]]\nkeywords = ["hours"]\nreply = "9-5"\n')
        assert answer(client, "hours", From="447700900123") == "uk"
        assert answer(client, "hours") == "9-5"

    def test_no_rule_matches_then_the_reply_function_answers(self, rules_app):
        app = rules_app('[[rule]]\nkeywords = ["hours"]\nreply = "9-5"\n')
        app.reply = lambda message: f"function: {message.text}"
        assert answer(webtest.TestApp(app), "other") == "function: other"

    def test_placeholders_cleaning_and_the_1600_character_cut(self, rules_client):
        client = rules_client('[[rule]]\nreply = "{from} to {to}: {text}\\u0000!"\n')
        assert answer(client, "x" * 2000).startswith(f"{SENDER} to {OUR_NUMBER}: xxx")
        assert len(answer(client, "x" * 2000)) == 1600
        assert answer(client, "hi") == f"{SENDER} to {OUR_NUMBER}: hi!"

    def test_empty_reply_answers_nothing_and_stores_the_rule(self, rules_client, database_url):
        client = rules_client('[[rule]]\nname = "quiet"\nkeywords = ["thanks"]\nreply = ""\n')
        form = inbound(Text="Thanks!")
        assert post(client, form).body == b"<Response></Response>"
        assert stored(database_url, form["MessageUUID"]) == ("no_reply", "quiet", None)

    def test_the_rule_is_stored_and_logged_with_the_segments(self, rules_client, database_url, logs):
        client = rules_client('[[rule]]\nname = "hours"\nkeywords = ["hours"]\nreply = "Open 9-5"\n')
        form = inbound(Text="hours")
        post(client, form)
        post(client, inbound(Text="hello"))
        assert stored(database_url, form["MessageUUID"]) == ("replied", "hours", "Open 9-5")
        webhook_lines = [line for line in logs().splitlines() if " webhook " in line]
        assert " rule=hours segments=1 " in webhook_lines[0]
        assert "rule=" not in webhook_lines[1] and " segments=1 " in webhook_lines[1]

    def test_rule_replies_count_toward_the_reply_limit(self, rules_client, database_url):
        client = rules_client('[[rule]]\nreply = "rule"\n', reply_limit=2)
        assert [answer(client, "hi") for _ in range(3)] == ["rule", "rule", None]

    def test_opt_outs_and_the_limit_come_before_the_rules(self, rules_client):
        client = rules_client('[[rule]]\nreply = "rule"\n', reply_limit=1)
        assert answer(client, "hi") == "rule"
        assert answer(client, "hi") is None  # over the limit: no rule
        assert answer(client, "STOP") == sms_responder.DEFAULT_STOP_TEXT  # confirmations are never limited
        assert answer(client, "hi", From="14155550777") == "rule"
        assert answer(client, "STOP", From="14155550777") == sms_responder.DEFAULT_STOP_TEXT
        assert answer(client, "hi", From="14155550777") is None  # opted out: no rule

    def test_own_numbers_and_plivo_intents_are_never_answered_by_rules(self, rules_client):
        client = rules_client('[[rule]]\nreply = "rule"\n', plivo_number=f"{OUR_NUMBER},{OTHER_NUMBER}")
        assert answer(client, "hi", From=OTHER_NUMBER) is None
        assert answer(client, "hi", MessageIntent="help") is None


class TestRulesDecidedByTheDatabase:
    """first_message and once_per are read from stored messages: they hold across processes."""

    def test_first_message(self, rules_client, database_url):
        client = rules_client('[[rule]]\nfirst_message = true\nreply = "welcome"\n'
                              '[[rule]]\nfirst_message = false\nreply = "welcome back"\n',
                              plivo_number=f"{OUR_NUMBER},{OTHER_NUMBER}")
        assert [answer(client, "hi") for _ in range(2)] == ["welcome", "welcome back"]
        assert answer(client, "hi", To=OTHER_NUMBER) == "welcome"  # per number of ours
        assert answer(client, "hi", From="+" + SENDER) == "welcome back"  # with or without +

    def test_first_message_counts_any_stored_message_even_a_duplicate_or_an_opt_out(self, rules_client):
        client = rules_client('[[rule]]\nfirst_message = true\nreply = "welcome"\n')
        assert answer(client, "STOP") == sms_responder.DEFAULT_STOP_TEXT
        assert answer(client, "START") == sms_responder.DEFAULT_START_TEXT
        assert answer(client, "hi") == "You said: hi"

    def test_once_per_skips_the_rule_within_its_period(self, rules_client, database_url):
        client = rules_client('[[rule]]\nname = "away"\nonce_per = "1s"\nreply = "away"\n'
                              '[[rule]]\nreply = "next rule"\n', plivo_number=f"{OUR_NUMBER},{OTHER_NUMBER}")
        assert [answer(client, "hi") for _ in range(2)] == ["away", "next rule"]
        assert answer(client, "hi", From="14155550777") == "away"  # per sender
        assert answer(client, "hi", To=OTHER_NUMBER) == "away"  # per number of ours
        time.sleep(1.1)
        assert answer(client, "hi") == "away"

    def test_once_per_counts_the_messages_the_rule_matched_even_with_an_empty_reply(self, rules_client):
        client = rules_client('[[rule]]\nname = "quiet"\nonce_per = "1h"\nreply = ""\n[[rule]]\nreply = "next"\n')
        assert [answer(client, "hi") for _ in range(2)] == [None, "next"]

    @pytest.mark.parametrize("kind", ["stdlib", "gunicorn"])
    def test_two_processes_agree(self, services, database_url, backend, tmp_path, rules_path, kind):
        """Two hosts on one PostgreSQL, or gunicorn -w 3 / the stdlib server on one SQLite file."""
        rules_path.write_text('[[rule]]\nname = "welcome"\nfirst_message = true\nreply = "welcome"\n'
                              '[[rule]]\nname = "away"\nonce_per = "1h"\nreply = "away"\n[[rule]]\nreply = "third"\n')
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
               "RULES_FILE": str(rules_path)}
        hosts = [services(env, kind=kind) for _ in range(2 if backend == "postgresql" else 1)]
        answers = []
        for i in range(6):
            base_url = hosts[i % len(hosts)].url
            status, body = post_raw(base_url, *signed_body(base_url, inbound(Text="hi")))
            answers.append(reply_text(body))
        assert answers == ["welcome", "away", "third", "third", "third", "third"]


# -- Conversations with state: after and within ----------------------------------------------------

MENU = ('[[rule]]\nname = "menu"\nkeywords = ["MENU", "HI"]\nreply = "Reply 1 for hours, 2 for directions."\n'
        '[[rule]]\nname = "menu-hours"\nafter = ["menu", "menu-again"]\nwithin = "30m"\nkeywords = ["1"]\n'
        'reply = "Open Mon-Fri 9-5."\n'
        '[[rule]]\nname = "menu-directions"\nafter = ["menu", "menu-again"]\nkeywords = ["2"]\n'
        'reply = "1 Main St."\n'
        '[[rule]]\nname = "menu-again"\nafter = ["menu", "menu-again"]\nreply = "Please reply 1 or 2."\n')
CONFIRM = ('[[rule]]\nname = "appointment"\nkeywords = ["BOOK"]\nreply = "Tomorrow at 9? Reply C to confirm."\n'
           '[[rule]]\nname = "confirmed"\nafter = ["appointment"]\nwithin = "1d"\nkeywords = ["C", "confirm"]\n'
           'reply = "Confirmed: tomorrow at 9."\n'
           '[[rule]]\nname = "not-confirmed"\nafter = ["appointment"]\nwithin = "1d"\n'
           'reply = "Not confirmed. Reply C to confirm, or call us."\n')


def backdate_messages(database_url, minutes):
    """Make every stored message `minutes` minutes older (the tests cannot wait half an hour)."""
    from conftest import connect
    connection = connect(database_url)
    with connection:
        for message_uuid, received_at in connection.execute("SELECT message_uuid, received_at FROM messages"):
            moment = datetime.fromisoformat(received_at) if isinstance(received_at, str) else received_at
            moment -= timedelta(minutes=minutes)
            value = moment.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else moment
            connection.execute("UPDATE messages SET received_at = ? WHERE message_uuid = ?", (value, message_uuid))
    connection.close()


class TestConversationsWithState:
    @pytest.mark.parametrize("toml,expected", [
        (MENU.replace('after = ["menu", "menu-again"]\nreply', 'after = ["menu", "menuu"]\nreply'),
         'rule 4 ("menu-again"): after: no rule is named "menuu"'),
        ('[[rule]]\nwithin = "30m"\nreply = ""\n', "rule 1: within needs after"),
        (MENU.replace('within = "30m"', 'within = "half an hour"'),
         'rule 2 ("menu-hours"): within: "half an hour" is not a period'),
        ('[[rule]]\nname = "a"\nafter = "a"\nreply = ""\n', 'rule 1 ("a"): after must be a list'),
        ('[[rule]]\nname = "a"\nafter = []\nreply = ""\n', 'rule 1 ("a"): after: name at least one rule'),
        ('[[rule]]\nname = "a"\nafter = [1]\nreply = ""\n', 'rule 1 ("a"): after: must be a list of strings'),
        ('[[rule]]\nname = "a"\nafter = ["a"]\nwithin = 30\nreply = ""\n', 'rule 1 ("a"): within must be a string'),
    ], ids=["unknown rule", "within without after", "malformed within", "after not a list", "after empty",
            "after not strings", "within not a string"])
    def test_each_problem_is_one_line_naming_the_file_and_place(self, tmp_path, toml, expected):
        problems = problems_of(toml, tmp_path)
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"RULES_FILE {tmp_path / 'rules.toml'}: {expected}"), problems

    def test_a_menu_step_by_step(self, rules_client, database_url):
        client = rules_client(MENU)
        assert answer(client, "2") == "You said: 2"  # no menu yet: the reply function
        assert [answer(client, text) for text in ("MENU", "2", "nonsense", "1", "1")] == [
            "Reply 1 for hours, 2 for directions.", "1 Main St.", "You said: nonsense", "You said: 1",
            "You said: 1"]
        assert [answer(client, text) for text in ("hi", "three", "1")] == [
            "Reply 1 for hours, 2 for directions.", "Please reply 1 or 2.", "Open Mon-Fri 9-5."]
        assert query(database_url, "SELECT rule FROM messages ORDER BY received_at") == [
            (None,), ("menu",), ("menu-directions",), (None,), (None,), (None,), ("menu",), ("menu-again",),
            ("menu-hours",)]

    def test_within_the_time_only(self, rules_client, database_url):
        client = rules_client(MENU)
        answer(client, "MENU")
        backdate_messages(database_url, 29)
        assert answer(client, "1") == "Open Mon-Fri 9-5."
        answer(client, "MENU")
        backdate_messages(database_url, 31)
        assert answer(client, "1") == "You said: 1"

    def test_only_the_most_recent_message_of_this_sender_to_this_number_counts(self, rules_client):
        """The sender as Plivo sends it (as for the reply limit); any of its messages, rule or not."""
        client = rules_client(MENU, plivo_number=f"{OUR_NUMBER},{OTHER_NUMBER}")
        answer(client, "MENU")
        assert answer(client, "1", From="14155550777") == "You said: 1"  # another sender
        assert answer(client, "1", To=OTHER_NUMBER) == "You said: 1"  # another number of ours
        assert answer(client, "HELP") == sms_responder.DEFAULT_HELP_TEXT  # then the most recent matched no rule
        assert answer(client, "1") == "You said: 1"
        answer(client, "MENU")
        assert answer(client, "1") == "Open Mon-Fri 9-5."

    def test_a_question_its_answer_and_the_fallback(self, rules_client):
        client = rules_client(CONFIRM)
        assert [answer(client, text) for text in ("BOOK", "maybe", "C.")] == [
            "Tomorrow at 9? Reply C to confirm.", "Not confirmed. Reply C to confirm, or call us.",
            "You said: C."]  # the fallback's answer is not the question: C. now is an ordinary message
        assert [answer(client, text) for text in ("BOOK", "confirm!")] == [
            "Tomorrow at 9? Reply C to confirm.", "Confirmed: tomorrow at 9."]
        answer(client, "BOOK")  # YES from a subscriber is an ordinary message (test_consent.py confirms with it)
        assert answer(client, "YES") == "Not confirmed. Reply C to confirm, or call us."

    def test_the_previous_message_comes_with_the_messages_one_read(self, rules_app, monkeypatch, backend):
        """`after` adds no statement: the webhook's one read fetches the previous message too, and only
        when some rule has `after`."""
        reads = []
        transaction = sms_responder.SQLiteTransaction if backend == "sqlite" else sms_responder.PostgresTransaction
        real = transaction.execute
        monkeypatch.setattr(transaction, "execute", lambda tx, sql, params=(): (
            reads.append(sql) if sql.startswith("SELECT EXISTS") else None) or real(tx, sql, params))
        client = webtest.TestApp(rules_app(MENU))
        answer(client, "MENU")
        answer(client, "something else")  # three `after` rules are candidates: still the one read
        assert reads == [sms_responder.STATE_AND_PREVIOUS_SQL] * 2
        reads.clear()
        plain = webtest.TestApp(rules_app('[[rule]]\nname = "hours"\nkeywords = ["HOURS"]\nreply = "9-5"\n'
                                          '[[rule]]\nreply = "anything"\n'))
        answer(plain, "HOURS")
        answer(plain, "hello")
        assert reads == [sms_responder.STATE_SQL] * 2

    @pytest.mark.parametrize("kind", ["stdlib", "gunicorn"])
    def test_the_state_is_the_databases_across_processes(self, services, database_url, backend, rules_path, kind):
        """gunicorn -w 3 (or the stdlib server) on one SQLite file; two hosts on one PostgreSQL."""
        rules_path.write_text(MENU)
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
               "RULES_FILE": str(rules_path), "REPLY_LIMIT": "100"}  # twelve messages within a minute
        hosts = [services(env, kind=kind) for _ in range(2 if backend == "postgresql" else 1)]
        answers = []
        for i, text in enumerate(["MENU", "3", "2", "HI", "1", "1"] * 2):
            base_url = hosts[i % len(hosts)].url
            status, body = post_raw(base_url, *signed_body(base_url, inbound(Text=text)))
            assert status == 200
            answers.append(reply_text(body))
        assert answers == ["Reply 1 for hours, 2 for directions.", "Please reply 1 or 2.", "1 Main St.",
                           "Reply 1 for hours, 2 for directions.", "Open Mon-Fri 9-5.", "You said: 1"] * 2

    def test_try_from_shows_the_menu_at_work(self, make_app, database_url, tmp_path, rules_path):
        rules_path.write_text(MENU)
        client = webtest.TestApp(make_app(rules_file=str(rules_path)))
        env = {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
               "DATABASE_URL": database_url, "RULES_FILE": str(rules_path)}
        assert try_lines(env, tmp_path, "--from", SENDER, "2")[:2] == ["outcome: replied", "rule: none"]
        answer(client, "MENU")
        assert try_lines(env, tmp_path, "--from", SENDER, "2")[:3] == [
            "outcome: replied", "rule: menu-directions", "reply: 1 Main St."]
        assert try_lines(env, tmp_path, "--from", "14155550777", "2")[1] == "rule: none"  # another sender's history
        assert query(database_url, "SELECT count(*) FROM messages") == [(1,)]  # try stored nothing

    def test_messages_rule_lists_what_a_rule_matched(self, rules_client, database_url, tmp_path):
        client = rules_client(CONFIRM)
        for sender, text in (("14155550111", "BOOK"), ("14155550111", "C"), ("14155550222", "BOOK"),
                             ("14155550222", "no idea"), ("14155550333", "BOOK"), ("14155550333", "confirm")):
            answer(client, text, From=sender)
        env = {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
               "DATABASE_URL": database_url}
        result = run("messages", "--rule", "confirmed", "--json", env=env, cwd=tmp_path)
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(line["from"], line["text"], line["rule"]) for line in lines] == [
            ("14155550111", "C", "confirmed"), ("14155550333", "confirm", "confirmed")]
        text = run("messages", "--rule", "not-confirmed", env=env, cwd=tmp_path).stdout.splitlines()
        assert len(text) == 2 and "14155550222" in text[1] and "no idea" in text[1]


# -- [[language]]: more compliance words, each with its own answers -----------------------------

LANGUAGES = ('[[language]]\nname = "es"\nopt_out = ["ALTO", "parar"]\nopt_in = ["COMENZAR"]\nhelp = ["AYUDA"]\n'
             'stop_text = "Baja."\nstart_text = "Alta."\nhelp_text = "Ayuda."\n'
             '[[language]]\nname = "fr"\nopt_out = ["ARRET"]\n')


class TestLanguages:
    def test_each_family_answers_in_its_language_with_the_same_effect(self, rules_client, database_url):
        client = rules_client(LANGUAGES)
        assert answer(client, "Alto!") == "Baja."
        assert answer(client, "hola") is None  # opted out, as after STOP
        assert answer(client, "ayuda") == "Ayuda."  # help still answered
        assert answer(client, "PARAR") is None  # confirmed once only
        assert answer(client, "comenzar") == "Alta."
        assert answer(client, "hola") == "You said: hola"
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]

    def test_a_language_without_its_own_text_uses_the_setting(self, rules_client, database_url):
        client = rules_client(LANGUAGES, stop_text="Unsubscribed.")
        assert answer(client, "ARRET") == "Unsubscribed."
        assert query(database_url, "SELECT number FROM opt_outs") == [(SENDER,)]

    def test_built_in_words_keep_the_settings_texts(self, rules_client):
        client = rules_client(LANGUAGES)
        assert answer(client, "STOP") == sms_responder.DEFAULT_STOP_TEXT
        assert answer(client, "START") == sms_responder.DEFAULT_START_TEXT


# -- Changes take effect without a restart --------------------------------------------------------

class TestReload:
    def test_a_valid_change_is_in_force_within_2_seconds(self, rules_client, rules_path, logs):
        client = rules_client('[[rule]]\nreply = "old"\n')
        assert answer(client, "hi") == "old"
        rules_path.write_text('[[rule]]\nreply = "new"\n[[rule]]\nreply = "unreachable"\n')
        started = time.monotonic()
        assert wait_for(lambda: "rules reloaded rules=2" in logs(), timeout=5)
        assert time.monotonic() - started < 2
        assert answer(client, "hi") == "new"

    @pytest.mark.parametrize("change", ["broken", "deleted"])
    def test_a_broken_or_deleted_file_is_refused_and_the_rules_stay(self, rules_client, rules_path, logs, change):
        client = rules_client('[[rule]]\nreply = "in force"\n')
        if change == "broken":
            rules_path.write_text('[[rule]]\nreply = "{oops}"\n')
        else:
            rules_path.unlink()
        line = wait_for(lambda: [line for line in logs().splitlines() if "rules not reloaded" in line], timeout=5)
        assert len(line) == 1 and " ERROR " in line[0] and f"RULES_FILE {rules_path}" in line[0]
        assert answer(client, "hi") == "in force"
        rules_path.write_text('[[rule]]\nreply = "fixed"\n')
        assert wait_for(lambda: "rules reloaded" in logs(), timeout=5)
        assert answer(client, "hi") == "fixed"

    def test_every_gunicorn_worker_reloads(self, services, tmp_path, rules_path):
        rules_path.write_text('[[rule]]\nreply = "old"\n')
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "RULES_FILE": str(rules_path),
               "DATABASE_URL": f"sqlite:///{tmp_path / 'sms.db'}"}
        service = services(env, kind="gunicorn", workers=3, app="sms_responder:create_app()")
        assert wait_for(lambda: service.log().count("reply rules loaded") == 3, timeout=30)
        rules_path.write_text('[[rule]]\nreply = "new"\n')
        started = time.monotonic()
        reloaded = wait_for(lambda: [line for line in service.log().splitlines() if "rules reloaded" in line]
                            if service.log().count("rules reloaded") >= 3 else None, timeout=10)
        elapsed = time.monotonic() - started
        assert reloaded and len({line.split("pid=")[1] for line in reloaded}) == 3, service.log()
        assert elapsed < 2.5  # each worker looks every second
        assert self.answers(service) == {"new"}
        rules_path.write_text('[[rule]]\nreply = "{broken}"\n')
        assert wait_for(lambda: service.log().count("rules not reloaded") == 3, timeout=10), service.log()
        assert self.answers(service) == {"new"}

    @staticmethod
    def answers(service):
        """The distinct replies to 30 messages from 30 senders, spread over the workers."""
        return {reply_text(post_raw(service.url, *signed_body(service.url, inbound(Text="hi", From=f"1415600{i:04d}")))[1])
                for i in range(30)}


# -- try: the dry run ---------------------------------------------------------------------------

class TestTry:
    def test_the_four_lines(self, try_env, tmp_path, rules_path):
        rules_path.write_text('[[rule]]\nname = "hours"\nkeywords = ["HOURS"]\nreply = "Open Mon-Fri 9-5. Reply HELP '
                              'for help."\n')
        assert try_lines(try_env, tmp_path, "HOURS") == [
            "outcome: replied", "rule: hours", "reply: Open Mon-Fri 9-5. Reply HELP for help.",
            "segments: 1 (GSM-7, 38 characters)"]

    def test_no_rule_no_reply_and_ucs2(self, try_env, tmp_path, rules_path):
        rules_path.write_text('[[rule]]\nname = "quiet"\nkeywords = ["ok"]\nreply = ""\n')
        assert try_lines(try_env, tmp_path, "ok") == ["outcome: no_reply", "rule: quiet", "reply: none"]
        assert try_lines(try_env, tmp_path, "Grüße 😀") == [
            "outcome: replied", "rule: none", "reply: You said: Grüße 😀", "segments: 1 (UCS-2, 17 characters)"]

    def test_at_is_read_in_the_hours_time_zone_unless_it_has_an_offset(self, try_env, tmp_path, rules_path):
        rules_path.write_text('[hours]\ntimezone = "America/New_York"\nmon-fri = "09:00-17:00"\n'
                              'closed_dates = [2026-12-25]\n[[rule]]\nwhen = "closed"\nreply = "closed"\n')
        cases = {"2026-12-01T09:00": "rule: none", "2026-12-01T16:59": "rule: none", "2026-12-01T17:00": "rule: rule 1",
                 "2026-12-01T08:59": "rule: rule 1", "2026-12-05T12:00": "rule: rule 1",  # a Saturday
                 "2026-12-25T12:00": "rule: rule 1", "2026-12-01T14:00+00:00": "rule: none",  # 9:00 in New York
                 "2026-12-01T13:59Z": "rule: rule 1"}
        assert {at: try_lines(try_env, tmp_path, "--at", at, "hi")[1] for at in cases} == cases

    def test_from_to_and_media(self, try_env, tmp_path, rules_path):
        rules_path.write_text(f'[[rule]]\nto = ["{OTHER_NUMBER}"]\nfrom = ["44"]\nmedia = true\nreply = "yes"\n')
        env = {**try_env, "PLIVO_NUMBER": f"{OUR_NUMBER},{OTHER_NUMBER}"}
        args = ["--from", "+447700900123", "--to", OTHER_NUMBER, "--media", "https://x.example/a.jpg"]
        assert try_lines(env, tmp_path, *args, "look")[1] == "rule: rule 1"
        assert try_lines(env, tmp_path, *args[:4], "look")[1] == "rule: none"

    def test_never_creates_a_database(self, try_env, tmp_path, rules_path):
        rules_path.write_text('[[rule]]\nfirst_message = true\nreply = "welcome"\n')
        assert try_lines(try_env, tmp_path, "hi")[1:3] == ["rule: rule 1", "reply: welcome"]
        assert sorted(path.name for path in tmp_path.iterdir()) == ["rules.toml"]

    def test_reads_the_database_and_never_writes_it(self, make_app, database_url, try_env, tmp_path, rules_path):
        rules_path.write_text('[[rule]]\nname = "welcome"\nfirst_message = true\nreply = "welcome"\n'
                              '[[rule]]\nonce_per = "1h"\nreply = "away"\n')
        client = webtest.TestApp(make_app(rules_file=str(rules_path)))
        assert answer(client, "hi") == "welcome"
        assert answer(client, "STOP", From="14155550777") == sms_responder.DEFAULT_STOP_TEXT
        before = query(database_url, "SELECT * FROM messages ORDER BY message_uuid")
        env = {**try_env, "DATABASE_URL": database_url}
        assert try_lines(env, tmp_path, "hi")[1:3] == ["rule: rule 2", "reply: away"]
        assert try_lines(env, tmp_path, "--from", "14155550777", "hi")[:3] == [
            "outcome: opted_out", "rule: none", "reply: none"]
        assert query(database_url, "SELECT * FROM messages ORDER BY message_uuid") == before

    @pytest.mark.sqlite_only
    def test_reads_an_older_schema_without_migrating_it(self, try_env, tmp_path, rules_path):
        database = tmp_path / "sms.db"
        load_previous_release(f"sqlite:///{database}")
        rules_path.write_text('[[rule]]\nfirst_message = true\nreply = "welcome"\n')
        assert try_lines(try_env, tmp_path, "--from", "14155550124", "hi")[0] == "outcome: opted_out"
        assert try_lines(try_env, tmp_path, "--from", "14155550999", "hi")[2] == "reply: welcome"
        assert query(f"sqlite:///{database}", "PRAGMA user_version") == [(3,)]

    @pytest.mark.parametrize("args,expected", [
        (["--to", "14155550999", "hi"], "sms_responder: --to: 14155550999 is not one of PLIVO_NUMBER"),
        (["--at", "tomorrow", "hi"], "sms_responder: 'tomorrow' is not an ISO 8601 time such as 2026-12-01T18:30"),
    ], ids=["to", "at"])
    def test_bad_arguments_exit_2_with_one_line(self, try_env, tmp_path, args, expected):
        result = run("try", *args, env={**try_env, "RULES_FILE": ""}, cwd=tmp_path)
        assert (result.returncode, result.stderr.splitlines()) == (2, [expected])


# -- Segments ----------------------------------------------------------------------------------

def reference_segments(text):
    """Parts by an independent encoder (the gsm0338 codec, UTF-16 from the stdlib), split by the rule:
    at most 153 septets / 67 code units a part, an escape pair or surrogate pair never split."""
    try:
        units, single, part, encoding, double_start = list(text.encode("gsm03.38")), 160, 153, "GSM-7", 0x1B
        assert "\x1b" not in text
    except (UnicodeEncodeError, AssertionError):
        encoded = text.encode("utf-16-be")
        units = [int.from_bytes(encoded[i:i + 2], "big") for i in range(0, len(encoded), 2)]
        single, part, encoding = 70, 67, "UCS-2"
        double_start = None
    if len(units) <= single:
        return 1, encoding
    parts, used, i = 1, 0, 0
    while i < len(units):
        width = 2 if (units[i] == double_start or (double_start is None and 0xD800 <= units[i] <= 0xDBFF)) else 1
        if used + width > part:
            parts, used = parts + 1, 0
        used, i = used + width, i + width
    return parts, encoding


class TestSegments:
    @pytest.mark.parametrize("text,expected", [
        ("a" * 160, (1, "GSM-7")), ("a" * 161, (2, "GSM-7")), ("a" * 306, (2, "GSM-7")), ("a" * 307, (3, "GSM-7")),
        ("a" * 459, (3, "GSM-7")), ("a" * 460, (4, "GSM-7")), ("€" * 80, (1, "GSM-7")), ("€" * 81, (2, "GSM-7")),
        ("[" * 153, (3, "GSM-7")), ("a" * 152 + "{", (1, "GSM-7")), ("a" * 159 + "{", (2, "GSM-7")),
        ("a" * 152 + "{" + "a" * 152, (3, "GSM-7")),  # 306 septets, but the pair moves whole to part 2
        ("ê" * 70, (1, "UCS-2")), ("ç" * 71, (2, "UCS-2")), ("ç" * 134, (2, "UCS-2")), ("ç" * 135, (3, "UCS-2")),
        ("😀" * 35, (1, "UCS-2")), ("😀" * 36, (2, "UCS-2")), ("😀" * 67, (3, "UCS-2")),
        ("a" * 66 + "😀" + "a" * 66, (3, "UCS-2")),  # 134 units, but the pair is never split
        ("Ç@£$¥èéùìòØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r", (1, "GSM-7")), ("\x1b", (1, "UCS-2")),
    ], ids=lambda value: f"{value[0]} {value[1]}" if isinstance(value, tuple) else f"{len(value)} characters")
    def test_boundaries(self, text, expected):
        assert segments_of(text) == expected == reference_segments(text)

    def test_the_alphabet_matches_an_independent_gsm_03_38_codec_for_every_code_point(self):
        """Encoding and width of each character: GSM-7 of width 1 or 2 septets (by the codec), else UCS-2."""
        mismatches = []
        for code_point in [*range(0xD800), *range(0xE000, 0x110000)]:
            character = chr(code_point)
            try:
                septets = 0 if character == "\x1b" else len(character.encode("gsm03.38"))  # ESC: not a character
            except UnicodeEncodeError:
                septets = 0
            if septets:  # 81 of a one-septet character fit one message; of a two-septet one, two parts
                expected = {1: (1, "GSM-7"), 2: (2, "GSM-7")}[septets]
                actual = segments_of(character * 81)
            else:
                expected, actual = (1, "UCS-2"), segments_of(character)
            if actual != expected:
                mismatches.append((hex(code_point), actual, expected))
        assert mismatches == []

    def test_mixed_texts_match_the_reference(self):
        import random
        pieces = ["a", "{", "€", "é", "ç", "😀", " ", "\n", "Ω", "ü"]
        generator = random.Random(7)
        for _ in range(1000):
            text = "".join(generator.choice(pieces) for _ in range(generator.randint(1, 400)))
            assert segments_of(text) == reference_segments(text), text


class TestHours:
    """Hours.are_open at the edges: the end is closed, 24:00, closed dates, the time zone."""

    def hours(self, **week):
        days = tuple(week.get(day, ()) for day in sms_responder.DAYS)
        return Hours(ZoneInfo("America/New_York"), days, frozenset({date(2026, 12, 25)}))

    @pytest.mark.parametrize("local,expected", [
        ("2026-12-01 08:59", False), ("2026-12-01 09:00", True), ("2026-12-01 16:59", True),
        ("2026-12-01 17:00", False), ("2026-12-02 23:59", True), ("2026-12-25 10:00", False),
        ("2026-12-06 10:00", False),  # a Sunday
    ])
    def test_edges(self, local, expected):
        hours = self.hours(tue=((9 * 60, 17 * 60),), wed=((0, 24 * 60),), fri=((9 * 60, 17 * 60),))
        moment = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("America/New_York"))
        assert hours.are_open(moment.timestamp()) is expected

    def test_a_utc_instant_is_judged_in_the_hours_time_zone(self):
        hours = self.hours(tue=((9 * 60, 17 * 60),))
        assert hours.are_open(datetime(2026, 12, 1, 14, 0, tzinfo=UTC).timestamp())  # 09:00 in New York
        assert not hours.are_open(datetime(2026, 12, 1, 22, 0, tzinfo=UTC).timestamp())  # 17:00


# -- REPLY_MODE=api and the schema migration ------------------------------------------------------

class TestRulesInApiMode:
    def test_a_rule_reply_is_queued_with_its_text_and_the_function_runs_only_without_one(self, rules_app,
                                                                                       database_url):
        with FakePlivoAPI("MAFAKEAUTHID00000001", AUTH_TOKEN) as api:
            app = rules_app('[[rule]]\nkeywords = ["hours"]\nreply = "9-5"\n', reply_mode="api",
                            plivo_auth_id="MAFAKEAUTHID00000001", plivo_api_url=api.url)
            called = []
            app.reply = lambda message: called.append(message.text) or f"function: {message.text}"
            client = webtest.TestApp(app)
            assert [post(client, inbound(Text=text)).body for text in ("hours", "other")] == [
                b"<Response></Response>"] * 2
            assert sorted(query(database_url, "SELECT coalesce(text, '(function)') FROM outbox")) == [
                ("(function)",), ("9-5",)]
            worker = sms_responder.OutboxWorker(app)
            while worker.send_next():
                pass
            assert sorted(message["text"] for message in api.accepted) == ["9-5", "function: other"]
            assert called == ["other"]


class TestMigration:
    def test_a_database_of_the_previous_release_migrates_in_place(self, database_url, make_app, rules_path):
        load_previous_release(database_url)
        rules_path.write_text('[[rule]]\nname = "welcome"\nfirst_message = true\nreply = "welcome"\n')
        client = webtest.TestApp(make_app(rules_file=str(rules_path)))
        assert answer(client, "hi") == "You said: hi"  # 14155550123 has a message in the old database
        assert answer(client, "hi", From="14155550999") == "welcome"
        assert answer(client, "hi", From="14155550124") is None  # its opt-out survived the migration
        version = ("PRAGMA user_version" if database_url.startswith("sqlite") else
                   "SELECT version FROM schema_version")
        assert query(database_url, version) == [(sms_responder.SCHEMA_VERSION,)]
        assert query(database_url, "SELECT outcome, reply, rule FROM messages WHERE message_uuid = ?",
                     "00000000-0000-4000-8000-000000000001") == [("replied", "You said: hello", None)]
        assert query(database_url, "SELECT count(*) FROM messages") == [(7,)]

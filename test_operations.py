"""Operating it: messages, stats, opt-outs, purge and retention, and `pip install .`.

The contract's "Operating it" and "Installing as a package" sections. Every command runs
as a program, as an owner runs it, against a database the real webhook filled, on SQLite
and on PostgreSQL, while the service may be running.
"""

import csv
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import webtest

import sms_responder
from sms_responder_surfaces import api, metrics, operating, people, team
from conftest import MODULE, Service, connect, load_previous_release, query
from fake_plivo_api import FakePlivoAPI
from test_reliability import post_raw, signed_body
from throwaway_postgres import free_port
from test_sms_responder import AUTH_TOKEN, OTHER_NUMBER, OUR_NUMBER, SENDER, inbound, post, reply_of, signed_v2

NUMBERS = f"{OUR_NUMBER},{OTHER_NUMBER}"


# -- Helpers -----------------------------------------------------------------

@pytest.fixture
def env(database_url, tmp_path):
    """The settings of a command run: the test's database, two numbers of ours, local time = UTC."""
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": NUMBERS,
            "DATABASE_URL": database_url, "TZ": "UTC"}


def run(env, cwd, *args, stdin=None):
    """Run `python sms_responder.py ARGS` as a program; the CompletedProcess."""
    return subprocess.run([sys.executable, str(MODULE), *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=60)


def ok(env, cwd, *args, stdin=None):
    """The standard output lines of a command that must succeed."""
    result = run(env, cwd, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture
def client(make_app):
    app = make_app(plivo_number=NUMBERS)
    app.store.ping()  # the database exists, as it does once the service has started
    return webtest.TestApp(app)


def send(client, text, **fields):
    """Post one message through the real webhook; its MessageUUID."""
    form = inbound(Text=text, **fields)
    post(client, form)
    return form["MessageUUID"]


def backdate(database_url, message_uuid, days):
    """Make a stored message `days` days old (the tests cannot wait for time to pass)."""
    when = datetime.now(UTC) - timedelta(days=days)
    value = when.isoformat(timespec="microseconds") if database_url.startswith("sqlite") else when
    connection = connect(database_url)
    with connection:
        connection.execute("UPDATE messages SET received_at = ? WHERE message_uuid = ?", (value, message_uuid))
    connection.close()


def json_lines(lines):
    return [json.loads(line) for line in lines]


def as_utc(value):
    """A stored time (ISO text in SQLite, a datetime from PostgreSQL) as an aware UTC datetime."""
    return (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(UTC)


def close_to_now(moment, seconds=60):
    return abs(moment - datetime.now(UTC)) < timedelta(seconds=seconds)


# -- Databases a command cannot use --------------------------------------------------------------

class TestDatabases:
    @pytest.mark.sqlite_only
    @pytest.mark.parametrize("args", [["messages"], ["stats"], ["opt-outs", "export"], ["opt-outs", "add", SENDER],
                                      ["purge", "--days", "1"]], ids=" ".join)
    def test_a_missing_sqlite_file_is_one_line_and_exit_2_and_is_never_created(self, env, tmp_path, args):
        env = {**env, "DATABASE_URL": "sqlite:///missing.db"}
        result = run(env, tmp_path, *args)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.splitlines() == [
            "sms_responder: missing.db does not exist (DATABASE_URL); the service creates it on first start"]
        assert not (tmp_path / "missing.db").exists()

    STORE_COMMANDS = [["serve", "--port", "0"], ["worker"], ["messages"], ["stats"], ["opt-outs", "export"],
                      ["opt-outs", "import", "opt-outs.csv"], ["opt-outs", "add", SENDER],
                      ["opt-outs", "remove", SENDER], ["purge", "--days", "1"], ["try", "hello"],
                      ["text", SENDER, "hello"], ["tokens", "add", "orders"], ["tokens", "list"],
                      ["tokens", "remove", "orders"], ["users", "add", "alice"], ["users", "list"],
                      ["users", "password", "alice"], ["users", "remove", "alice"]]

    @pytest.mark.postgresql_only
    @pytest.mark.parametrize("server", ["refused", "silent"])
    @pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
    def test_an_unreachable_postgresql_is_one_line_naming_it_without_the_password(self, env, tmp_path, args,
                                                                                 server, silent_server):
        """Nothing listens on the port, or a server accepts and never answers: one line, exit 2, promptly."""
        port = free_port() if server == "refused" else silent_server
        (tmp_path / "opt-outs.csv").write_text(f"number\n{SENDER}\n")
        env = {**env, "DATABASE_URL": f"postgresql://sms:s3cret-pw@127.0.0.1:{port}/smsdb",
               "PLIVO_AUTH_ID": "MAFAKEAUTHID00000001"}
        started = time.monotonic()
        result = run(env, tmp_path, *args, stdin="a password of some length\n")  # for users add and password
        elapsed = time.monotonic() - started
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert f"127.0.0.1:{port}/smsdb" in result.stderr and "s3cret-pw" not in result.stderr
        # POSTGRES_WAIT (3 s), plus starting Python on a machine the parallel tests keep busy; without a
        # connect timeout, a silent server would hold the command for minutes (TCP's own retries).
        assert elapsed < 15, f"{elapsed:.1f} s"

    @pytest.mark.sqlite_only
    @pytest.mark.parametrize("args", [["serve", "--port", "0"], ["worker"]], ids=" ".join)
    def test_a_file_that_is_not_a_database_stops_serve_and_worker_with_one_line(self, env, tmp_path, args):
        (tmp_path / "sms.db").write_bytes(b"these are someone's notes, not a database" * 100)
        result = run({**env, "PLIVO_AUTH_ID": "MAFAKEAUTHID00000001"}, tmp_path, *args)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.splitlines() == [f"sms_responder: {tmp_path / 'sms.db'}: file is not a database"]

    @pytest.fixture
    def silent_server(self):
        """A port that accepts connections and never says a word (a hung database, a black hole)."""
        import socket
        listener = socket.create_server(("127.0.0.1", 0))
        yield listener.getsockname()[1]
        listener.close()

    def test_a_database_without_tables_reads_as_empty_and_a_writing_command_creates_them(self, env, tmp_path,
                                                                                      database_url, backend):
        if backend == "sqlite":
            connect(database_url).close()  # an empty file
        assert ok(env, tmp_path, "messages", "--json") == []
        assert json.loads(ok(env, tmp_path, "stats", "--json")[0])["messages"] == 0
        assert query(database_url, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'messages'"
                     if backend == "postgresql" else "SELECT count(*) FROM sqlite_master WHERE name = 'messages'"
                     ) == [(0,)]
        assert ok(env, tmp_path, "opt-outs", "add", SENDER) == [f"{SENDER}: opted out of {OUR_NUMBER}, "
                                                                f"{OTHER_NUMBER} (2 new, 0 already)"]
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(2,)]

    @pytest.mark.parametrize("args,expected", [
        (["messages", "--from", "12"], "sms_responder: --from '12' is not a phone number of 3 to 20 digits"),
        (["messages", "--since", "yesterday"], "sms_responder: --since: 'yesterday' is neither a duration"),
        (["opt-outs", "add", SENDER, "--to", "14155550999"], "sms_responder: --to 14155550999 is not one of"),
        (["purge"], "sms_responder: purge needs --days N (N >= 1) or RETENTION_DAYS"),
    ], ids=["number", "since", "to", "days"])
    def test_bad_arguments_are_one_line_and_exit_2(self, env, tmp_path, client, args, expected):
        result = run(env, tmp_path, *args)
        assert result.returncode == 2 and result.stderr.startswith(expected), result.stderr

    @pytest.mark.sqlite_only
    def test_purge_days_must_be_at_least_1(self, env, tmp_path, client):
        assert run(env, tmp_path, "purge", "--days", "0").returncode == 2


# -- messages ----------------------------------------------------------------------------------

class TestMessages:
    def test_the_last_limit_oldest_first_with_every_field_in_json(self, env, tmp_path, client):
        uuids = [send(client, f"hello {i}") for i in range(25)]
        listed = json_lines(ok(env, tmp_path, "messages", "--json"))
        assert [message["message_uuid"] for message in listed] == uuids[5:]
        first = listed[0]
        assert set(first) == {"direction", "message_uuid", "received_at", "from", "to", "type", "text", "media_urls",
                              "outcome", "rule", "reply", "reply_status", "forwarded_to", "relayed_to"}
        assert first["direction"] == "in"
        assert (first["from"], first["to"], first["text"], first["outcome"], first["reply"], first["rule"],
                first["forwarded_to"], first["relayed_to"]) == (
            SENDER, OUR_NUMBER, "hello 5", "replied", "You said: hello 5", None, [], None)
        assert datetime.fromisoformat(first["received_at"]).utcoffset() == timedelta(0)
        assert [message["text"] for message in json_lines(ok(env, tmp_path, "messages", "--json", "--limit", "2"))
                ] == ["hello 23", "hello 24"]

    def test_filters_compare_numbers_in_any_format(self, env, tmp_path, client):
        send(client, "a", From="+447700900123")
        send(client, "b", To=OTHER_NUMBER)
        send(client, "c")
        texts = lambda *args: [m["text"] for m in json_lines(ok(env, tmp_path, "messages", "--json", *args))]  # noqa: E731
        assert texts("--from", "44 7700-900.123") == ["a"]
        assert texts("--from", "+1 (415) 555-0123") == ["b", "c"]
        assert texts("--to", f"+{OTHER_NUMBER}") == ["b"]
        assert texts("--from", SENDER, "--to", OUR_NUMBER) == ["c"]

    def test_since_a_duration_or_a_local_iso_time(self, env, tmp_path, client, database_url):
        old = send(client, "old")
        send(client, "new")
        backdate(database_url, old, days=3)
        texts = lambda *args: [m["text"] for m in json_lines(ok(env, tmp_path, "messages", "--json", *args))]  # noqa: E731
        assert texts("--since", "2d") == ["new"]
        assert texts("--since", "90s") == ["new"]
        assert texts("--since", "4d") == ["old", "new"]
        three_and_a_half_days_ago = datetime.now() - timedelta(days=3, hours=12)  # naive: local (TZ=UTC here)
        assert texts("--since", three_and_a_half_days_ago.isoformat()) == ["old", "new"]
        assert texts("--since", (datetime.now() - timedelta(days=1)).date().isoformat()) == ["new"]
        in_tokyo = {**env, "TZ": "Asia/Tokyo"}  # a local time is Tokyo's here: an hour ago, not eight hours ahead
        an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None)
        assert [m["text"] for m in json_lines(ok(in_tokyo, tmp_path, "messages", "--json", "--since",
                                                 an_hour_ago.isoformat()))] == ["new"]

    def test_text_form_one_aligned_line_each_in_local_time(self, env, tmp_path, client):
        send(client, "hello")
        send(client, "STOP", From="14155550777", To=OTHER_NUMBER)
        header, *lines = ok({**env, "TZ": "Asia/Tokyo"}, tmp_path, "messages")
        assert header.split() == ["TIME", "FROM", "TO", "OUTCOME", "TEXT", "->", "REPLY"]
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d +{SENDER} +{OUR_NUMBER} +replied +hello -> "
                            r"You said: hello", lines[0])
        assert lines[1].split()[2:5] == ["14155550777", OTHER_NUMBER, "stopped"]
        assert len({line.index("replied" if "replied" in line else "stopped") for line in lines}) == 1
        stored = json_lines(ok(env, tmp_path, "messages", "--json"))[0]["received_at"]
        tokyo = datetime.fromisoformat(stored).astimezone(ZoneInfo("Asia/Tokyo"))
        assert lines[0].startswith(tokyo.strftime("%Y-%m-%d %H:%M:%S"))

    def test_a_strangers_control_characters_cannot_reach_the_terminal(self, env, tmp_path, client):
        send(client, "evil\x1b[2J\x07\x9b31m\nline two")
        line = ok(env, tmp_path, "messages")[1]
        assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line
        assert "evil\\x1b[2J\\x07\\x9b31m\\nline two" in line

    @pytest.mark.sqlite_only
    @pytest.mark.parametrize("no_color,expected", [(None, True), ("1", False)], ids=["terminal", "NO_COLOR"])
    def test_colour_and_width_only_on_a_terminal(self, env, tmp_path, client, no_color, expected):
        send(client, "x" * 300)
        terminal_env = {**env, "COLUMNS": "80", **({"NO_COLOR": no_color} if no_color else {})}
        output = self.on_a_terminal(terminal_env, tmp_path, "messages")
        assert ("\x1b[32m" in output) is expected
        plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
        assert all(len(line) <= 80 for line in plain.splitlines()) and "…" in plain
        piped = ok(terminal_env, tmp_path, "messages")
        assert "\x1b" not in "".join(piped) and "x" * 300 in piped[1]  # a pipe gets whole lines, no colour

    @staticmethod
    def on_a_terminal(env, cwd, *args):
        """Run a command with a pseudo-terminal as standard output; what it wrote."""
        primary, secondary = pty.openpty()
        process = subprocess.Popen([sys.executable, str(MODULE), *args], env=env, cwd=cwd, stdout=secondary,
                                   stderr=subprocess.PIPE, text=True)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the process has exited and closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(primary)
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors
        return b"".join(chunks).decode().replace("\r\n", "\n")

    def test_reply_status_is_the_outbox_status_in_api_mode(self, env, tmp_path, make_app):
        with FakePlivoAPI("MAFAKEAUTHID00000001", AUTH_TOKEN) as api:
            app = make_app(plivo_number=NUMBERS, reply_mode="api", plivo_auth_id="MAFAKEAUTHID00000001",
                           plivo_api_url=api.url)
            client = webtest.TestApp(app)
            send(client, "one")
            sms_responder.OutboxWorker(app).send_next()
            send(client, "two")
            assert [message["reply_status"] for message in json_lines(ok(env, tmp_path, "messages", "--json"))] == [
                "sent", "queued"]

    @pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
    def test_follow_prints_each_new_message_within_2_seconds_while_the_service_runs(
            self, services, env, tmp_path, stop_signal):
        service = services({**env, "PLIVO_NUMBER": NUMBERS})
        post_raw(service.url, *signed_body(service.url, inbound(Text="before")))
        follower = Service([sys.executable, str(MODULE), "messages", "--follow", "--json"], env, tmp_path, None).start()
        try:
            assert self.wait_for_line(follower, "before")
            delays = []
            for i in range(3):
                form = inbound(Text=f"live {i}", From=f"1415666{i:04d}")
                sent = time.monotonic()
                post_raw(service.url, *signed_body(service.url, form))
                assert self.wait_for_line(follower, form["MessageUUID"]), follower.log()
                delays.append(time.monotonic() - sent)
            assert max(delays) < 2, delays
        finally:
            code = follower.stop(stop_signal)
        assert code == 0
        texts = [entry["text"] for entry in map(json.loads, follower.log().splitlines())]
        assert texts == ["before", "live 0", "live 1", "live 2"]

    @staticmethod
    def wait_for_line(process, text, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in process.log():
                return True
            time.sleep(0.05)
        return False


# -- stats ----------------------------------------------------------------------------------

class TestStats:
    def test_counts_of_the_period_and_the_outbox_now(self, env, tmp_path, client, database_url):
        send(client, "hi")
        send(client, "hi", From="14155550777")
        send(client, "STOP", From="14155550777")
        backdate(database_url, send(client, "old", From="14155550888"), days=2)
        ok(env, tmp_path, "opt-outs", "import", "-", stdin="number,opted_out_at\n14155550999,2020-01-01T00:00:00Z\n")
        report = json.loads(ok(env, tmp_path, "stats", "--json")[0])
        assert close_to_now(datetime.fromisoformat(report["since"]) + timedelta(days=1))
        assert {key: value for key, value in report.items() if key != "since"} == {
            "messages": 3, "outcomes": {"replied": 2, "stopped": 1}, "senders": 2,
            "opt_outs": {"total": 3, "new": 1}, "outbound": {}, "outbox": {}}
        assert json.loads(ok(env, tmp_path, "stats", "--json", "--since", "3d")[0])["messages"] == 4
        text = "\n".join(ok(env, tmp_path, "stats"))
        assert re.search(r"messages +3\n  replied +2\n  stopped +1\nsenders +2\nopt-outs +3 in force, 1 new", text)


# -- opt-outs: export, import, add, remove ----------------------------------------------------

class TestOptOutLists:
    def test_export_is_a_csv_of_every_opt_out_in_force(self, env, tmp_path, client):
        send(client, "STOP")
        send(client, "STOP", From="+447700900123", To=OTHER_NUMBER)
        rows = list(csv.DictReader(io.StringIO("\n".join(ok(env, tmp_path, "opt-outs", "export")))))
        assert [(row["number"], row["to_number"]) for row in rows] == [(SENDER, OUR_NUMBER),
                                                                       ("+447700900123", OTHER_NUMBER)]
        assert all(datetime.fromisoformat(row["opted_out_at"]).utcoffset() == timedelta(0) for row in rows)
        assert ok(env, tmp_path, "opt-outs", "export", "--to", f"+{OTHER_NUMBER}")[1:] == [
            f"+447700900123,{OTHER_NUMBER},{rows[1]['opted_out_at']}"]

    def test_import_applies_rows_to_the_numbers_given_and_counts_per_number(self, env, tmp_path, client,
                                                                            database_url):
        (tmp_path / "list.csv").write_text(
            "name,number,to_number,opted_out_at\n"
            f"Ann,+1 (415) 555-0111,,\nBob,14155550112,+{OTHER_NUMBER},2025-03-04T05:06:07\n"
            f"Cy,14155550113,,2025-03-04T05:06:07-05:00\n")
        tokyo = {**env, "TZ": "Asia/Tokyo"}  # an opted_out_at without an offset is UTC, whatever the machine's zone
        assert ok(tokyo, tmp_path, "opt-outs", "import", "list.csv") == ["imported 5, already opted out 0"]
        stored = {(number, to): when for number, to, when in
                  query(database_url, "SELECT number, to_number, opted_out_at FROM opt_outs")}
        assert set(stored) == {("14155550111", OUR_NUMBER), ("14155550111", OTHER_NUMBER),
                               ("14155550112", OTHER_NUMBER), ("14155550113", OUR_NUMBER),
                               ("14155550113", OTHER_NUMBER)}
        assert as_utc(stored[("14155550112", OTHER_NUMBER)]) == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
        assert as_utc(stored[("14155550113", OUR_NUMBER)]) == datetime(2025, 3, 4, 10, 6, 7, tzinfo=UTC)
        assert close_to_now(as_utc(stored[("14155550111", OUR_NUMBER)]))  # an empty opted_out_at means now
        again = ok(env, tmp_path, "opt-outs", "import", "list.csv", "--to", OUR_NUMBER)
        assert again == ["imported 0, already opted out 3"]  # idempotent; --to applies to rows without to_number
        assert ok(env, tmp_path, "opt-outs", "import", "-", "--to", OUR_NUMBER,
                  stdin="number\n14155550114\n14155550111\n") == ["imported 1, already opted out 1"]

    def test_a_bad_row_stops_the_whole_import_with_one_line_per_bad_row(self, env, tmp_path, client, database_url):
        rows = ["number,to_number,opted_out_at", "14155550111,,", "12,,", "14155550112,14155550999,",
                "14155550113,,last tuesday", "14155550114,,"] + [f"x{i},," for i in range(30)]
        (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
        result = run(env, tmp_path, "opt-outs", "import", "list.csv")
        assert (result.returncode, result.stdout) == (2, "")
        lines = result.stderr.splitlines()
        assert lines[:3] == ["list.csv:3: number '12' is not a phone number of 3 to 20 digits",
                             "list.csv:4: to_number 14155550999 is not one of PLIVO_NUMBER",
                             "list.csv:5: opted_out_at 'last tuesday' is not an ISO 8601 time"]
        assert len(lines) == 20 and lines[-1].startswith("list.csv:23: ")
        assert query(database_url, "SELECT count(*) FROM opt_outs") == [(0,)]

    def test_a_csv_without_a_number_column_is_refused(self, env, tmp_path, client):
        result = run(env, tmp_path, "opt-outs", "import", "-", stdin="phone\n14155550111\n")
        assert result.returncode == 2 and result.stderr.startswith("-:1: the header must have a number column")

    def test_an_imported_opt_out_acts_exactly_like_a_stop(self, env, tmp_path, client):
        ok(env, tmp_path, "opt-outs", "import", "-", stdin=f"number,to_number\n+{SENDER},{OUR_NUMBER}\n")
        assert reply_of(post(client, inbound(Text="hello"))) is None
        assert reply_of(post(client, inbound(Text="HELP"))) == sms_responder.DEFAULT_HELP_TEXT
        assert reply_of(post(client, inbound(Text="hello", To=OTHER_NUMBER))) == "You said: hello"
        assert reply_of(post(client, inbound(Text="START"))) == sms_responder.DEFAULT_START_TEXT
        assert reply_of(post(client, inbound(Text="hello"))) == "You said: hello"

    def test_add_and_remove_one_number_without_sending_anything(self, env, tmp_path, client, database_url):
        assert ok(env, tmp_path, "opt-outs", "add", f"+{SENDER}", "--to", OUR_NUMBER) == [
            f"{SENDER}: opted out of {OUR_NUMBER} (1 new, 0 already)"]
        assert ok(env, tmp_path, "opt-outs", "add", SENDER) == [
            f"{SENDER}: opted out of {OUR_NUMBER}, {OTHER_NUMBER} (1 new, 1 already)"]
        assert reply_of(post(client, inbound(Text="hello"))) is None
        assert ok(env, tmp_path, "opt-outs", "remove", SENDER, "--to", OTHER_NUMBER) == [
            f"{SENDER}: opt-out removed from {OTHER_NUMBER} (1 removed, 0 were not opted out)"]
        assert query(database_url, "SELECT to_number FROM opt_outs") == [(OUR_NUMBER,)]
        assert query(database_url, "SELECT count(*) FROM messages") == [(1,)]  # nothing sent, nothing stored


# -- purge and RETENTION_DAYS ---------------------------------------------------------------

class TestPurge:
    def test_personal_data_is_erased_and_what_dedupe_needs_is_kept(self, env, tmp_path, make_app, database_url):
        client = webtest.TestApp(make_app(plivo_number=NUMBERS))
        form = inbound(Text=None, Body="my secret", Type="mms", MediaCount="1", Media0="https://x.example/a.jpg")
        headers = signed_v2()
        post(client, form, headers=headers)
        send(client, "STOP", From="14155550777")
        recent = send(client, "recent")
        for message_uuid in (form["MessageUUID"], query(database_url, "SELECT message_uuid FROM messages "
                                                                      "WHERE text = 'STOP'")[0][0]):
            backdate(database_url, message_uuid, days=10)
        assert ok(env, tmp_path, "purge", "--days", "7") == ["purged 2 messages"]
        assert ok(env, tmp_path, "purge", "--days", "7") == ["purged 0 messages"]
        row = query(database_url, "SELECT from_number, to_number, text, media_urls, reply, outcome, rule, v2_nonce"
                                  " FROM messages WHERE message_uuid = ?", form["MessageUUID"])[0]
        assert row[:5] == (None,) * 5 and row[5] == "replied" and row[7] == headers["X-Plivo-Signature-V2-Nonce"]
        assert query(database_url, "SELECT text FROM messages WHERE message_uuid = ?", recent) == [("recent",)]
        assert query(database_url, "SELECT number FROM opt_outs") == [("14155550777",)]  # opt-outs stay
        assert post(client, form).body == b"<Response></Response>"  # Plivo's late retry: still a duplicate
        replay = inbound(Text="forged", MessageUUID=str(uuid.uuid4()))
        post(client, replay, headers=headers, status=403)  # the old V2 nonce is still bound
        purged = json_lines(ok(env, tmp_path, "messages", "--json", "--since", "30d"))[0]
        assert (purged["from"], purged["text"], purged["media_urls"], purged["outcome"]) == (None, None, [], "replied")
        assert "(purged)" in ok(env, tmp_path, "messages", "--since", "30d")[1]

    def test_a_database_of_the_previous_release_is_migrated_then_purged(self, env, tmp_path, database_url):
        load_previous_release(database_url)  # its columns were NOT NULL: the migration lifts that
        ok(env, tmp_path, "stats")  # reading alone never migrates it
        assert query(database_url, "SELECT count(*) FROM messages WHERE text IS NOT NULL") == [(4,)]
        ok(env, tmp_path, "opt-outs", "add", "14155550777")  # a writing command migrates it
        for message_uuid, in query(database_url, "SELECT message_uuid FROM messages"):
            backdate(database_url, message_uuid, days=10)
        assert ok(env, tmp_path, "purge", "--days", "7") == ["purged 4 messages"]
        assert query(database_url, "SELECT count(*) FROM messages WHERE from_number IS NULL AND text IS NULL") == [
            (4,)]

    def test_old_delivery_reports_and_finished_outbox_rows_are_deleted(self, env, tmp_path, make_app, database_url):
        with FakePlivoAPI("MAFAKEAUTHID00000001", AUTH_TOKEN) as api:
            app = make_app(plivo_number=NUMBERS, reply_mode="api", plivo_auth_id="MAFAKEAUTHID00000001",
                           plivo_api_url=api.url)
            client = webtest.TestApp(app)
            sent_long_ago = send(client, "sent long ago")
            sms_responder.OutboxWorker(app).send_next()
            sent_recently = send(client, "sent recently")
            sms_responder.OutboxWorker(app).send_next()
            queued_long_ago = send(client, "queued long ago")  # no worker runs: it stays queued
        sqlite = database_url.startswith("sqlite")
        stored_time = lambda moment: moment.isoformat(timespec="microseconds") if sqlite else moment  # noqa: E731
        old, now = stored_time(datetime.now(UTC) - timedelta(days=10)), stored_time(datetime.now(UTC))
        connection = connect(database_url)
        with connection:
            for message_uuid in (sent_long_ago, queued_long_ago):
                connection.execute("UPDATE outbox SET queued_at = ? WHERE message_uuid = ?", (old, message_uuid))
            for when in (old, now):
                connection.execute("INSERT INTO delivery_reports VALUES (?, 'delivered', '', ?, NULL)",
                                   (str(uuid.uuid4()), when))
        connection.close()
        ok(env, tmp_path, "purge", "--days", "7")
        assert sorted(query(database_url, "SELECT message_uuid, status FROM outbox")) == sorted(
            [(sent_recently, "sent"), (queued_long_ago, "queued")])
        assert query(database_url, "SELECT count(*) FROM delivery_reports") == [(1,)]

    @pytest.mark.parametrize("command", ["serve", "worker"])
    def test_serve_and_worker_purge_at_start_with_retention_days(self, env, tmp_path, client, database_url,
                                                                 services, command):
        old = send(client, "old")
        backdate(database_url, old, days=3)
        settings = {**env, "RETENTION_DAYS": "2", "PLIVO_AUTH_ID": "MAFAKEAUTHID00000001",
                    "PLIVO_API_URL": "http://127.0.0.1:9"}
        service = services(settings) if command == "serve" else services(settings, kind="worker")
        deadline = time.monotonic() + 10
        while "purged messages=1 older_than_days=2" not in service.log():  # logged once the purge has committed
            assert time.monotonic() < deadline, service.log()
            time.sleep(0.1)
        assert query(database_url, "SELECT text FROM messages WHERE message_uuid = ?", old) == [(None,)]

    def test_the_schedule_purges_again_every_period(self, make_app, database_url, monkeypatch):
        app = make_app()
        client = webtest.TestApp(app)
        monkeypatch.setattr(sms_responder, "PURGE_EVERY", 0.2)
        schedule = sms_responder.RetentionSchedule(app.store, 1).start()
        try:
            old = send(client, "old")
            backdate(database_url, old, days=2)
            deadline = time.monotonic() + 5
            while query(database_url, "SELECT text FROM messages WHERE message_uuid = ?", old) != [(None,)]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            schedule.stop()


# -- Indexes: a window of time or a sender is never a full scan ------------------------------------

class Recording:
    """A connection that remembers each statement it runs, so that the test can EXPLAIN the real SQL."""

    def __init__(self, connection):
        self.connection, self.statements = connection, []

    def execute(self, sql, params=()):
        reads_a_table = sql.startswith(("SELECT", "UPDATE", "DELETE")) or (sql.startswith("INSERT") and
                                                                           " SELECT " in sql)
        if reads_a_table:  # not BEGIN or COMMIT, nor an INSERT ... VALUES, which reads nothing
            self.statements.append((sql, params))
        return self.connection.execute(sql, params)

    def executemany(self, sql, rows):  # sqlite3's; the plan of the first row stands for all
        self.execute(sql, rows[0])
        return self.connection.executemany(sql, rows)

    def cursor(self):  # psycopg's executemany runs on a cursor
        recording = self

        class Cursor:
            def __enter__(self):
                self.cursor = recording.connection.cursor()
                return self

            def __exit__(self, *exc_info):
                self.cursor.close()

            def executemany(self, sql, rows):
                recording.statements.append((sql, rows[0]))
                return self.cursor.executemany(sql, rows)

            def __getattr__(self, name):
                return getattr(self.cursor, name)
        return Cursor()

    def __getattr__(self, name):  # pipeline(), broken, ...: the connection's own
        return getattr(self.connection, name)


class TestIndexes:
    """Every statement the commands and rules run on a window of time or a sender uses an index."""

    MESSAGE = sms_responder.InboundMessage("u", SENDER, OUR_NUMBER, "", "sms")
    ROW = sms_responder.OutboxRow(1, "u", "reply", OUR_NUMBER, SENDER, None, None, 1, "token")
    REPORT = sms_responder.DeliveryReport("plivo-1", "delivered", "")
    WORK = {  # every statement that reads by a key, a sender or a window of time, from each feature's section
        "the webhook's read": lambda tx: sms_responder.message_state(tx, TestIndexes.MESSAGE, time.time() - 60, "12345"),
        "opt-in": lambda tx: tx.opt_in(SENDER, OUR_NUMBER),
        "first_message": lambda tx: sms_responder.has_earlier_message(tx, TestIndexes.MESSAGE),
        "once_per": lambda tx: sms_responder.rule_matched_since(tx, TestIndexes.MESSAGE, "rule 1", time.time() - 60),
        "the webhook's read, rules with after": lambda tx: sms_responder.message_state(
            tx, TestIndexes.MESSAGE, time.time() - 60, None, previous_since=time.time() - 1800),
        "forward limit": lambda tx: sms_responder.forwards_since(tx, SENDER, time.time() - 60),
        "owners opted out": lambda tx: tx.opted_out_of([SENDER, OTHER_NUMBER], OUR_NUMBER),
        "last conversation": lambda tx: sms_responder.last_conversation(tx, OUR_NUMBER, SENDER, time.time() - 60),
        "outbox claim": lambda tx: sms_responder.claim_due(tx, time.time()),
        "outbox message": lambda tx: (sms_responder.add_message(tx, TestIndexes.MESSAGE, time.time(), None,
                                                                sms_responder.Decision(sms_responder.Outcome.REPLIED)),
                                      sms_responder.stored_message(tx, "u")),
        "outbox prepare": lambda tx: sms_responder.prepare_send(tx, TestIndexes.ROW, "hi", time.time()),
        "outbox finish": lambda tx: sms_responder.finish_attempt(tx, TestIndexes.ROW, "sent",
                                                                 plivo_message_uuid="plivo-1"),
        "delivery report": lambda tx: sms_responder.add_delivery_report(tx, TestIndexes.REPORT, time.time(), None),
        "outbound: queue": lambda tx: api.queue_outbound(tx, api.OutboundRequest(
            SENDER, "hi", OUR_NUMBER), "orders", "api", time.time()),
        "outbound: by id": lambda tx: api.outbound_message(tx, "some-id"),
        "outbound: by id, this token's": lambda tx: api.outbound_message(tx, "some-id", "orders"),
        "outbound: cancel": lambda tx: api.cancel_outbound(tx, "some-id"),
        "outbound: cancelled by a STOP": lambda tx: sms_responder.cancel_for_opt_out(tx, [(SENDER, OUR_NUMBER)]),
        "outbound: conversation": lambda tx: api.conversation_with(tx, SENDER, time.time() - 60, 50),
        "outbound: API_LIMIT": lambda tx: api.api_use(tx, "orders", time.time()),
        "outbound: Idempotency-Key": lambda tx: api.first_answer(tx, "orders", "key", time.time()),
        "outbound: token": lambda tx: api.token_holder(tx, "smsr_x", time.time()),
        "tokens remove": lambda tx: api.remove_token(tx, "orders"),
        "messages, outbound": lambda tx: operating.find_outbound(tx, operating.MessageQuery()),
        "messages --to, outbound": lambda tx: operating.find_outbound(tx, operating.MessageQuery(
            recipient=SENDER)),
        "stats, outbound": lambda tx: operating.outbound_counts(tx, time.time() - 86400),
        "purge, outbound": lambda tx: sms_responder.purge_outbound(tx, time.time() - 86400, 1000),
        "inbox: a session": lambda tx: people.session_of(tx, "token", time.time(), 12),
        "inbox: a login": lambda tx: people.start_login(tx, "alice", time.time()),
        "inbox: a new session": lambda tx: people.open_session(tx, "alice", time.time()),
        "inbox: a hash re-made": lambda tx: people.upgrade_hash(tx, "alice", "$argon2id$old", "$argon2id$new"),
        "inbox: the list": lambda tx: team.conversation_list(tx, team.words_index(tx.store), team.ListQuery("alice"),
                                                             frozenset()),
        "inbox: a row of the list": lambda tx: team._summary(tx, SENDER, OUR_NUMBER, tx.timestamp(time.time())),
        "inbox: a conversation": lambda tx: team.conversation_entries(tx, SENDER, OUR_NUMBER),
        "inbox: search for words": lambda tx: team.conversation_list(
            tx, team.words_index(tx.store), team.ListQuery("alice", search="ready now"), frozenset()),
        "inbox: search for digits": lambda tx: team.conversation_list(
            tx, team.words_index(tx.store), team.ListQuery("alice", search="555 0123"), frozenset()),
        "inbox: the list, mine": lambda tx: team.conversation_list(
            tx, team.words_index(tx.store), team.ListQuery("alice", "mine"), frozenset()),
        "inbox: the list, unassigned": lambda tx: team.conversation_list(
            tx, team.words_index(tx.store), team.ListQuery("alice", "unassigned"), frozenset()),
        "inbox: opened, so read": lambda tx: team.mark_read(tx, "alice", SENDER, OUR_NUMBER),
        "inbox: what a person read": lambda tx: team.reads_of(tx, "alice", [(SENDER, OUR_NUMBER)]),
        "inbox: unread count": lambda tx: team.unread_count(tx, "alice", frozenset([OUR_NUMBER])),
        "inbox: an answer assigns": lambda tx: team.assign_on_answer(tx, SENDER, OUR_NUMBER, "alice", time.time()),
        "inbox: the assignee": lambda tx: team.assignee_of(tx, SENDER, OUR_NUMBER),
        "inbox: a person removed": lambda tx: team.hand_back(tx, "alice"),
        "inbox: a saved reply": lambda tx: team.saved_reply(tx, 1),
        "purge, the team's record": lambda tx: sms_responder.purge_conversations(tx, time.time() - 86400),
        "metrics: the outbox waiting": lambda tx: metrics.outbox_waiting(tx),
        "metrics: opt-outs": lambda tx: metrics.opt_outs_total(tx),
        "messages --limit": lambda tx: operating.find_messages(tx, operating.MessageQuery()),
        "messages --from": lambda tx: operating.find_messages(tx, operating.MessageQuery(sender=SENDER)),
        "messages --since": lambda tx: operating.find_messages(tx, operating.MessageQuery(
            since=time.time() - 60)),
        "stats": lambda tx: operating.message_counts(tx, time.time() - 86400),
        "opt-outs export --to": lambda tx: list(operating.opt_outs_in_force(tx, OUR_NUMBER)),
        "opt-outs remove": lambda tx: operating.remove_opt_outs(tx, SENDER, [OUR_NUMBER]),
        "purge": lambda tx: sms_responder.purge_messages(tx, time.time() - 86400, 1000),
        "purge deliveries": lambda tx: sms_responder.purge_deliveries(tx, time.time() - 86400),
    }

    @pytest.mark.parametrize("name", list(WORK))
    def test_each_statement_uses_an_index(self, make_app, database_url, backend, name):
        store = make_app().store
        store.ping()  # the schema
        connection = connect(database_url)
        try:
            if backend == "sqlite":
                recording = Recording(connection)
                self.WORK[name](sms_responder.SQLiteTransaction(store, recording))
                assert recording.statements, "nothing was checked"
                for sql, params in recording.statements:
                    if " NOT INDEXED " in sql:  # a search's last resort reads every message, once, by design
                        continue
                    plan = " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                    # a table scanned, not EXISTS's constant row, nor a subquery's own rows (a co-routine or
                    # a materialized result, named as such in the plan)
                    subqueries = set(re.findall(r"(?:CO-ROUTINE|MATERIALIZE) (\w+)", plan))
                    # (an FTS5 table's scan for a MATCH, idxStr "M...", reads its index)
                    full_scan = [name for name in re.findall(
                        r"\bSCAN (?!CONSTANT ROW)(\w+)\b(?! USING)(?! VIRTUAL TABLE INDEX \d+:M)", plan)
                        if name not in subqueries]
                    assert "USING" in plan and not full_scan, (sql, plan)
            else:  # on an almost empty table PostgreSQL rightly prefers a scan: ask whether an index can serve
                recording = Recording(connection.connection)
                connection.execute("SET enable_seqscan = off")
                self.WORK[name](sms_responder.PostgresTransaction(store, recording))
                assert recording.statements, "nothing was checked"
                for sql, params in recording.statements:
                    if "/* read whole */" in sql:  # a table read whole by design (tx.scan), as on SQLite
                        continue
                    plan = " ".join(row[0] for row in connection.connection.execute(f"EXPLAIN {sql}", params))
                    reads_a_table = " FROM " in sql or sql.startswith(("UPDATE", "DELETE"))
                    assert "Seq Scan" not in plan and ("Index" in plan or not reads_a_table), (sql, plan)
        finally:
            connection.close()

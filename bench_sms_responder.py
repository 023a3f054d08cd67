#!/usr/bin/env python3
"""Benchmarks for sms_responder: figures printed, never asserted.

    python bench_sms_responder.py inprocess   # cost per webhook, by path, calling the WSGI app directly
    python bench_sms_responder.py inprocess --compare main
                                              # the same, this module and main's side by side, rounds alternated
    python bench_sms_responder.py profile     # where a replied message's CPU goes, step by step (--compare too)
    python bench_sms_responder.py outbox      # sends per second of one outbox worker against a fake Plivo API
    python bench_sms_responder.py rules       # what a 50-rule RULES_FILE adds per message
    python bench_sms_responder.py operations  # the owner's commands on 1,000,000 messages; a 100,000-row import
    python bench_sms_responder.py inbox       # the inbox's pages and searches on 1,000,000 messages (--messages)
    python bench_sms_responder.py growth      # cost per webhook on 1,000,000 and 10,000,000 stored messages
    python bench_sms_responder.py goals       # each per-message cost goal, its figure, met or not (peers beside)
    python bench_sms_responder.py http --host gunicorn-sync --workers 1
                                              # a WSGI host on 127.0.0.1 under load from a separate process
    python bench_sms_responder.py matrix      # the README's table: every host, both durabilities, both backends

Every run uses a fresh database (a SQLite file in a temporary folder, or with --backend
postgresql a throwaway PostgreSQL server) and requests signed with the plivo SDK, each with its
own MessageUUID. The http mode pins the server to CPU 0 and the load generator (wrk with a Lua
script when installed, else a Python client) to CPU 1, checks every answer and counts the stored
rows. `--json FILE` writes the figures as JSON too. See README, "Performance".
"""

import argparse
import concurrent.futures
import csv
import http.client
import io
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from plivo.utils.signature_v3 import construct_post_url, get_signature_v3

# --compare: a run of this benchmark measures another release's module (and its surfaces), copied into a
# folder that comes first on the path; the benchmark's own code is the same for both.
if os.environ.get("BENCH_MODULE_FOLDER"):
    sys.path.insert(0, os.environ["BENCH_MODULE_FOLDER"])

import sms_responder
from sms_responder_surfaces import api, people
from fake_plivo_api import FakePlivoAPI
from throwaway_postgres import PostgresServer, free_port, postgres_bin

TOKEN = "bench-auth-token"
#: Ordinary texts customers send (the consent corpus): an ordinary message's cost, beside "hello".
ORDINARY_TEXTS = [line for line in (Path(__file__).parent / "testdata" / "ordinary_messages.txt").read_text()
                  .splitlines() if line and not line.startswith("#")]
OUR_NUMBER = "14155550100"
AUTH_ID = "MABENCHAUTHID0000001"
URL = f"http://bench.example{sms_responder.WEBHOOK_PATH}"


# -- Requests ---------------------------------------------------------------------

def webhook_form(sender, text, message_uuid=None):
    return {"From": sender, "To": OUR_NUMBER, "Text": text, "Type": "sms",
            "MessageUUID": message_uuid or str(uuid.uuid4()), "Units": "1", "TotalRate": "0.00000",
            "TotalAmount": "0.00000", "MessageIntent": "", "PowerpackUUID": ""}


def signed_request(form, token=TOKEN, url=URL):
    """(body, headers) of a V3-signed webhook, signed with the SDK as Plivo signs."""
    nonce = str(uuid.uuid4().int)[:20]
    signature = get_signature_v3(token.encode(), construct_post_url(url, dict(form)).decode(), nonce).decode()
    body = "&".join(f"{k}={sms_responder.urllib.parse.quote_plus(v)}" for k, v in form.items()).encode()
    return body, {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce,
                  "Content-Type": sms_responder.FORM_CONTENT_TYPE}


def environ_for(body, headers, path=sms_responder.WEBHOOK_PATH):
    """The WSGI environ a server would build for this request."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "",
               "QUERY_STRING": "", "SERVER_NAME": "bench.example", "SERVER_PORT": "80", "HTTP_HOST": "bench.example",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": headers.pop("Content-Type")}
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return environ


def api_requests(count, token):
    """POST /api/messages: one JSON message each, to distinct customers, with a valid token."""
    requests = []
    for i in range(count):
        body = json.dumps({"to": f"+1417{i:07d}", "text": "Your order is ready."}).encode()
        requests.append((body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}))
    return requests


def path_requests(count):
    """Signed requests for each path the in-process benchmark measures, in the order they must run."""
    senders = [f"1415{i:07d}" for i in range(count)]
    replied = [webhook_form(sender, "hello") for sender in senders]
    stop_senders = [f"1416{i:07d}" for i in range(count)]
    ordinary = [webhook_form(f"1419{i:07d}", ORDINARY_TEXTS[i % len(ORDINARY_TEXTS)]) for i in range(count)]
    return {
        "replied": [signed_request(form) for form in replied],
        "replied, ordinary texts": [signed_request(form) for form in ordinary],
        "duplicate": [signed_request(form) for form in replied],  # the same MessageUUIDs again
        "bad signature": [signed_request(webhook_form(sender, "hello"), token="wrong") for sender in senders],
        "STOP": [signed_request(webhook_form(sender, "STOP")) for sender in stop_senders],
        "opted-out": [signed_request(webhook_form(sender, "hello")) for sender in stop_senders],
    }


# -- In-process cost per webhook ------------------------------------------------

def quiet_logging(app):
    """Keep the one-line-per-webhook logging (its cost is real) but write it to /dev/null."""
    for handler in logging.getLogger("sms_responder").handlers:
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process


def run_inprocess(args):
    rounds = {}
    counts = tempfile.mkdtemp()  # the counters' folder for the whole run (METRICS_TOKEN's row)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", counts)
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER,
                                           database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
                                           sqlite_synchronous=args.synchronous, reply_mode=args.reply_mode,
                                           reply_limit=1_000_000, plivo_auth_id=AUTH_ID, api_limit=1_000_000)
            quiet_logging(app)
            app.store.ping()
            with app.store.transaction() as tx:
                api_token = api.add_token(tx, "bench", time.time())
            paths = {**path_requests(args.messages), "POST /api/messages": api_requests(args.messages, api_token)}
            for path, requests in paths.items():
                url_path = api.API_MESSAGES_PATH if path.startswith("POST /api") else \
                    sms_responder.WEBHOOK_PATH
                environs = [environ_for(body, dict(headers), url_path) for body, headers in requests]
                statuses = []
                start_response = lambda status, headers, exc_info=None, seen=statuses: seen.append(status)  # noqa: E731
                wall, cpu = time.perf_counter(), time.process_time()
                for environ in environs:
                    b"".join(app(environ, start_response))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                expected = {"bad signature": "403 Forbidden", "POST /api/messages": "202 Accepted"}.get(path, "200 OK")
                assert statuses == [expected] * len(environs), f"{path}: {set(statuses)}"
                rounds.setdefault(path, []).append((wall / len(environs) * 1e6, cpu / len(environs) * 1e6))
            app.store.close()
            with_metrics, metrics_call = replied_with_metrics(args, Path(folder))
            rounds.setdefault("replied, METRICS_TOKEN set", []).append(with_metrics)
            rounds.setdefault("  of which the metrics' call", []).append(metrics_call)
            if hasattr(sms_responder, "CONSENT"):  # a release before the consent classes has no matcher
                for path, cost in consent_matcher_cost().items():
                    rounds.setdefault(path, []).append(cost)
            rounds.setdefault("verification requested and checked", []).append(verification_cost(args, Path(folder)))
    shutil.rmtree(counts, ignore_errors=True)
    rows = [{"path": path, "wall_us": round(statistics.median(w for w, _ in samples), 1),
             "cpu_us": round(statistics.median(c for _, c in samples), 1)} for path, samples in rounds.items()]
    return {"mode": "inprocess", "messages": args.messages, "rounds": args.rounds, "synchronous": args.synchronous,
            "reply_mode": args.reply_mode, "results": rows}


def replied_with_metrics(args, folder):
    """(wall, cpu) µs per replied webhook of an app with METRICS_TOKEN set (a counter and a histogram more),
    and (wall, cpu) µs of that call alone, timed apart from the webhook's noise."""
    app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER,
                                   database_url=f"sqlite:///{folder / 'metrics.db'}", sqlite_synchronous=args.synchronous,
                                   reply_mode=args.reply_mode, reply_limit=1_000_000, metrics_token="bench")
    quiet_logging(app)
    app.store.ping()
    environs = [environ_for(*signed_request(webhook_form(f"1418{i:07d}", "hello"))) for i in range(args.messages)]
    wall, cpu = time.perf_counter(), time.process_time()
    for environ in environs:
        b"".join(app(environ, lambda status, headers, exc_info=None: None))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    calls = 50 * args.messages
    call_wall, call_cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        app.metrics.webhook("replied", 0.0002)
    call_wall, call_cpu = time.perf_counter() - call_wall, time.process_time() - call_cpu
    app.close()
    return (wall / len(environs) * 1e6, cpu / len(environs) * 1e6), (call_wall / calls * 1e6, call_cpu / calls * 1e6)


def consent_matcher_cost(loops=100):
    """(wall, cpu) µs per call of the consent classes' matcher alone (it runs on every customer's message
    no keyword matched): over the ordinary texts, and over those of them it reads in full (the others
    hold none of the words any class needs and are decided by a quick look)."""
    read_in_full = [text for text in ORDINARY_TEXTS
                    if not sms_responder.CONSENT.anchors.isdisjoint(sms_responder.sentence_marks(text).split())]
    costs = {}
    for name, texts in (("consent matcher, ordinary texts", ORDINARY_TEXTS),
                        ("  of which those read in full", read_in_full)):
        classify = sms_responder.CONSENT.of
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(loops):
            for text in texts:
                classify(text)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        costs[f"{name} ({len(texts)})"] = (wall / (loops * len(texts)) * 1e6, cpu / (loops * len(texts)) * 1e6)
    return costs


def run_compare(args, mode="inprocess"):
    """The in-process rows (or the profile's) of this module and of an older release's (git show REF), side
    by side: rounds alternate between the two, each in a process of its own; each row is the median of its
    rounds."""
    here = Path(__file__).resolve().parent
    rounds = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as folder:
        older = Path(folder) / "older"
        older.mkdir()
        archive = subprocess.run(["git", "archive", args.compare, "sms_responder.py", "sms_responder_surfaces"],
                                 cwd=here, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(older)], input=archive, check=True)
        for number in range(args.rounds):
            for label, env in (("before", {"BENCH_MODULE_FOLDER": str(older)}), ("after", {})):
                figures = Path(folder) / f"{label}-{number}.json"
                run = subprocess.run([sys.executable, str(Path(__file__).resolve()), mode, "--rounds", "1",
                                      "--messages", str(args.messages), "--synchronous", args.synchronous,
                                      "--reply-mode", args.reply_mode, "--json", str(figures)],
                                     env={**os.environ, **env}, cwd=here, capture_output=True, text=True)
                if run.returncode:
                    raise SystemExit(f"the {label} run failed:\n{run.stderr[-3000:]}")
                rounds[label].append({row["path"]: row["cpu_us"] for row in json.loads(figures.read_text())["results"]})
    rows = []
    for path in rounds["after"][0]:
        before = statistics.median(sample[path] for sample in rounds["before"] if path in sample) \
            if path in rounds["before"][0] else None
        after = statistics.median(sample[path] for sample in rounds["after"])
        rows.append({"path": path, f"cpu_us {args.compare}": "-" if before is None else round(before, 1),
                     "cpu_us now": round(after, 1), "now/before": "-" if before is None else f"{after / before:.2f}"})
    return {"mode": mode, "compare": args.compare, "messages": args.messages, "rounds": args.rounds,
            "synchronous": args.synchronous, "reply_mode": args.reply_mode, "results": rows}


def run_profile(args):
    """Where a replied message's CPU goes: each step of the webhook timed alone, in the order the webhook
    takes them (the README's steps), over the same requests; `the rest` is the whole request less them.
    With --compare, the same for the module of git REF, side by side (see run_compare)."""
    if args.compare:
        return run_compare(args, mode="profile")
    folder = tempfile.mkdtemp()
    app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER,
                                   database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
                                   sqlite_synchronous=args.synchronous, reply_limit=1_000_000)
    quiet_logging(app)
    app.store.ping()
    count, samples = args.messages, {}

    def timed_step(name, step, inputs):
        cpu = time.process_time()
        outputs = [step(each) for each in inputs]
        samples.setdefault(name, []).append((time.process_time() - cpu) / count * 1e6)
        return outputs

    for _ in range(args.rounds):
        requests = [signed_request(webhook_form(f"1415{i:07d}", "hello")) for i in range(count)]
        environs = [environ_for(body, dict(headers)) for body, headers in requests]
        bodies = timed_step("1. read_body", lambda environ: sms_responder.read_body(
            environ, app.settings.max_body_bytes), environs)
        forms = timed_step("   parse_form", sms_responder.parse_form, bodies)
        timed_step("2. verify_signature", lambda pair: app.verify_signature(*pair), list(zip(environs, forms)))
        messages = timed_step("4. parse_inbound", lambda form: sms_responder.parse_inbound(form, app.our_numbers),
                              forms)
        now = time.time()
        decisions = timed_step("5-9. store.run(record): the read, deciding, the insert, the commit", lambda message:
                               app.store.run(lambda tx: app.record(tx, message, now, None)), messages)
        with app.store.reading() as history:  # deciding alone, on the state the read found for a new message
            state = sms_responder.MessageState(False, False, False, 0)
            timed_step("   of which deciding (Decider.decide)", lambda message: app.decider.decide(
                history, message, now, app.rules.current(), state), messages)
        responses = timed_step("   the XML answer (xml_answer)", lambda pair: app.xml_answer(*pair),
                               list(zip(messages, decisions)))
        timed_step("   the log line (log_webhook)", lambda response: app.log_webhook(response, time.perf_counter()),
                   responses)
        environs = [environ_for(*signed_request(webhook_form(f"1416{i:07d}", "hello"))) for i in range(count)]
        timed_step("the whole request (app(environ, start_response))", lambda environ: b"".join(
            app(environ, lambda status, headers, exc_info=None: None)), environs)
    app.close()
    rows = {name: statistics.median(values) for name, values in samples.items()}
    steps = sum(value for name, value in rows.items() if not name.startswith(("   of which", "the whole")))
    rows["the rest: routing, headers, Response, WSGI"] = rows["the whole request (app(environ, start_response))"] - steps
    return {"mode": "profile", "messages": count, "rounds": args.rounds, "synchronous": args.synchronous,
            "results": [{"path": name, "cpu_us": round(value, 1)} for name, value in rows.items()]}


# -- What reply rules cost -------------------------------------------------------

def fifty_rules():
    """A 50-rule file as an owner writes one: keyword answers, a few patterns, conditions on number and time.
    "hello" matches none of them; "last" matches only the last."""
    rules = ['[hours]\ntimezone = "America/New_York"\nmon-fri = "09:00-17:00"\n']
    rules += [f'[[rule]]\nname = "keyword {i}"\nkeywords = ["WORD{i}", "OTHER{i}"]\nreply = "answer {i}"\n'
              for i in range(40)]
    rules += [f"[[rule]]\nname = \"pattern {i}\"\npattern = '\\b(price{i}|cost{i})\\b'\nreply = \"p{i}\"\n"
              for i in range(5)]
    rules += ['[[rule]]\nname = "uk"\nfrom = ["+44"]\nreply = "uk"\n',
              f'[[rule]]\nname = "line"\nto = ["{OUR_NUMBER}"]\nmedia = true\nreply = "line"\n',
              '[[rule]]\nname = "weekend"\nwhen = "closed"\nkeywords = ["WEEKEND"]\nreply = "closed"\n',
              '[[rule]]\nname = "mms"\nmedia = true\nreply = "picture"\n',
              '[[rule]]\nname = "last"\nkeywords = ["last"]\nreply = "You said: last"\n']
    return "".join(rules)


MENU_RULES = ('[[rule]]\nname = "menu"\nkeywords = ["MENU"]\nreply = "Reply 1 or 2."\n'
              '[[rule]]\nname = "menu-1"\nafter = ["menu"]\nkeywords = ["1"]\nreply = "one"\n'
              '[[rule]]\nname = "menu-2"\nafter = ["menu"]\nkeywords = ["2"]\nreply = "two"\n'
              '[[rule]]\nname = "menu-again"\nafter = ["menu"]\nreply = "Reply 1 or 2."\n')


def run_rules(args):
    """CPU per replied message without RULES_FILE and with 50 rules (none matching; the last matching),
    rounds interleaved so that the three share the machine's state; and the matching alone."""
    rounds = {}
    with tempfile.TemporaryDirectory() as folder:
        rules_path = Path(folder) / "rules.toml"
        rules_path.write_text(fifty_rules())
        after_path = Path(folder) / "after.toml"  # a menu too: every message reads the sender's previous one
        after_path.write_text(fifty_rules() + MENU_RULES)
        cases = [("no RULES_FILE", "", "hello"), ("50 rules, none matches", str(rules_path), "hello"),
                 ("50 rules, the last matches", str(rules_path), "last"),
                 ("50 rules and a menu (after), none matches", str(after_path), "hello")]
        for round_number in range(args.rounds):
            for label, rules_file, text in cases:
                app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER,
                                               database_url=f"sqlite:///{Path(folder) / f'{round_number}{label}.db'}",
                                               sqlite_synchronous="normal", reply_limit=1_000_000,
                                               reply_text="You said: {text}", rules_file=rules_file)
                quiet_logging(app)
                app.store.ping()
                environs = [environ_for(*signed_request(webhook_form(f"1415{i:07d}", text)))
                            for i in range(args.messages)]
                statuses = []
                cpu = time.process_time()
                for environ in environs:
                    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
                cpu = time.process_time() - cpu
                assert statuses == ["200 OK"] * len(environs) and f"You said: {text}".encode() in body, body
                rounds.setdefault(label, []).append(cpu / len(environs) * 1e6)
                app.close()
        matching = match_cost(sms_responder.load_rules(str(rules_path), [OUR_NUMBER]))
        matching["a menu (after): the previous message in the one read"] = after_cost(
            f"sqlite:///{Path(folder) / f'{args.rounds - 1}50 rules and a menu (after), none matches.db'}")
    base = statistics.median(rounds["no RULES_FILE"])
    rows = [{"path": label, "cpu_us": round(statistics.median(samples), 1),
             "added_us": round(statistics.median(samples) - base, 1)} for label, samples in rounds.items()]
    rows += [{"path": f"matching alone: {label}", "cpu_us": round(cost, 2), "added_us": round(cost, 2)}
             for label, cost in matching.items()]
    return {"mode": "rules", "messages": args.messages, "rounds": args.rounds, "synchronous": "normal",
            "results": rows}


def after_cost(database_url, repeat=20_000):
    """µs per message that `after` rules add: the webhook's one read with the sender's previous message
    folded in, less the same read without it (on the benchmark's database, a sender with a message)."""
    store = sms_responder.open_store(sms_responder.Settings.from_env({
        "PLIVO_AUTH_TOKEN": TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url}))
    message = sms_responder.InboundMessage("uuid", f"1415{7:07d}", OUR_NUMBER, "hello", "sms")
    costs = {}
    with store.reading() as history:
        for label, since in (("with", 1800.0), ("without", None)):
            start = time.process_time()
            for _ in range(repeat):
                now = time.time()
                sms_responder.message_state(history, message, now - 60, None, since and now - since)
            costs[label] = (time.process_time() - start) / repeat * 1e6
    store.close()
    return costs["with"] - costs["without"]


def match_cost(rules, repeat=200_000):
    """µs per message of what the rules add to deciding it: the keyword look-up and first_match
    (no rule here reads the database), and of the log line's segment count."""
    costs = {}
    no_history = None  # none of the 50 rules has first_message, once_per or after: nothing stored is read
    no_state = sms_responder.MessageState(False, False, False, 0)
    for label, text in (("none matches", "hello"), ("the last matches", "last")):
        message = sms_responder.InboundMessage("uuid", "14155550123", OUR_NUMBER, text, "sms")
        words = sms_responder.normalize_keyword(text)
        start = time.process_time()
        for _ in range(repeat):
            rules.keyword_of(words, False)
            rules.first_match(no_history, message, words, 1_796_000_000.0, no_state)
        costs[label] = (time.process_time() - start) / repeat * 1e6
    reply = "Open Mon-Fri 9-5, Sat 10-3 (New York time). Reply HELP for help."
    start = time.process_time()
    for _ in range(repeat):
        sms_responder.segments_of.__wrapped__(reply)
    costs["segments= (not cached)"] = (time.process_time() - start) / repeat * 1e6
    start = time.process_time()
    for _ in range(repeat):
        sms_responder.segments_of(reply)
    costs["segments= (cached)"] = (time.process_time() - start) / repeat * 1e6
    return costs


# -- The operating commands on a large database ------------------------------------

def fill_database(database_url, messages, folder, text_of=None):
    """`messages` messages from 50,000 senders over the last 30 days, each with a delivered outbox row,
    and 10,000 opt-outs, written straight into a database the service has created; its text text_of(i)
    (default "hello {i}").

    Written in bulk (executemany, COPY) with the secondary indexes of messages and outbox dropped and
    made again afterwards, and on PostgreSQL the triggers held off and the conversations table filled
    in one statement (the migration's own), as an operator loading a database would. On SQLite the
    inbox indexes the words on its first request (its catch-up), which inbox_timings measures."""
    text_of = text_of or (lambda i: f"hello {i}")
    app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER, database_url=database_url)
    app.store.ping()
    app.close()
    now, span = time.time(), 30 * 86400
    sqlite = database_url.startswith("sqlite")
    stamp = sms_responder.iso_time if sqlite else (lambda unix: sms_responder.datetime.fromtimestamp(
        unix, sms_responder.UTC))

    def message_rows():
        for i in range(messages):
            sender = f"1415{i % 50_000:07d}"
            text = text_of(i)
            yield (str(uuid.uuid4()), sender, OUR_NUMBER, text, "sms", "[]",
                   stamp(now - span + span * i / messages), "replied", f"You said: {text}")

    columns = "message_uuid, from_number, to_number, text, type, media_urls, received_at, outcome, reply"
    fill_outbox = ("INSERT INTO outbox (message_uuid, kind, status, src, dst, text, attempts, next_attempt_at,"
                   " queued_at) SELECT message_uuid, 'reply', 'delivered', to_number, from_number, reply, 1, 0,"
                   " received_at FROM messages")
    opt_outs = [(f"1416{i:07d}", OUR_NUMBER, f"1416{i:07d}", OUR_NUMBER, stamp(now - i)) for i in range(10_000)]
    if sqlite:
        connection = sms_responder.sqlite3.connect(database_url.removeprefix("sqlite:///"))
        connection.execute("PRAGMA cache_size = -1000000")  # 1 GB, while filling
        indexes = _drop_indexes(connection, [sql for (sql,) in connection.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('messages', 'outbox')"
            " AND sql IS NOT NULL")])
        with connection:
            connection.executemany(f"INSERT INTO messages ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   message_rows())
            connection.execute(fill_outbox)
            connection.executemany("INSERT INTO opt_outs VALUES (?, ?, ?, ?, ?)", opt_outs)
        for sql in indexes:
            connection.execute(sql)
        connection.execute("ANALYZE")
        connection.close()
        return
    import psycopg
    with psycopg.connect(database_url) as connection:
        connection.execute("SET session_replication_role = replica")  # no triggers: conversations below
        connection.execute("SET maintenance_work_mem = '1GB'")
        indexes = _drop_indexes(connection, [sql for (sql,) in connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename IN ('messages', 'outbox')"
            " AND indexname NOT IN ('messages_pkey', 'outbox_pkey') AND indexdef NOT LIKE '%UNIQUE%'")])
        with connection.cursor().copy(f"COPY messages ({columns}) FROM STDIN") as copy:
            for row in message_rows():
                copy.write_row(row)
        connection.execute(fill_outbox)
        with connection.cursor().copy("COPY opt_outs FROM STDIN") as copy:
            for row in opt_outs:
                copy.write_row(row)
        for sql in indexes:
            connection.execute(sql)
        connection.execute(_migration_statement("INSERT INTO conversations"))
        connection.execute("ANALYZE")


def _drop_indexes(connection, definitions):
    """Drop these indexes (CREATE INDEX statements); the statements, to make them again."""
    for sql in definitions:
        connection.execute("DROP INDEX " + sql.split(" INDEX ")[1].split()[0])
    return definitions


def _migration_statement(beginning):
    """The one statement of the migrations that begins so (a bulk load runs it as the migration did)."""
    found = [entry for step in sms_responder.MIGRATIONS for entry in step
             if isinstance(entry, str) and entry.startswith(beginning)]
    assert len(found) == 1, beginning
    return found[0].format(**sms_responder.POSTGRES_TYPES)


def time_command(env, *args, repeat=3):
    """The median wall time of a whole command (Python's start included), as the owner waits for it."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(Path(__file__).with_name("sms_responder.py")), *args],
                                env=env, capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    return statistics.median(times)


def on_each_backend(messages, measure, text_of=None):
    """measure(backend, database_url, folder) on a database of `messages` messages, SQLite then PostgreSQL
    (a throwaway server, durable), each filled by fill_database; the rows of both."""
    rows = []
    for backend in ("sqlite", "postgresql"):
        if backend == "postgresql" and postgres_bin() is None:
            print("PostgreSQL is not installed: its rows are skipped", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as folder_name:
            folder = Path(folder_name)
            postgres = PostgresServer(postgres_bin(), durable=True).initialise().start() if backend == "postgresql" \
                else None
            try:
                database_url = postgres.url() if postgres else f"sqlite:///{folder / 'filled.db'}"
                started = time.perf_counter()
                fill_database(database_url, messages, folder, text_of)
                filled = time.perf_counter() - started
                print(f"  {backend}: {messages:,} messages written in {filled:.0f} s", file=sys.stderr, flush=True)
                rows.append({"path": f"{backend}, {messages:,} messages written in bulk, indexes made",
                             "figure": f"{filled:.1f} s"})
                rows += measure(backend, database_url, folder)
            finally:
                if postgres:
                    postgres.stop()
                    postgres.remove()
    return rows


def run_operations(args):
    return {"mode": "operations", "messages": args.messages,
            "results": on_each_backend(args.messages, lambda *where: operations_timings(args, *where))}


def operations_timings(args, backend, database_url, folder):
    """The owner's commands on the filled database (whole command wall time), and a 10 % import."""
    rows = []
    env = {**os.environ, "PLIVO_AUTH_TOKEN": TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
           "DATABASE_URL": database_url}
    for label, command in (("messages --limit 20", ["messages", "--limit", "20"]),
                           ("messages --from N", ["messages", "--from", "+14150001234"]),
                           ("messages --since 1h", ["messages", "--since", "1h"]),
                           ("stats", ["stats"]),
                           ("import sms_responder (start-up alone)", None)):
        seconds = time_command(env, *command) if command else statistics.median(
            timed(lambda: subprocess.run([sys.executable, "-c", "import sms_responder"], env=env,
                                         check=True)) for _ in range(3))
        rows.append({"path": f"{backend}, {label}", "seconds": round(seconds, 3), "rows_per_s": "-"})
    imports = args.messages // 10
    (folder / "opt-outs.csv").write_text(
        "number,opted_out_at\n" + "".join(f"1417{i:07d},2026-01-01T00:00:00Z\n" for i in range(imports)))
    seconds = time_command(env, "opt-outs", "import", str(folder / "opt-outs.csv"), repeat=1)
    rows.append({"path": f"{backend}, opt-outs import ({imports:,} rows)", "seconds": round(seconds, 2),
                 "rows_per_s": round(imports / seconds)})
    return rows


#: The inbox's searches find: "hello" in every message, "periwinkle" in one in RARE_EVERY, "zebra" in none.
RARE_EVERY = 100_003


def inbox_text(i):
    """A message of the inbox's figures: an ordinary customer's text (the consent corpus), "hello" and its number."""
    return (f"hello {i}: {ORDINARY_TEXTS[i % len(ORDINARY_TEXTS)]}" + (" periwinkle" if i % RARE_EVERY == 0 else ""))


def run_inbox(args):
    """The inbox's pages on a database of args.messages messages (50,000 senders): median wall time of 5;
    what the index of words and the conversations table cost (bulk build, bytes, per message stored)."""
    rows = on_each_backend(args.messages, lambda backend, database_url, folder: inbox_timings(
        backend, database_url, args.messages), inbox_text)
    if postgres_bin() is not None:
        rows += postgres_storing_cost(args.rounds)
    return {"mode": "inbox", "messages": args.messages, "results": rows}


def inbox_timings(backend, database_url, messages):
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp())
    app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER, database_url=database_url,
                                   plivo_auth_id=AUTH_ID, metrics_token="bench")
    quiet_logging(app)
    now = time.time()
    with app.store.transaction() as tx:
        people.add_person(tx, "bench", "a bench password", now)
        cookie = f"sms_inbox={people.open_session(tx, 'bench', now)}"

    def request(path, query_string=""):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query_string, "SCRIPT_NAME": "",
                   "SERVER_NAME": "bench.example", "SERVER_PORT": "80", "HTTP_HOST": "bench.example",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
                   "HTTP_COOKIE": cookie, "HTTP_AUTHORIZATION": "Bearer bench"}
        statuses = []
        started = time.perf_counter()
        b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
        assert statuses == ["200 OK"], (path, query_string, statuses)
        return time.perf_counter() - started

    # SQLite: the first request indexes every message written in bulk (the inbox's catch-up, in batches)
    rows = [{"path": f"{backend}, the index of words and conversations made "
                     + ("by the first request" if backend == "sqlite" else "in bulk (above)"),
             "figure": f"{request('/inbox/updates', 'unread=1'):.1f} s" if backend == "sqlite" else "-"}]
    rows += index_sizes(backend, database_url, messages)
    assign_to_bench(database_url, 100)
    day_ago = sms_responder.datetime.fromtimestamp(now - 86400, sms_responder.UTC).isoformat()
    customer = f"1415{1234:07d}"
    pages = [("the list (first 50 conversations)", "/inbox", ""),
             ("the list, More (a day back)", "/inbox", urllib.parse.urlencode({"before": day_ago})),
             ("the list, Mine (100 assigned)", "/inbox", "view=mine"),
             ("the list, Unassigned", "/inbox", "view=unassigned"),
             (f"a conversation ({len(range(1234, messages, 50_000))} messages)",
              f"/inbox/conversations/{customer}/{OUR_NUMBER}", ""),
             ("search: a word of every message", "/inbox", "q=hello"),
             (f"search: a rare word (1 message in {RARE_EVERY:,})", "/inbox", "q=periwinkle"),
             ("search: the words of one message", "/inbox", f"q=hello+{messages // 2}"),
             ("search: a word of no message", "/inbox", "q=zebra"),
             ("search: digits of a number", "/inbox", "q=0001234"),
             ("the page's update check and unread count (the list)", "/inbox/updates", ""),
             ("the page's update check and unread count (a conversation)", "/inbox/updates",
              f"with={customer}/{OUR_NUMBER}"),
             ("GET /metrics (a scrape)", "/metrics", "")]
    for label, path, query_string in pages:
        median_ms = statistics.median(request(path, query_string) for _ in range(5)) * 1000
        rows.append({"path": f"{backend}, {label}", "ms": round(median_ms, 1),
                     "within 300 ms": "yes" if median_ms <= 300 else "NO"})
    app.close()
    return rows


def index_sizes(backend, database_url, messages):
    """Bytes per message of the index of words and of the conversations table (with their indexes)."""
    if backend == "sqlite":
        connection = sms_responder.sqlite3.connect(database_url.removeprefix("sqlite:///"))
        sizes = dict(connection.execute(
            "SELECT CASE WHEN name LIKE 'message_words%' OR name LIKE 'outbound_words%' THEN 'words'"
            " WHEN name LIKE '%conversations%' THEN 'conversations' ELSE 'rest' END, sum(pgsize) FROM dbstat"
            " GROUP BY 1").fetchall())
        connection.close()
    else:
        import psycopg
        with psycopg.connect(database_url) as connection:
            sizes = {"words": connection.execute(
                "SELECT pg_relation_size('messages_words') + pg_relation_size('outbox_words')").fetchone()[0],
                     "conversations": connection.execute(
                "SELECT pg_total_relation_size('conversations')").fetchone()[0],
                     "rest": connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]}
            sizes["rest"] -= sizes["words"] + sizes["conversations"]
    return [{"path": f"{backend}, bytes per message: {what}", "figure": f"{sizes.get(key, 0) / messages:.1f}"}
            for key, what in (("words", "the index of words"), ("conversations", "the conversations table"),
                              ("rest", "everything else (messages, outbox, their indexes)"))]


def assign_to_bench(database_url, count):
    """The first `count` senders' conversations are the bench person's (the view Mine)."""
    connection = (sms_responder.sqlite3.connect(database_url.removeprefix("sqlite:///"))
                  if database_url.startswith("sqlite") else __import__("psycopg").connect(database_url))
    with connection:
        connection.execute("UPDATE conversations SET assignee = 'bench', assigned_by = 'bench', assigned_at = last_at"
                           f" WHERE customer IN ({', '.join(repr(f'1415{i:07d}') for i in range(count))})")
    connection.close()


def postgres_storing_cost(rounds):
    """What the index of words and the conversations trigger add to storing a message on PostgreSQL: the
    database server's CPU and the app's per replied webhook (3,000 new senders a round), with them and
    with them dropped, on one fresh database; medians of `rounds` rounds, the two alternating."""
    samples = {"with": [], "without": []}
    postgres = PostgresServer(postgres_bin(), durable=True).initialise().start()
    try:
        server = int(Path(postgres.folder, "data", "postmaster.pid").read_text().split()[0])
        with __import__("psycopg").connect(postgres.url(), autocommit=True) as connection:
            # no autovacuum: its work (an ANALYZE of the new tables, a GIN pending list merged) would land at
            # random in one round or another; a GIN index's pending list is then merged by the backend that
            # fills it (past gin_pending_list_limit), in the round that pays for it
            connection.execute("ALTER SYSTEM SET autovacuum = off")
            connection.execute("SELECT pg_reload_conf()")
        for number in range(rounds):
            for variant in samples:
                with __import__("psycopg").connect(postgres.url(), autocommit=True) as connection:
                    connection.execute("DROP SCHEMA public CASCADE")
                    connection.execute("CREATE SCHEMA public")
                app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER,
                                               database_url=postgres.url(), reply_limit=1_000_000)
                quiet_logging(app)
                app.store.ping()
                if variant == "without":
                    with __import__("psycopg").connect(postgres.url(), autocommit=True) as connection:
                        connection.execute("DROP TRIGGER message_added ON messages")
                        connection.execute("DROP INDEX messages_words")
                environs = [environ_for(*signed_request(webhook_form(f"1415{number:02d}{i:05d}", inbox_text(i))))
                            for i in range(3000)]
                b"".join(app(environs[0], lambda *answer: None))  # the pool's connection, plans made
                server_cpu, app_cpu = sum(cpu_seconds(process_tree(server))), time.process_time()
                for environ in environs[1:]:
                    b"".join(app(environ, lambda *answer: None))
                samples[variant].append(((sum(cpu_seconds(process_tree(server))) - server_cpu) / 2999 * 1e6,
                                         (time.process_time() - app_cpu) / 2999 * 1e6))
                app.close()
    finally:
        postgres.stop()
        postgres.remove()
    return [{"path": f"postgresql, storing a message {variant} the index and trigger: server + app CPU",
             "figure": f"{statistics.median(s for s, _ in values):.0f} + {statistics.median(a for _, a in values):.0f} us"}
            for variant, values in samples.items()]


def grow_database(database_url, messages):
    """A database the service has created, holding `messages` messages from a million senders over 30 days.

    Written in bulk with the indexes dropped and made again afterwards (hours less than growing them
    one message at a time; a fresh index is packed tighter than a grown one, which flatters reads a
    little and writes not at all)."""
    app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER, database_url=database_url)
    app.store.ping()
    app.close()
    now, span = time.time(), 30 * 86400
    sqlite = database_url.startswith("sqlite")
    connection = (sms_responder.sqlite3.connect(database_url.removeprefix("sqlite:///")) if sqlite
                  else __import__("psycopg").connect(database_url))
    indexes = ([sql for (sql,) in connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND sql IS NOT NULL")]
               if sqlite else [sql for (sql,) in connection.execute(
                   "SELECT indexdef FROM pg_indexes WHERE tablename = 'messages' AND indexname <> 'messages_pkey'")])
    for sql in indexes:
        connection.execute("DROP INDEX " + sql.split(" INDEX ")[1].split()[0])
    stamp = sms_responder.iso_time if sqlite else (lambda unix: sms_responder.datetime.fromtimestamp(
        unix, sms_responder.UTC))
    rows = ((str(uuid.UUID(int=random.getrandbits(128), version=4)), f"1415{random.randrange(1_000_000):07d}",
             OUR_NUMBER, "hello", "sms", "[]", stamp(now - span + span * i / messages), "replied", "You said: hello")
            for i in range(messages))
    columns = "message_uuid, from_number, to_number, text, type, media_urls, received_at, outcome, reply"
    if sqlite:
        connection.execute("PRAGMA synchronous = OFF")  # only while filling: the benchmark, not the service
        with connection:
            connection.executemany(f"INSERT INTO messages ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    else:
        with connection.cursor().copy(f"COPY messages ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    for sql in indexes:
        connection.execute(sql)
    connection.execute("ANALYZE") if sqlite else connection.execute("ANALYZE messages")
    connection.commit()
    connection.close()


def run_growth(args):
    """CPU per replied webhook (in process, SQLITE_SYNCHRONOUS=normal) on an empty database and on large ones."""
    random.seed(7)
    rows = []
    sizes = [int(size) for size in args.sizes.split(",")]
    for backend in args.growth_backends.split(","):
        if backend == "postgresql" and postgres_bin() is None:
            continue
        for size in sizes if backend == "sqlite" else [size for size in sizes if size <= 1_000_000]:
            with tempfile.TemporaryDirectory(dir=args.folder) as folder_name:
                postgres = (PostgresServer(postgres_bin(), durable=True).initialise().start()
                            if backend == "postgresql" else None)
                try:
                    database_url = postgres.url() if postgres else f"sqlite:///{Path(folder_name) / 'grown.db'}"
                    started = time.perf_counter()
                    if size:
                        grow_database(database_url, size)
                    print(f"  {backend}: {size:,} messages in {time.perf_counter() - started:.0f} s",
                          file=sys.stderr, flush=True)
                    rows.append({"path": f"{backend}, {size:,} stored", **webhook_cost(database_url, args)})
                finally:
                    if postgres:
                        postgres.stop()
                        postgres.remove()
        empty = next(row["cpu_us"] for row in rows if row["path"] == f"{backend}, 0 stored")
        for row in rows:
            if row["path"].startswith(backend):
                row["vs_empty"] = round(row["cpu_us"] / empty, 2)
    return {"mode": "growth", "messages": args.messages, "rounds": args.rounds, "synchronous": "normal",
            "results": rows}


def webhook_cost(database_url, args):
    """Median CPU and wall time per replied webhook over args.rounds rounds of args.messages new messages."""
    app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER, database_url=database_url,
                                   sqlite_synchronous="normal", reply_limit=1_000_000)
    quiet_logging(app)
    app.store.ping()
    cpu_samples, wall_samples = [], []
    for _ in range(args.rounds):
        environs = [environ_for(*signed_request(webhook_form(f"1415{random.randrange(1_000_000):07d}", "hello")))
                    for _ in range(args.messages)]
        statuses = []
        wall, cpu = time.perf_counter(), time.process_time()
        for environ in environs:
            b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert statuses == ["200 OK"] * len(environs)
        cpu_samples.append(cpu / len(environs) * 1e6)
        wall_samples.append(wall / len(environs) * 1e6)
    app.close()
    return {"cpu_us": round(statistics.median(cpu_samples), 1), "wall_us": round(statistics.median(wall_samples), 1)}


def verification_cost(args, folder):
    """(wall, cpu) µs of one verification, in process: POST /api/verifications (checked, stored, its SMS queued
    with the code masked), then POST /api/verifications/ID/check with the right code (made again, compared,
    approved). Numbers spread over area codes, so that the prefix limit (read for each) refuses none."""
    from sms_responder_surfaces import verification
    app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER, plivo_auth_id=AUTH_ID,
                                   database_url=f"sqlite:///{folder / 'verification.db'}",
                                   sqlite_synchronous=args.synchronous, api_limit=1_000_000)
    quiet_logging(app)
    app.store.ping()
    with app.store.transaction() as tx:
        token = api.add_token(tx, "bench-verify", time.time(), ("verify",))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    asked = [environ_for(json.dumps({"to": f"+1{200 + i % 800}{i:07d}"}).encode(), dict(headers),
                         verification.VERIFICATIONS_PATH) for i in range(args.messages)]
    answers = []
    wall, cpu = time.perf_counter(), time.process_time()
    for environ in asked:
        answers.append(b"".join(app(environ, lambda status, headers, exc_info=None: None)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    key = verification.code_key(TOKEN)
    with app.store.transaction() as tx:  # the codes the worker would send, made as it makes them (not timed)
        seeds = {row[0]: row[1:] for row in tx.execute("SELECT id, seed, digits FROM verifications").fetchall()}
    checks = [environ_for(json.dumps({"code": verification.code_of(key, answer["id"], *seeds[answer["id"]])}).encode(),
                          dict(headers), f"{verification.VERIFICATION_PREFIX}{answer['id']}/check")
              for answer in map(json.loads, answers)]
    valid = []
    check_wall, check_cpu = time.perf_counter(), time.process_time()
    for environ in checks:
        valid.append(json.loads(b"".join(app(environ, lambda status, headers, exc_info=None: None)))["valid"])
    wall, cpu = wall + time.perf_counter() - check_wall, cpu + time.process_time() - check_cpu
    assert valid == [True] * len(checks) and len(checks) == args.messages
    app.close()
    return wall / args.messages * 1e6, cpu / args.messages * 1e6


def timed(work):
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


# -- Outbox worker throughput ---------------------------------------------------

def run_outbox(args):
    with tempfile.TemporaryDirectory() as folder, FakePlivoAPI(AUTH_ID, TOKEN) as api:
        app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER, plivo_auth_id=AUTH_ID,
                                       plivo_api_url=api.url, reply_mode="api", reply_limit=1_000_000,
                                       database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
                                       sqlite_synchronous=args.synchronous)
        quiet_logging(app)
        for body, headers in [signed_request(webhook_form(f"1415{i:07d}", "hello")) for i in range(args.messages)]:
            b"".join(app(environ_for(body, headers), lambda status, headers, exc_info=None: None))
        worker = sms_responder.OutboxWorker(app)
        wall, cpu = time.perf_counter(), time.process_time()
        while worker.send_next():
            pass
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert len(api.accepted) == args.messages
        app.store.close()
    return {"mode": "outbox", "messages": args.messages, "synchronous": args.synchronous,
            "results": [{"path": "send through the API", "per_second": round(args.messages / wall),
                         "wall_us": round(wall / args.messages * 1e6, 1),
                         "cpu_us": round(cpu / args.messages * 1e6, 1)}]}


# -- Over HTTP: a WSGI host, and load from a separate process ---------------------

# The ceiling of a host, and the baseline for memory: a module that imports nothing and answers a
# fixed reply. It is written to the run's folder so that the host loads nothing else.
BARE_APP = """
BODY = b'<Response><Message src="14155550100" dst="14155550123" type="sms">You said: hello</Message></Response>'


def application(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(BODY)))])
    return [BODY]
"""


def host_command(host, port, workers, threads, app):
    """The command line that serves `app` ("module:callable") under the named host."""
    venv = Path(sys.executable).parent
    bind = f"127.0.0.1:{port}"
    return {
        "stdlib": [sys.executable, "sms_responder.py", "--port", str(port)],
        "gunicorn-sync": [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", bind, app],
        "gunicorn-gthread": [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread", "--threads",
                             str(threads), "-b", bind, app],
        "uwsgi": [str(venv / "uwsgi"), "--http11-socket", bind, "--module", app, "--processes", str(workers),
                  "--threads", str(threads), "--master", "--need-app", "--disable-logging", "--die-on-term"],
        "granian": [str(venv / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(workers), "--blocking-threads", str(threads), "--no-access-log", app],
    }[host]


def process_tree(pid):
    """The pids of a process and all its descendants."""
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*/children"):
            pids += [int(child) for child in task.read_text().split()]
        index += 1
    return pids


def cpu_seconds(pids):
    """(user, system) CPU time of these processes so far."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime (stat fields 14, 15)
    return user / os.sysconf("SC_CLK_TCK"), system / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


WRK_SCRIPT = """
-- Each pre-signed request is sent at most once; every answer is checked (status 200, a <Message>).
-- wrk runs for its full duration: running out of requests makes the figures wrong, so it is reported.
local counter, threads = 0, {}
function setup(thread)
  thread:set("id", counter); counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  requests, sent, good, bad, exhausted, expected, cycle = {}, 0, 0, 0, 0, args[3], args[4] == "cycle"
  local index, total = 0, tonumber(args[2])
  for line in io.lines(args[1]) do
    if index % total == id then
      local body, signature, nonce = line:match("([^\t]*)\t([^\t]*)\t([^\t]*)")
      table.insert(requests, wrk.format("POST", wrk.path, {["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Plivo-Signature-V3"] = signature, ["X-Plivo-Signature-V3-Nonce"] = nonce}, body))
    end
    index = index + 1
  end
  spare = wrk.format("GET", "/health")
end
function request()
  sent = sent + 1
  if sent > #requests then
    if cycle then sent = 1 else exhausted = 1; wrk.thread:stop(); return spare end
  end
  return requests[sent]
end
function response(status, headers, body)
  if body:find("status", 1, true) then return end  -- a spare /health request after the last one
  if status == 200 and body:find(expected, 1, true) then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local good, bad, exhausted = 0, 0, 0
  for _, thread in ipairs(threads) do
    good, bad = good + thread:get("good"), bad + thread:get("bad")
    exhausted = exhausted + thread:get("exhausted")
  end
  io.write(string.format('{"good": %d, "bad": %d, "exhausted": %d, "seconds": %.4f, "p50_us": %d, "p99_us": %d,'
    .. ' "errors": %d}\\n', good, bad, exhausted, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def load_with_wrk(url, requests, connections, seconds, folder, cpu, cycle=False):
    """Load the service for `seconds` with wrk, each request at most once (unless cycling); what it counted."""
    request_file = folder / "requests.tsv"
    request_file.write_text("".join(f"{body.decode()}\t{headers['X-Plivo-Signature-V3']}\t"
                                    f"{headers['X-Plivo-Signature-V3-Nonce']}\n" for body, headers in requests))
    script = folder / "requests.lua"
    script.write_text(WRK_SCRIPT)
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    output = subprocess.run([*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                             "-s", str(script), f"{url}{sms_responder.WEBHOOK_PATH}", "--", str(request_file), "1",
                             "<Message", "cycle" if cycle else "once"], capture_output=True, text=True, check=True)
    counted = json.loads(output.stdout.strip().splitlines()[-1])
    if counted["exhausted"]:
        raise SystemExit(f"wrk used all {len(requests)} pre-signed requests before {seconds} s: raise --messages")
    return counted


def load_with_python(url, requests, connections):
    """Send every request once from `connections` threads (when wrk is not installed); what they saw."""
    host, port = url.removeprefix("http://").split(":")

    def send(request):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("POST", sms_responder.WEBHOOK_PATH, *request)
            answer = connection.getresponse()
            ok = answer.status == 200 and b"<Message" in answer.read()
        except OSError:
            ok = False
        finally:
            connection.close()
        return ok, time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(send, requests))
    seconds = time.perf_counter() - started
    latencies = sorted(latency for _, latency in results)
    good = sum(ok for ok, _ in results)
    return {"good": good, "bad": len(results) - good, "seconds": seconds, "errors": 0,
            "p50_us": latencies[len(latencies) // 2] * 1e6, "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6}


def wait_until_serving(url, process, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the host did not start (exit status {process.poll()})") from None
            time.sleep(0.05)


def run_http(args):
    app = "bare_app:application" if args.app == "bare" else "sms_responder:application"
    if args.app == "bare" and args.host == "stdlib":
        raise SystemExit("--app bare needs a WSGI host other than stdlib")
    cpus = (0, 1) if os.cpu_count() >= 2 and shutil.which("taskset") and not args.no_pin else (None, None)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        postgres = start_bench_postgres(cpus[0]) if args.backend == "postgresql" else None
        database_url = postgres.url() if postgres else f"sqlite:///{folder / 'bench.db'}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        (folder / "bare_app.py").write_text(BARE_APP)
        env = {**os.environ, "PLIVO_AUTH_TOKEN": TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
               "SQLITE_SYNCHRONOUS": args.synchronous, "REPLY_LIMIT": "1000000",
               "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{folder}"}
        pin = ["taskset", "-c", str(cpus[0])] if cpus[0] is not None else []
        signing_url = f"{url}{sms_responder.WEBHOOK_PATH}"
        warmup = [signed_request(webhook_form(f"1999{i:07d}", "warm"), url=signing_url) for i in range(200)]
        count = min(args.messages, 2000) if args.app == "bare" else args.messages  # the bare app cycles them
        requests = [signed_request(webhook_form(f"1415{i:07d}", "hello"), url=signing_url) for i in range(count)]
        with open(folder / "server.log", "wb") as log:
            server = subprocess.Popen([*pin, *host_command(args.host, port, args.workers, args.threads, app)],
                                      env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parent)
        try:
            wait_until_serving(url, server)
            load_with_python(url, [(body, headers) for body, headers in warmup], 8)  # builds the app in every worker
            pids = process_tree(server.pid)

            def service_pids():  # the host's processes and the database server's: its CPU is the service's too
                return process_tree(server.pid) + (process_tree(postgres.pid()) if postgres else [])

            cpu_before = cpu_seconds(service_pids())
            if shutil.which("wrk"):
                counted = load_with_wrk(url, requests, args.connections, args.seconds, folder, cpus[1],
                                        cycle=args.app == "bare")
            else:
                counted = load_with_python(url, requests, args.connections)
            cpu_after = cpu_seconds(service_pids())
            server_user, server_system = (after - before for after, before in zip(cpu_after, cpu_before))
            worker_rss = max(rss_mb(pid) for pid in pids if pid != server.pid or len(pids) == 1)
            stored = count_stored(database_url) if args.app != "bare" else None
        finally:
            server.terminate()
            server.wait(timeout=30)
            if postgres:
                postgres.stop()
                postgres.remove()
    requests_done = counted["good"] + counted["bad"]
    return {"mode": "http", "host": args.host, "app": args.app, "workers": args.workers, "threads": args.threads,
            "backend": args.backend, "synchronous": args.synchronous if args.backend == "sqlite" else "-",
            "connections": args.connections, "load": "wrk" if shutil.which("wrk") else "python",
            "results": [{"path": "replied", "req_per_s": round(requests_done / counted["seconds"]),
                         "p50_ms": round(counted["p50_us"] / 1000, 2), "p99_ms": round(counted["p99_us"] / 1000, 2),
                         "cpu_us_per_req": round((server_user + server_system) / requests_done * 1e6),
                         "user_us": round(server_user / requests_done * 1e6),
                         "system_us": round(server_system / requests_done * 1e6),
                         "rss_mb_per_worker": round(worker_rss, 1), "ok": counted["good"],
                         "bad": counted["bad"] + counted["errors"],
                         "stored": "-" if stored is None else stored - len(warmup)}]}


def count_stored(database_url):
    """Rows in messages, read from outside the service."""
    if database_url.startswith("sqlite:///"):
        import sqlite3
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            rows = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        connection.close()
        return rows
    import psycopg
    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT count(*) FROM messages").fetchone()[0]


def start_bench_postgres(cpu):
    """A throwaway PostgreSQL with its default (durable) settings, on the service's CPU."""
    bin_folder = postgres_bin()
    if bin_folder is None:
        raise SystemExit("--backend postgresql needs PostgreSQL installed (Debian: apt-get install postgresql)")
    return PostgresServer(bin_folder, durable=True, cpu=cpu).initialise().start()


# The README's table: (label, options of the http mode).
MATRIX = [
    ("bare app, gunicorn sync -w1 (ceiling)", ["--host", "gunicorn-sync", "--app", "bare"]),
    ("gunicorn sync -w1, normal", ["--host", "gunicorn-sync", "--synchronous", "normal"]),
    ("gunicorn sync -w1, full", ["--host", "gunicorn-sync", "--synchronous", "full"]),
    ("gunicorn sync -w3, full", ["--host", "gunicorn-sync", "--workers", "3", "--synchronous", "full"]),
    ("gunicorn sync -w3, postgresql", ["--host", "gunicorn-sync", "--workers", "3", "--backend", "postgresql"]),
    ("stdlib server, full", ["--host", "stdlib", "--synchronous", "full"]),
    ("gunicorn gthread -w1 --threads 16, full", ["--host", "gunicorn-gthread", "--synchronous", "full"]),
    ("granian -w1, 16 threads, full", ["--host", "granian", "--synchronous", "full"]),
    ("uwsgi -w1, 16 threads, full", ["--host", "uwsgi", "--synchronous", "full"]),
    ("uwsgi -w1, 16 threads, normal", ["--host", "uwsgi", "--synchronous", "normal"]),
    ("uwsgi -w1, 16 threads, postgresql", ["--host", "uwsgi", "--backend", "postgresql"]),
    ("bare app, uwsgi -w1 (ceiling)", ["--host", "uwsgi", "--app", "bare"]),
]


def run_matrix(args):
    rows = []
    for label, options in MATRIX:
        extra = ["--seconds", str(args.seconds), "--messages", str(args.messages), "--connections",
                 str(args.connections)] + (["--no-pin"] if args.no_pin else [])
        report = run_http(parse_args(["http", *options, *extra]))
        rows.append({"path": label, **{key: value for key, value in report["results"][0].items() if key != "path"}})
        print(f"  {label}: {rows[-1]['req_per_s']} req/s", file=sys.stderr, flush=True)
    return {"mode": "matrix", "seconds": args.seconds, "connections": args.connections,
            "load": "wrk" if shutil.which("wrk") else "python", "results": rows}


# -- The cost goals, each with its figure ------------------------------------------

# BENCH_PEERS: a set-up copy elsewhere (setup.sh writes its .venv and node_modules beside itself).
PEERS = Path(os.environ.get("BENCH_PEERS") or Path(__file__).resolve().parent.parent / "shared" / "peers")


def run_goals(args):
    """Each goal of the per-message cost, measured here in one run, next to its target (issue 31's first)."""
    goals = []

    def goal(name, figure, met):
        goals.append({"path": name, "figure": figure, "met": "met" if met else "NOT met"})
        print(f"  {name}: {figure} ({goals[-1]['met']})", file=sys.stderr, flush=True)

    peers = run_peers(args)
    compared = run_compare(parse_args(["inprocess", "--compare", args.compare or "main", "--messages",
                                       str(min(args.messages, 2000)), "--rounds", "5", "--synchronous", "normal"]))
    costs = {row["path"]: row for row in compared["results"]}
    old = f"cpu_us {compared['compare']}"
    for path, target in (("replied", 100), ("bad signature", 30)):
        row = costs[path]
        goal(f"in process at normal, {path} <= {target} us CPU", f"{row['cpu_us now']} us (the module of"
             f" {compared['compare']}: {row[old]} us, same run)", row["cpu_us now"] <= target)
    replied = costs["replied"]["cpu_us now"]
    if peers:
        fastify, fastify_full = peers["fastify"], peers["fastify-full"]
        for name, figures in sorted(peers.items()):
            if name.startswith("ours"):
                print(f"  {name}: {figures['rps']:,.0f} req/s, {figures['cpu']:.0f} us CPU per message",
                      file=sys.stderr, flush=True)
        normal = min((figures for name, figures in peers.items() if name.startswith("ours") and "normal" in name),
                     key=lambda figures: figures["cpu"])
        full = max((figures for name, figures in peers.items() if name.startswith("ours") and "full" in name),
                   key=lambda figures: figures["rps"])
        goal(f"server CPU per message at normal ({normal['name']}) <= 2x Fastify's at normal",
             f"{normal['cpu']:.0f} vs {fastify['cpu']:.0f} us = {normal['cpu'] / fastify['cpu']:.2f}x"
             f" ({normal['cpu'] / replied:.2f}x in process)", normal["cpu"] <= 2 * fastify["cpu"])
        goal(f"throughput at full ({full['name']}) >= 2x Fastify's at full",
             f"{full['rps']:,.0f} vs {fastify_full['rps']:,.0f} req/s = {full['rps'] / fastify_full['rps']:.2f}x"
             f" (Fastify at normal {fastify['rps']:,.0f}, Flask {peers['flask']['rps']:,.0f})",
             full["rps"] >= 2 * fastify_full["rps"])
    else:
        goal("the recommended host beside Fastify", f"not measured: no peers in {PEERS}", False)
    growth = run_growth(parse_args(["growth", "--messages", "3000", "--rounds", "5", "--sizes", args.sizes,
                                    "--growth-backends", args.growth_backends]))
    grown = {row["path"]: row for row in growth["results"]}

    def growth_figure(backend, size):
        row, empty = grown[f"{backend}, {size} stored"], grown[f"{backend}, 0 stored"]
        return f"{row['vs_empty']}x ({row['cpu_us']} vs {empty['cpu_us']} us)", row["vs_empty"]

    if "sqlite, 1,000,000 stored" in grown:
        figure, ratio = growth_figure("sqlite", "1,000,000")
        goal("CPU per webhook, 1,000,000 stored vs empty (SQLite) <= 1.10x", figure, ratio <= 1.10)
    if "sqlite, 10,000,000 stored" in grown:
        figure, ratio = growth_figure("sqlite", "10,000,000")
        goal("... 10,000,000 stored vs empty (SQLite) <= 1.25x", figure, ratio <= 1.25)
    if "postgresql, 1,000,000 stored" in grown:
        goal("... 1,000,000 stored vs empty (PostgreSQL), reported", growth_figure("postgresql", "1,000,000")[0],
             True)
    if postgres_bin():
        trips = postgres_round_trips()
        goal("PostgreSQL round trips per replied message <= 2", f"{trips:g}", trips <= 2)
    rules = {row["path"]: row["cpu_us"] for row in run_rules(parse_args(["rules", "--messages", "500",
                                                                         "--rounds", "1"]))["results"]}
    worst = max(rules["matching alone: none matches"], rules["matching alone: the last matches"])
    goal("a 50-rule file adds <= 5 us per message", f"{worst} us", worst <= 5)
    segments = rules["matching alone: segments= (not cached)"]
    goal("segments= in the log line <= 1 us", f"{segments} us", segments <= 1)
    goal("RSS per worker and import time, next to the bare app", import_and_memory(), True)
    return {"mode": "goals", "results": goals}


#: Our hosts beside the peers: uwsgi, one process, at each durability with 16 and with 4 threads.
PEER_HOSTS = [(f"ours-uwsgi-{durability}-t{threads}", durability, threads)
              for durability in ("full", "normal") for threads in (16, 4)]


def run_peers(args):
    """The peers' bench (../shared/peers) with our hosts added (PEER_HOSTS), in one run; medians by target."""
    if not (PEERS / "bench.sh").exists() or not (PEERS / ".venv").exists():
        return None
    folder = tempfile.mkdtemp()
    here = Path(__file__).resolve().parent
    # our own virtual environment's uwsgi (requirements-bench.txt pins the peers' version): it has our
    # dependencies; without one, the peers' uwsgi (the same version) with our packages first on the path
    uwsgi = Path(sys.executable).parent / "uwsgi"
    if not uwsgi.exists():
        uwsgi = f"PYTHONPATH={sysconfig.get_paths()['purelib']} {PEERS / '.venv' / 'bin' / 'uwsgi'}"
    ours = []
    for port, (name, durability, threads) in enumerate(PEER_HOSTS, start=8132):
        host = (f"{uwsgi} --http11-socket 127.0.0.1:$PORT --module sms_responder:application --master"
                f" --processes 1 --threads {threads} --disable-logging")
        ours += ["-a", f"{name} {port} {here} SQLITE_SYNCHRONOUS={durability} {host}"]
    subprocess.run(["bash", str(PEERS / "bench.sh"), "-r", str(args.peer_rounds), "-R", str(args.peer_retries),
                    "-d", str(args.seconds), "-n", "-o", folder,
                    *ours, "fastify", "fastify-full", "flask"], check=True, stdout=sys.stderr)
    print(f"  peers' runs: {Path(folder) / 'runs.tsv'}", file=sys.stderr, flush=True)
    runs = {}
    with open(Path(folder) / "runs.tsv") as table:
        for row in csv.DictReader(table, delimiter="\t"):
            runs.setdefault(row["name"], []).append(row)
    return {name: {"name": name, "rps": statistics.median(float(row["rps"]) for row in rows),
                   "cpu": statistics.median(float(row["server_cpu_us_per_req"]) for row in rows)}
            for name, rows in runs.items()}


def postgres_round_trips(messages=50):
    """Round trips per replied webhook on PostgreSQL: the Sync messages a protocol trace shows."""
    import psycopg
    server = PostgresServer(postgres_bin(), durable=False).initialise().start()
    try:
        app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER,
                                       database_url=server.url(), reply_limit=1_000_000)
        quiet_logging(app)
        app.store.ping()
        with tempfile.TemporaryFile() as trace:
            pool = app.store._open_pool()
            lend = pool.getconn

            def traced(*lend_args, **lend_kwargs):
                connection = lend(*lend_args, **lend_kwargs)
                connection.pgconn.trace(trace.fileno())
                return connection
            pool.getconn = traced
            for i in range(messages):
                b"".join(app(environ_for(*signed_request(webhook_form(f"1415{i:07d}", "hello"))),
                             lambda status, headers, exc_info=None: None))
            app.close()
            trace.seek(0)
            lines = trace.read().decode("utf-8", "replace").splitlines()
        assert psycopg
        return sum(1 for line in lines if "\tF\t" in line and ("\tSync" in line or "\tQuery\t" in line)) / messages
    finally:
        server.stop()
        server.remove()


def import_and_memory():
    """Import time and RSS of a process that imports the module, and of one that imports nothing."""
    def measure(code):
        # VmRSS, not ru_maxrss: after fork and exec, Linux reports the parent's peak in the latter
        result = subprocess.run([sys.executable, "-c", "import time; started = time.perf_counter(); "
                                 f"{code}; print(time.perf_counter() - started, [line.split()[1] for line in"
                                 " open('/proc/self/status') if line.startswith('VmRSS')][0])"],
                                capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
        seconds, kilobytes = result.stdout.split()
        return float(seconds) * 1000, int(kilobytes) / 1024
    runs = {name: sorted(measure(code) for _ in range(5))[2] for name, code in (
        ("nothing", "pass"), ("plivo", "import plivo"), ("sms_responder", "import sms_responder"))}
    return (f"import sms_responder {runs['sms_responder'][0]:.0f} ms, {runs['sms_responder'][1]:.1f} MB; "
            f"of which plivo {runs['plivo'][0]:.0f} ms, {runs['plivo'][1] - runs['nothing'][1]:.1f} MB; "
            f"a bare interpreter {runs['nothing'][1]:.1f} MB")


# -- Output ---------------------------------------------------------------------

def print_table(report):
    rows = report["results"]
    columns = list(dict.fromkeys(key for row in rows for key in row if key != "path"))  # rows may differ
    title = ", ".join(f"{key}={value}" for key, value in report.items() if key != "results")
    print(title)
    widths = [max(len(column), 8, *(len(str(row.get(column, ""))) for row in rows)) + 2 for column in columns]
    first = max(22, *(len(row["path"]) + 2 for row in rows))
    print(f"{'path':<{first}}" + "".join(f"{column:>{width}}" for column, width in zip(columns, widths, strict=True)))
    for row in rows:
        print(f"{row['path']:<{first}}" + "".join(f"{row.get(column, ''):>{width}}" for column, width in
                                                zip(columns, widths, strict=True)))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["inprocess", "profile", "outbox", "rules", "operations", "inbox", "growth", "http",
                                         "matrix", "goals"])
    parser.add_argument("--messages", type=int, default=None,
                        help="messages per path and round; http: pre-signed requests, enough for --seconds"
                             " (default: 2000; http: 120000)")
    parser.add_argument("--seconds", type=int, default=8, help="http: how long wrk loads the service"
                                                                " (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is shown (default: %(default)s)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="normal",
                        help="SQLITE_SYNCHRONOUS (default: %(default)s)")
    parser.add_argument("--reply-mode", choices=["xml", "api"], default="xml", help="REPLY_MODE (default: %(default)s)")
    parser.add_argument("--host", choices=["stdlib", "gunicorn-sync", "gunicorn-gthread", "uwsgi", "granian"],
                        default="gunicorn-sync", help="http: the WSGI host (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="http: worker processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=16, help="http: threads per worker where the host has them"
                                                                " (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=16,
                        help="http: concurrent connections (default: %(default)s)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                        help="http: the database (default: %(default)s)")
    parser.add_argument("--app", choices=["sms_responder", "bare"], default="sms_responder",
                        help="http: the service, or a fixed-answer app for the host's ceiling (default: %(default)s)")
    parser.add_argument("--no-pin", action="store_true", help="http: do not pin server and load to separate CPUs")
    parser.add_argument("--sizes", default="0,1000000,10000000",
                        help="growth: stored messages to measure at, comma-separated (default: %(default)s)")
    parser.add_argument("--peer-rounds", type=int, default=3, help="goals: the peers' rounds (default: %(default)s)")
    parser.add_argument("--peer-retries", type=int, default=2,
                        help="goals: reruns of a peers' run disturbed by other processes (default: %(default)s)")
    parser.add_argument("--growth-backends", default="sqlite,postgresql",
                        help="growth, goals: the databases to grow, comma-separated (default: %(default)s)")
    parser.add_argument("--folder", default=None, help="growth: where the large databases go (default: the temp dir)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument("--compare", metavar="REF", help="inprocess: also measure the module of git REF (e.g. main),"
                                                         " rounds alternated, and print both side by side")
    args = parser.parse_args(argv)
    if args.messages is None:
        args.messages = {"http": 120_000, "matrix": 120_000, "operations": 1_000_000, "inbox": 1_000_000}.get(
            args.mode, 2000)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    run = run_compare if args.mode == "inprocess" and args.compare else {
        "inprocess": run_inprocess, "profile": run_profile, "outbox": run_outbox, "rules": run_rules, "operations": run_operations,
        "inbox": run_inbox, "growth": run_growth, "http": run_http, "matrix": run_matrix, "goals": run_goals}[args.mode]
    report = run(args)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmarks for sms_responder: figures printed, never asserted.

    python bench_sms_responder.py inprocess   # cost per webhook, by path, calling the WSGI app directly
    python bench_sms_responder.py outbox      # sends per second of one outbox worker against a fake Plivo API

Every run uses a fresh SQLite file in a temporary folder and SDK-signed requests.
`--json FILE` writes the figures as JSON too. See README, "Performance".
"""

import argparse
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from plivo.utils.signature_v3 import construct_post_url, get_signature_v3

import sms_responder
from fake_plivo_api import FakePlivoAPI

TOKEN = "bench-auth-token"
OUR_NUMBER = "14155550100"
AUTH_ID = "MABENCHAUTHID0000001"
URL = f"http://bench.example{sms_responder.WEBHOOK_PATH}"


# -- Requests ---------------------------------------------------------------------

def webhook_form(sender, text, message_uuid=None):
    return {"From": sender, "To": OUR_NUMBER, "Text": text, "Type": "sms",
            "MessageUUID": message_uuid or str(uuid.uuid4()), "Units": "1", "TotalRate": "0.00000",
            "TotalAmount": "0.00000", "MessageIntent": "", "PowerpackUUID": ""}


def signed_request(form, token=TOKEN):
    """(body, headers) of a V3-signed webhook, signed with the SDK as Plivo signs."""
    nonce = str(uuid.uuid4().int)[:20]
    signature = get_signature_v3(token.encode(), construct_post_url(URL, dict(form)).decode(), nonce).decode()
    body = "&".join(f"{k}={sms_responder.urllib.parse.quote_plus(v)}" for k, v in form.items()).encode()
    return body, {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce,
                  "Content-Type": sms_responder.FORM_CONTENT_TYPE}


def environ_for(body, headers):
    """The WSGI environ a server would build for this request."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": sms_responder.WEBHOOK_PATH, "SCRIPT_NAME": "",
               "QUERY_STRING": "", "SERVER_NAME": "bench.example", "SERVER_PORT": "80", "HTTP_HOST": "bench.example",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": headers.pop("Content-Type")}
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return environ


def path_requests(count):
    """Signed requests for each path the in-process benchmark measures, in the order they must run."""
    senders = [f"1415{i:07d}" for i in range(count)]
    replied = [webhook_form(sender, "hello") for sender in senders]
    stop_senders = [f"1416{i:07d}" for i in range(count)]
    return {
        "replied": [signed_request(form) for form in replied],
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
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            app = sms_responder.create_app({}, plivo_auth_token=TOKEN, plivo_number=OUR_NUMBER,
                                           database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
                                           sqlite_synchronous=args.synchronous, reply_mode=args.reply_mode,
                                           reply_limit=1_000_000)
            quiet_logging(app)
            app.store.ping()
            for path, requests in path_requests(args.messages).items():
                environs = [environ_for(body, dict(headers)) for body, headers in requests]
                statuses = []
                start_response = lambda status, headers, exc_info=None, seen=statuses: seen.append(status)  # noqa: E731
                wall, cpu = time.perf_counter(), time.process_time()
                for environ in environs:
                    b"".join(app(environ, start_response))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                expected = "403 Forbidden" if path == "bad signature" else "200 OK"
                assert statuses == [expected] * len(environs), f"{path}: {set(statuses)}"
                rounds.setdefault(path, []).append((wall / len(environs) * 1e6, cpu / len(environs) * 1e6))
            app.store.close()
    rows = [{"path": path, "wall_us": round(statistics.median(w for w, _ in samples), 1),
             "cpu_us": round(statistics.median(c for _, c in samples), 1)} for path, samples in rounds.items()]
    return {"mode": "inprocess", "messages": args.messages, "rounds": args.rounds, "synchronous": args.synchronous,
            "reply_mode": args.reply_mode, "results": rows}


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


# -- Output ---------------------------------------------------------------------

def print_table(report):
    rows = report["results"]
    columns = [key for key in rows[0] if key != "path"]
    title = ", ".join(f"{key}={value}" for key, value in report.items() if key != "results")
    print(title)
    print(f"{'path':<22}" + "".join(f"{column:>12}" for column in columns))
    for row in rows:
        print(f"{row['path']:<22}" + "".join(f"{row[column]:>12}" for column in columns))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["inprocess", "outbox"])
    parser.add_argument("--messages", type=int, default=2000, help="messages per path and round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is shown (default: %(default)s)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="normal",
                        help="SQLITE_SYNCHRONOUS (default: %(default)s)")
    parser.add_argument("--reply-mode", choices=["xml", "api"], default="xml", help="REPLY_MODE (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    report = {"inprocess": run_inprocess, "outbox": run_outbox}[args.mode](args)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""sms_responder: a two-way SMS service for Plivo; this module is its core, and runs alone.

Plivo POSTs every inbound SMS to /webhooks/plivo/messaging. The core checks Plivo's signature,
stores the message exactly once (SQLite, or PostgreSQL for several hosts), honours STOP/START/HELP
and opt-outs as people write them, limits automatic replies per sender, answers by reply rules or a
reply function, forwards to a person and relays their answers, and sends in Plivo XML, or through
the Plivo REST API from an outbox (REPLY_MODE=api). It needs the standard library and plivo only.

    python sms_responder.py                 # threaded stdlib server on HOST:PORT
    python sms_responder.py worker          # send the outbox: replies (REPLY_MODE=api), texts sent first
    python sms_responder.py send "hello"    # play Plivo against the running service
    python sms_responder.py try HOURS       # what would be answered now, without storing anything
    python sms_responder.py purge --days 90 # erase old personal data (RETENTION_DAYS does it hourly)
    gunicorn sms_responder:application      # or any other WSGI host

Settings come from the environment and a .env file, reply rules from RULES_FILE; see README.md.

The sections, in order; each owns its logic and its SQL statements (storage runs them):

    Constants             paths, limits and timings; phone numbers compared as digits
    Settings              one field per environment variable, parsed and checked at start
    Logging               text or JSON lines and the outcomes they name; numbers masked, controls escaped
    Schema                every table (the surfaces' too), and how each version migrates to the next
    Storage               SQLite and PostgreSQL: connections, transactions, group commit, the dialects
    HTTP plumbing         answers and errors, body limits (a plain Content-Length), the URL's headers,
                          forms and JSON, bearer tokens
    Signature             Plivo's V3 and V2 signatures, checked as the SDK builds them
    Messages              an inbound message, what the database says of it, outcomes, reply text,
                          segments, XML
    Keywords and consent  step 7's families, and opt-outs as people write them (OPT_OUT_MATCH)
    Reply rules           RULES_FILE: parsed and checked, reloaded, the first match, their reads
    A person in the loop  FORWARD_TO: forwards to the owners and relays their answers, their reads
    Deciding              what a new message gets: the Decider (the webhook and `try` use it)
    Application           the WSGI app: routes, the headers every answer carries, the webhooks' steps
                          in order and their statements, create_app
    Surfaces              the package beside the core, asked for its routes and commands
    Outbox                sending through the Plivo REST API: the worker (and the texts a surface makes
                          as it sends: a verification code), delivery reports, its statements
    Retention             purge, at start and hourly with RETENTION_DAYS
    Server and command line   the threaded stdlib server, the verbs, main()

The surfaces live in the package sms_responder_surfaces beside this module (its docstring is their
map): api (/api/messages, `text`, `tokens`), verification (/api/verifications), inbox (/inbox, `users`;
with its modules people, for logins and sessions, and team, for what the team sees and keeps of
conversations), operating (`messages`, `stats`, `opt-outs`), metrics (/metrics). Without it the core
serves the webhook, and their routes answer 404. Their tables are the core's (Schema); the inbox's
conversations and index of words are kept by the database on PostgreSQL, and by the inbox itself on SQLite.

A new feature is a section of its own, placed where its data flows, entered from one call site.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import dataclasses
import enum
import fcntl
import functools
import hashlib
import hmac
import http.client
import importlib
import ipaddress
import json
import logging
import math
import os
import random
import re
import secrets
import signal
import socket
import socketserver
import sqlite3
import string
import sys
import threading
import time
import tomllib
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zoneinfo
from base64 import b64encode
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, tzinfo
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from plivo.utils.signature_v3 import construct_get_url

__all__ = ["create_app", "application", "main", "InboundMessage", "OutboxWorker"]


# -- Constants ----------------------------------------------------------------

WEBHOOK_PATH = "/webhooks/plivo/messaging"
STATUS_PATH = "/webhooks/plivo/status"
HEALTH_PATH = "/health"
API_PREFIX = "/api/"
#: Answers under these paths hold people's conversations: never kept by a cache, and HTTPS-only behind https.
PRIVATE_PREFIXES = (API_PREFIX, "/inbox")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
XML_CONTENT_TYPE = "application/xml; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
#: Plivo's hard limit for one message; longer replies are cut.
MAX_REPLY_CHARS = 1600
EMPTY_RESPONSE = b"<Response></Response>"
#: The token .env.example ships with: start-up warns while it is in use.
PLACEHOLDER_AUTH_TOKEN = "replace-with-your-plivo-auth-token"
SQLITE_BUSY_TIMEOUT = 5.0  # seconds; Plivo gives a webhook 8 s in all
# A large database: index pages are read through the OS page cache, shared by every connection and
# process, instead of copied into each connection's 2 MB cache; and the WAL is copied back every
# 10,000 pages instead of 1,000, so a page written by many commits is copied once (bench: growth).
SQLITE_MMAP_SIZE = 2**31 - 2**16  # bytes; SQLite's usual upper limit
SQLITE_CHECKPOINT_PAGES = 10_000  # 40 MB of WAL at 4 KB pages
#: SQLite result codes that mean "the database cannot be used now", not "this code is wrong":
#: BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB (https://sqlite.org/rescode.html).
SQLITE_UNAVAILABLE = frozenset({5, 6, 8, 10, 11, 13, 14, 26})
POSTGRES_POOL_SIZE = 10  # connections per process at most
POSTGRES_WAIT = 3.0      # seconds to wait for a connection: a down database answers 503/500 within 5 s
CLIENT_TIMEOUT = 30  # seconds a client of the stdlib server may take to send its request
# The outbox (REPLY_MODE=api); see README "Slow replies".
OUTBOX_POLL = 0.5    # seconds between looks for due rows: a queued row goes out within 2 s
OUTBOX_LEASE = 30.0  # seconds a claimed row stays with its worker; then another may claim it
API_TIMEOUT = 10.0   # seconds per Plivo REST API call (less than the lease, so a live claim never expires mid-call)
MAX_BACKOFF = 60.0   # seconds; retries wait 1, 2, 4, ... up to this, with jitter
log = logging.getLogger("sms_responder")
access_log = logging.getLogger("sms_responder.access")
_NUMBER_NOISE = re.compile(r"[\s().-]")


def number_key(number: str) -> str:
    """A phone number for comparing: '+1 415-555-0100' and '14155550100' are the same."""
    if number.isdigit():  # as Plivo writes numbers: nothing to take out
        return number
    return _NUMBER_NOISE.sub("", number).removeprefix("+")


def number_forms(number: str) -> tuple[str, str]:
    """A number as Plivo writes it and in E.164 with '+', for matching stored numbers either way."""
    key = number_key(number)
    return key, "+" + key


# -- Settings -----------------------------------------------------------------

class ConfigError(Exception):
    """One or more settings are missing or invalid; each problem names its setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" and at most {maximum}"
            raise ValueError(f"must be at least {minimum}{upper}")
        return value
    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError(f"{raw!r} is not one of {', '.join(options)}")
        return raw.lower()
    return parse


def _boolean(raw: str) -> bool:
    words = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}
    if raw.lower() not in words:
        raise ValueError(f"{raw!r} is not true or false")
    return words[raw.lower()]


def _phone_numbers(raw: str) -> tuple[str, ...]:
    numbers = tuple(number_key(part) for part in raw.split(",") if part.strip())
    for number in numbers:
        if not number.isdigit():
            raise ValueError(f"{number!r} is not a phone number (digits, optional + and spaces)")
    if not numbers:
        raise ValueError("no phone number given")
    return numbers


def _signature_versions(raw: str) -> frozenset[str]:
    versions = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    if not versions or not versions <= {"v3", "v2"}:
        raise ValueError(f"{raw!r} is not a comma-separated list of v3 and v2")
    return versions


def _base_url(raw: str) -> str:
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{raw!r} is not a base URL like https://example.com")
    return raw.rstrip("/")


def sqlite_path(database_url: str) -> str:
    """The file path in sqlite:///relative.db, sqlite:////absolute.db or a bare path."""
    if database_url.startswith("sqlite:///"):
        return database_url.removeprefix("sqlite:///")
    if database_url.startswith("sqlite:"):
        return ""
    return database_url


def _database_url(raw: str) -> str:
    if raw.startswith(("postgresql://", "postgres://")):
        if not urllib.parse.urlsplit(raw).hostname:
            raise ValueError("expected postgresql://user:password@host:5432/dbname")
        try:
            importlib.import_module("psycopg_pool")  # only PostgreSQL users install it
        except ImportError:
            raise ValueError("PostgreSQL needs psycopg: pip install -r requirements-postgres.txt") from None
        return raw
    path = sqlite_path(raw)
    if not path or path == ":memory:" or path.startswith("file:"):
        raise ValueError("expected sqlite:///relative/path.db, sqlite:////absolute/path.db or a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"folder {folder} does not exist")
    return raw


def _reply_template(raw: str) -> str:
    names = {name for _, name, _, _ in string.Formatter().parse(raw) if name is not None}
    unknown = sorted(names - {"text", "from", "to"})
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {{text}}, {{from}} or {{to}}")
    raw.format_map({"text": "", "from": "", "to": ""})  # a bad format spec fails here, not per message
    return raw


def _verify_template(raw: str) -> str:
    names = {name for _, name, _, _ in string.Formatter().parse(raw) if name is not None}
    unknown = sorted(names - {"code", "minutes"})
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {{code}} and {{minutes}}")
    if "code" not in names:
        raise ValueError("has no {code}: the text must carry the code")
    longest = raw.format_map({"code": "0" * 10, "minutes": 1440})  # a bad format spec fails here, not per code
    if len(longest) > MAX_REPLY_CHARS:
        raise ValueError(f"longer than {MAX_REPLY_CHARS} characters with a code in it")
    return raw


def _calling_codes(raw: str) -> tuple[str, ...]:
    if raw.strip() == "*":
        return ("*",)
    codes = tuple(number_key(part) for part in raw.split(",") if part.strip())
    for code in codes:
        if not (code.isascii() and code.isdigit() and len(code) <= 3):
            raise ValueError(f"{code!r} is not a country calling code (1 to 3 digits, e.g. 1 or 44), nor *")
    if not codes:
        raise ValueError("no calling code given; * allows every country")
    return codes


def _log_level(raw: str) -> str:
    if raw.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"{raw!r} is not DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return raw.upper()


def setting(default: object = dataclasses.MISSING, parse: Callable[[str], object] = str, *,
            hint: str = "", secret: bool = False):
    """A Settings field read from the environment variable of the same name, upper-cased."""
    return dataclasses.field(default=default, repr=not secret, metadata={"parse": parse, "hint": hint})


DEFAULT_HELP_TEXT = ("This number sends automated replies. Reply STOP to unsubscribe, START to resubscribe. "
                     "Msg&data rates may apply.")
DEFAULT_STOP_TEXT = ("You have been unsubscribed and will not receive any more messages from this number. "
                     "Reply START to resubscribe.")
DEFAULT_START_TEXT = "You have been resubscribed and will receive messages from this number. Reply STOP to unsubscribe."
DEFAULT_CONSENT_CHECK_TEXT = "Do you want to stop getting texts from this number? Reply STOP to stop them."
DEFAULT_VERIFY_TEXT = "Your verification code is {code}. It expires in {minutes} minutes. Do not share it."


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings: one field per environment variable, in the README's order."""

    plivo_auth_token: str = setting(hint="the Auth Token from the Plivo console", secret=True)
    plivo_number: tuple[str, ...] = setting(
        parse=_phone_numbers, hint="the Plivo number(s) this service answers for, e.g. 14155550100")
    plivo_auth_id: str = setting("")
    host: str = setting("127.0.0.1")
    port: int = setting(3000, _integer(0, 65535))
    database_url: str = setting("sqlite:///sms_responder.db", _database_url)
    sqlite_synchronous: str = setting("full", _choice("full", "normal"))
    public_url: str = setting("", _base_url)
    validate_signature: bool = setting(True, _boolean)
    signature_versions: frozenset[str] = setting(frozenset({"v3", "v2"}), _signature_versions)
    reply_text: str = setting("You said: {text}", _reply_template)
    help_text: str = setting(DEFAULT_HELP_TEXT)
    stop_text: str = setting(DEFAULT_STOP_TEXT)
    start_text: str = setting(DEFAULT_START_TEXT)
    opt_out_match: str = setting("phrases", _choice("phrases", "exact"))
    consent_check_text: str = setting(DEFAULT_CONSENT_CHECK_TEXT, _reply_template)
    reply_limit: int = setting(10, _integer(0))
    reply_window: int = setting(60, _integer(1))
    max_body_bytes: int = setting(65536, _integer(1))
    log_level: str = setting("INFO", _log_level)
    log_format: str = setting("text", _choice("text", "json"))
    reply_mode: str = setting("xml", _choice("xml", "api"))
    plivo_api_url: str = setting("https://api.plivo.com", _base_url)
    send_max_attempts: int = setting(6, _integer(1))
    rules_file: str = setting("")
    retention_days: int = setting(0, _integer(0))
    forward_to: tuple[str, ...] = setting((), _phone_numbers)
    forward_text: str = setting("{from}: {text}", _reply_template)
    api_limit: int = setting(600, _integer(0))
    inbox_session_hours: int = setting(12, _integer(1))
    metrics_token: str = setting("", secret=True)
    verify_text: str = setting(DEFAULT_VERIFY_TEXT, _verify_template)
    verify_code_length: int = setting(6, _integer(4, 10))
    verify_ttl: int = setting(600, _integer(60, 86400))
    verify_max_checks: int = setting(5, _integer(1))
    verify_max_sends: int = setting(5, _integer(1))
    verify_countries: tuple[str, ...] = setting((), _calling_codes)  # (): the calling codes of PLIVO_NUMBER
    verify_prefix_limit: int = setting(10, _integer(0))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate every setting; raise ConfigError naming each bad one."""
        values: dict[str, object] = {}
        problems: list[str] = []
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            raw = environ.get(name, "").strip()
            if not raw:  # empty means "use the default", as in .env.example
                if field.default is dataclasses.MISSING:
                    problems.append(f"{name} is required: {field.metadata['hint']}")
                continue
            try:
                values[field.name] = field.metadata["parse"](raw)
            except ValueError as error:
                problems.append(f"{name}: {error}")
        both = sorted(set(values.get("forward_to", ())) & set(values.get("plivo_number", ())))
        if both:  # an owner who is also one of our numbers would have the service forward to itself
            problems.append(f"FORWARD_TO: {', '.join(both)} is also in PLIVO_NUMBER; forwards go to people, "
                            "not to our own numbers")
        if problems:
            raise ConfigError(problems)
        return cls(**values)


def read_dotenv(path: Path) -> dict[str, str]:
    """Read NAME=value lines from a .env file (none: empty); quotes around a value are removed."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    values = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        if not equals:
            raise ConfigError([f"{path}, line {number}: expected NAME=value"])
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[name.strip()] = value
    return values


def read_environment() -> dict[str, str]:
    """The settings environment: .env in the working directory, overridden by the real environment."""
    return {**read_dotenv(Path(".env")), **os.environ}


# -- Logging ------------------------------------------------------------------

# Control characters (C0 and C1) and Unicode's line and paragraph separators: readers break lines at
# some of them, so a value holding one could forge a line of its own.
_CONTROL_CHARS = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
                  for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}
_HAS_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}  # json.dumps leaves them as they are
_HAS_JSON_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r'[\s"=]')


class TextFormatter(logging.Formatter):
    """`time LEVEL message key=value ...`, with control characters escaped so input cannot forge lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.time_text(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record) + key_values(getattr(record, "fields", {}))
        return line.translate(_CONTROL_CHARS) if _HAS_CONTROL_CHARS.search(line) else line

    def line(self, created: float, level: int, message: str, fields: Mapping[str, object]) -> str:
        """What format() makes of a record of these (without exception or stack), for write_line."""
        line = f"{self.time_text(created)} {logging.getLevelName(level)} {message}{key_values(fields)}"
        return line.translate(_CONTROL_CHARS) if _HAS_CONTROL_CHARS.search(line) else line

    def time_text(self, created: float) -> str:
        # logging's own format (local time, milliseconds as LogRecord counts them), the date and time
        # text made once a second: it was most of a line's cost
        second = int(created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created)))
        return f"{self._second[1]},{int((created - second) * 1000):03d}"


def key_values(fields: Mapping[str, object]) -> str:
    """` key=value` for each field; a value that is empty or holds a space, a quote or `=` is JSON-quoted."""
    line = ""
    for key, value in fields.items():
        text = str(value)
        if not text or _NEEDS_QUOTES.search(text):
            text = json.dumps(text)
        line += f" {key}={text}"
    return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's fields, any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        traceback = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(record.created, record.levelno, record.getMessage(), getattr(record, "fields", {}),
                         record.name, traceback)

    def line(self, created: float, level: int, message: str, fields: Mapping[str, object],
             logger: str = "sms_responder", traceback: str | None = None) -> str:
        """What format() makes of a record of these, for write_line too."""
        entry = {"time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
                 "level": logging.getLevelName(level), "logger": logger, "message": message, **fields}
        if traceback:
            entry["traceback"] = traceback
        line = _JSON_LINE.encode(entry)
        # Only inside strings, where their escapes mean the same: the line stays one line for every reader.
        return line.translate(_JSON_LINE_BREAKS) if _HAS_JSON_LINE_BREAKS.search(line) else line


_JSON_LINE = json.JSONEncoder(ensure_ascii=False, default=str)  # json.dumps(entry, ensure_ascii=False, default=str)
_LINE_FORMATTERS = (TextFormatter, JsonFormatter)


def write_line(level: int, message: str, fields: Mapping[str, object]) -> None:
    """Log one line of this module's logger as logging would (LOG_LEVEL, LOG_FORMAT, the same handlers and
    text), but formatted and written straight to each handler's stream: the webhook's line, one per message.

    logging's own path (a LogRecord, findCaller, the handler's filters) was most of a line's cost and
    a sixth of a message's. A logger or handler this module did not set up the usual way (filters, a
    handler of another kind or formatter, propagation) gets the record through logging, unchanged."""
    if not log.isEnabledFor(level):
        return
    if log.propagate or log.filters or not log.handlers:
        log.log(level, message, extra={"fields": fields})
        return
    created = time.time()
    for handler in log.handlers:
        formatter = handler.formatter
        if (type(handler) is not logging.StreamHandler or type(formatter) not in _LINE_FORMATTERS
                or handler.filters or level < handler.level):
            if level >= handler.level:
                handler.handle(log.makeRecord(log.name, level, "", 0, message, (), None, extra={"fields": fields}))
            continue
        with handler.lock:
            try:
                handler.stream.write(formatter.line(created, level, message, fields) + handler.terminator)
                handler.stream.flush()
            except Exception:  # as StreamHandler.emit: a broken stream is reported, never raised
                handler.handleError(log.makeRecord(log.name, level, "", 0, message, (), None,
                                                   extra={"fields": fields}))


def configure_logging(level: str, fmt: str) -> None:
    """Send this module's log lines to stderr as text or JSON; calling it again replaces the handler."""
    handler = logging.StreamHandler()
    handler.set_name("sms_responder")
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # psycopg's pool reports failed reconnections as warnings (its INFO lines are one per checkout)
    levels = {log: level, logging.getLogger("psycopg"): max(logging.getLevelName(level), logging.WARNING)}
    for logger, logger_level in levels.items():
        for old in [h for h in logger.handlers if h.get_name() == "sms_responder"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logger_level)
        logger.propagate = False  # one line per event, even when the host has configured the root logger


class Outcome(enum.Enum):
    """What happened to a webhook: the first word of its log line and messages.outcome."""

    REPLIED = "replied"            # auto-reply sent
    HELPED = "helped"              # HELP_TEXT sent
    STOPPED = "stopped"            # opt-out recorded, STOP_TEXT sent
    STARTED = "started"            # opt-out removed, START_TEXT sent
    CONSENT_CHECK = "consent_check"  # may be an opt-out in other words: CONSENT_CHECK_TEXT asks (once a day)
    OPTED_OUT = "opted_out"        # the sender has opted out: stored, no reply
    RATE_LIMITED = "rate_limited"  # over REPLY_LIMIT: stored, no reply
    PLIVO_KEYWORD = "plivo_keyword"  # MessageIntent set: Plivo answered, we recorded the effect
    OWN_NUMBER = "own_number"      # sent by one of our numbers: no reply, or two responders loop
    RELAYED = "relayed"            # an owner's text, sent on to a customer
    NOT_RELAYED = "not_relayed"    # an owner's text with nobody to send it to: the owner is told why
    NO_REPLY = "no_reply"          # the reply text came out empty
    DUPLICATE = "duplicate"        # MessageUUID already stored: nothing stored, no reply
    REPORTED = "reported"          # a delivery report stored
    REJECTED = "rejected"          # a 4xx answer
    FAILED = "failed"              # a 500 answer


def mask_number(number: str) -> str:
    """The last four characters only: enough to correlate log lines, too few to identify a person."""
    return "***" + number[-4:] if len(number) > 4 else "***"


# -- Schema: the tables, and how each version migrates to the next ------------

# Both databases have the same tables. Each entry migrates version N to N+1 (SQLite keeps N in PRAGMA
# user_version, PostgreSQL in the schema_version table). {timestamp} and {real} are the column types;
# a statement that differs between the two is a {"sqlite": [...], "postgresql": [...]} entry.
MIGRATIONS = [
    [
        """CREATE TABLE messages (
            message_uuid TEXT PRIMARY KEY,
            from_number  TEXT NOT NULL,   -- as Plivo sent it
            to_number    TEXT NOT NULL,   -- our number, as Plivo sent it
            text         TEXT NOT NULL,   -- Text, or Body for MMS
            type         TEXT NOT NULL,   -- sms, mms, ...
            media_urls   TEXT NOT NULL,   -- JSON array
            received_at  {timestamp} NOT NULL,
            outcome      TEXT,            -- replied, helped, stopped, started, opted_out, rate_limited, ...
            reply        TEXT,            -- the reply sent, or NULL
            v2_nonce     TEXT UNIQUE      -- V2 signatures do not cover the body: a nonce serves one message
        )""",
        "CREATE INDEX messages_by_sender ON messages (from_number, received_at)",
        """CREATE TABLE opt_outs (
            number       TEXT NOT NULL,   -- the sender, as Plivo sent it
            to_number    TEXT NOT NULL,   -- our number that received the STOP, as Plivo sent it
            number_key   TEXT NOT NULL,   -- both numbers without + or spaces, so that
            to_key       TEXT NOT NULL,   -- +14155550100 and 14155550100 are one subscriber
            opted_out_at {timestamp} NOT NULL,
            PRIMARY KEY (number_key, to_key)
        )""",
    ],
    [
        """CREATE TABLE outbox (
            message_uuid       TEXT PRIMARY KEY,  -- the inbound message this answers
            status             TEXT NOT NULL,     -- queued, sending, sent, delivered, undelivered, failed, cancelled
            src                TEXT NOT NULL,     -- our number
            dst                TEXT NOT NULL,     -- the sender
            text               TEXT,              -- NULL until the worker has run the reply function
            attempts           INTEGER NOT NULL,
            next_attempt_at    {real} NOT NULL,   -- unix time: when a queued row is due, when a claim expires
            claim_token        TEXT,              -- the claiming worker's; its later updates must match
            plivo_message_uuid TEXT UNIQUE,
            error              TEXT,              -- our last error, or Plivo's ErrorCode
            queued_at          {timestamp} NOT NULL
        )""",
        "CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('queued', 'sending')",
        """CREATE TABLE delivery_reports (
            plivo_message_uuid TEXT NOT NULL,
            status             TEXT NOT NULL,     -- as Plivo reported it
            error_code         TEXT NOT NULL,     -- '' when Plivo gave none
            received_at        {timestamp} NOT NULL,
            v2_nonce           TEXT UNIQUE,
            PRIMARY KEY (plivo_message_uuid, status, error_code)
        )""",
    ],
    [
        # The reply limit counts only replies (replied, helped: confirmations are not limited), so that
        # a flooding sender's count touches at most REPLY_LIMIT rows, however many messages it sends.
        "DROP INDEX messages_by_sender",
        "CREATE INDEX messages_replies ON messages (from_number, received_at) WHERE outcome IN ('replied', 'helped')",
    ],
    [
        "ALTER TABLE messages ADD COLUMN rule TEXT",  # the reply rule that matched, NULL when none did
        # A sender's history, by outcome, then time: the reply limit seeks straight to the replies
        # (REPLY_LIMIT rows at most, however much a sender floods), once_per to the matched rules,
        # first_message and `messages --from` to the sender. One index entry per message.
        "DROP INDEX messages_replies",
        "CREATE INDEX messages_by_sender ON messages (from_number, outcome, received_at)",
    ],
    [
        # purge erases personal data, so those columns may be NULL. SQLite cannot drop NOT NULL: the
        # table is copied (https://sqlite.org/lang_altertable.html#otheralter) and its indexes remade.
        {"sqlite": [
            """CREATE TABLE messages_new (
                message_uuid TEXT PRIMARY KEY,
                from_number  TEXT,            -- as Plivo sent it; NULL once purged
                to_number    TEXT,            -- our number, as Plivo sent it; NULL once purged
                text         TEXT,            -- Text, or Body for MMS; NULL once purged
                type         TEXT NOT NULL,   -- sms, mms, ...
                media_urls   TEXT,            -- JSON array; NULL once purged
                received_at  TEXT NOT NULL,
                outcome      TEXT,            -- replied, helped, stopped, started, opted_out, rate_limited, ...
                reply        TEXT,            -- the reply sent, or NULL
                v2_nonce     TEXT,            -- V2 signatures do not cover the body: a nonce serves one message
                rule         TEXT             -- the reply rule that matched, NULL when none did
            )""",
            "INSERT INTO messages_new SELECT message_uuid, from_number, to_number, text, type, media_urls,"
            " received_at, outcome, reply, v2_nonce, rule FROM messages",
            "DROP TABLE messages",
            "ALTER TABLE messages_new RENAME TO messages",
            "CREATE INDEX messages_by_sender ON messages (from_number, outcome, received_at)",
        ], "postgresql": [
            "ALTER TABLE messages ALTER COLUMN from_number DROP NOT NULL, ALTER COLUMN to_number DROP NOT NULL,"
            " ALTER COLUMN text DROP NOT NULL, ALTER COLUMN media_urls DROP NOT NULL",
            "ALTER TABLE messages DROP CONSTRAINT messages_v2_nonce_key",
        ]},
        # Most messages carry no V2 nonce: only those that do take an entry (and a page write) here.
        "CREATE UNIQUE INDEX messages_v2_nonce ON messages (v2_nonce) WHERE v2_nonce IS NOT NULL",
        # The operating commands read windows of time; purge finds only what it has not erased yet.
        "CREATE INDEX messages_by_time ON messages (received_at)",
        "CREATE INDEX messages_to_purge ON messages (received_at) WHERE from_number IS NOT NULL",
        "CREATE INDEX opt_outs_by_time ON opt_outs (opted_out_at)",
        "CREATE INDEX delivery_reports_by_time ON delivery_reports (received_at)",
        "CREATE INDEX outbox_by_time ON outbox (queued_at)",
    ],
    [
        # A person in the loop (FORWARD_TO): whom a message was forwarded to, whom an owner's was relayed to.
        "ALTER TABLE messages ADD COLUMN forwarded_to TEXT",  # the owners, comma-separated; NULL when none
        "ALTER TABLE messages ADD COLUMN relayed_to TEXT",    # the customer an owner's text went to
        # The forward limit and an owner's last conversation read forwarded messages only.
        "CREATE INDEX messages_forwarded_by_sender ON messages (from_number, received_at)"
        " WHERE forwarded_to IS NOT NULL",
        "CREATE INDEX messages_forwarded_by_number ON messages (to_number, received_at)"
        " WHERE forwarded_to IS NOT NULL",
        # One inbound message may now queue several SMS (the reply, forwards): the outbox gets a key of its own.
        {"sqlite": [
            """CREATE TABLE outbox_new (
                id                 INTEGER PRIMARY KEY,
                message_uuid       TEXT NOT NULL,     -- the inbound message this answers
                kind               TEXT NOT NULL,     -- reply (to the sender, or an owner's relay), forward
                status             TEXT NOT NULL,     -- queued, sending, sent, delivered, undelivered, failed, cancelled
                src                TEXT NOT NULL,     -- our number
                dst                TEXT NOT NULL,     -- the sender, a customer or an owner
                text               TEXT,              -- NULL until the worker has run the reply function
                attempts           INTEGER NOT NULL,
                next_attempt_at    REAL NOT NULL,     -- unix time: when a queued row is due, when a claim expires
                claim_token        TEXT,              -- the claiming worker's; its later updates must match
                plivo_message_uuid TEXT UNIQUE,
                error              TEXT,              -- our last error, or Plivo's ErrorCode
                queued_at          TEXT NOT NULL
            )""",
            "INSERT INTO outbox_new (message_uuid, kind, status, src, dst, text, attempts, next_attempt_at,"
            " claim_token, plivo_message_uuid, error, queued_at) SELECT message_uuid, 'reply', status, src, dst, text,"
            " attempts, next_attempt_at, claim_token, plivo_message_uuid, error, queued_at FROM outbox"
            " ORDER BY queued_at",
            "DROP TABLE outbox",
            "ALTER TABLE outbox_new RENAME TO outbox",
            "CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('queued', 'sending')",
            "CREATE INDEX outbox_by_time ON outbox (queued_at)",
        ], "postgresql": [
            "ALTER TABLE outbox DROP CONSTRAINT outbox_pkey",
            "ALTER TABLE outbox ADD COLUMN id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'reply'",
        ]},
        "CREATE INDEX outbox_by_message ON outbox (message_uuid)",
    ],
    [
        # Speaking first: an outbox row may be an outbound message of its own (kind "outbound"), with no
        # inbound message; its numbers and text are erased by purge. Scheduled rows wait in the outbox too.
        {"sqlite": [
            """CREATE TABLE outbox_new (
                id                 INTEGER PRIMARY KEY,
                public_id          TEXT UNIQUE,       -- an outbound message's ID in the API; NULL for the others
                message_uuid       TEXT,              -- the inbound message this answers; NULL for outbound
                kind               TEXT NOT NULL,     -- reply (to the sender, or an owner's relay), forward, outbound
                status             TEXT NOT NULL,     -- scheduled, queued, sending, sent, delivered, undelivered,
                                                      -- failed, cancelled
                src                TEXT,              -- our number; NULL once purged
                dst                TEXT,              -- the sender, a customer or an owner; NULL once purged
                text               TEXT,              -- NULL until the worker has run the reply function
                media_urls         TEXT,              -- outbound MMS: a JSON array; NULL for a text
                attempts           INTEGER NOT NULL,
                next_attempt_at    REAL NOT NULL,     -- unix time: when a queued row is due, when a claim expires
                claim_token        TEXT,              -- the claiming worker's; its later updates must match
                plivo_message_uuid TEXT UNIQUE,
                error              TEXT,              -- our last error, or Plivo's ErrorCode
                queued_at          TEXT NOT NULL,     -- when it was queued (an outbound message's created_at)
                send_at            TEXT,              -- outbound: when it was asked to leave; NULL: at once
                sent_at            TEXT,              -- when Plivo accepted it
                sent_by            TEXT,              -- outbound: the API token's name, a person's, or "cli"
                sent_via           TEXT               -- outbound: api, cli or inbox
            )""",
            "INSERT INTO outbox_new (id, message_uuid, kind, status, src, dst, text, attempts, next_attempt_at,"
            " claim_token, plivo_message_uuid, error, queued_at) SELECT id, message_uuid, kind, status, src, dst, text,"
            " attempts, next_attempt_at, claim_token, plivo_message_uuid, error, queued_at FROM outbox",
            "DROP TABLE outbox",
            "ALTER TABLE outbox_new RENAME TO outbox",
            "CREATE INDEX outbox_by_time ON outbox (queued_at)",
            "CREATE INDEX outbox_by_message ON outbox (message_uuid)",
        ], "postgresql": [
            "ALTER TABLE outbox ALTER COLUMN message_uuid DROP NOT NULL, ALTER COLUMN src DROP NOT NULL,"
            " ALTER COLUMN dst DROP NOT NULL, ADD COLUMN public_id TEXT UNIQUE, ADD COLUMN media_urls TEXT,"
            " ADD COLUMN send_at TIMESTAMPTZ, ADD COLUMN sent_at TIMESTAMPTZ, ADD COLUMN sent_by TEXT,"
            " ADD COLUMN sent_via TEXT",
            "DROP INDEX outbox_due",
        ]},
        # A worker claims due rows: scheduled ones too, in send_at order (next_attempt_at).
        "CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('scheduled', 'queued', 'sending')",
        # A customer's conversation, and the outbound messages cancelled by their STOP.
        "CREATE INDEX outbox_outbound_by_dst ON outbox (dst, queued_at) WHERE kind = 'outbound'",
        # `messages` and purge: outbound messages by time, however many replies the outbox holds.
        "CREATE INDEX outbox_outbound_by_time ON outbox (queued_at) WHERE kind = 'outbound'",
        # API_LIMIT: one token's messages in the last hour.
        "CREATE INDEX outbox_by_token ON outbox (sent_by, queued_at) WHERE sent_via = 'api'",
        """CREATE TABLE api_tokens (
            name         TEXT PRIMARY KEY,
            digest       TEXT NOT NULL UNIQUE,  -- SHA-256 of the token, which is never stored
            created_at   {timestamp} NOT NULL,
            last_used_at {timestamp}
        )""",
        """CREATE TABLE api_requests (          -- Idempotency-Key: the first answer of a key, for 24 h
            token        TEXT NOT NULL,         -- the token's name
            key          TEXT NOT NULL,
            body_digest  TEXT NOT NULL,         -- SHA-256 of the request's JSON, keys sorted
            outbox_id    BIGINT NOT NULL,
            status       TEXT NOT NULL,         -- the status first answered: queued or scheduled
            created_at   {timestamp} NOT NULL,
            PRIMARY KEY (token, key)
        )""",
        "CREATE INDEX api_requests_by_time ON api_requests (created_at)",
    ],
    [
        # The team inbox: the people who may log in (a slow hash, never the password), their sessions
        # (the digest of the cookie's token), failed logins (counted here, so across hosts), and the
        # opt-outs and opt-ins a person made by hand.
        """CREATE TABLE users (
            name         TEXT PRIMARY KEY,
            password     TEXT NOT NULL,         -- Argon2id, as a PHC string
            created_at   {timestamp} NOT NULL
        )""",
        """CREATE TABLE sessions (
            digest       TEXT PRIMARY KEY,      -- SHA-256 of the cookie's token, which is never stored
            name         TEXT NOT NULL,         -- the person
            created_at   {timestamp} NOT NULL,  -- a session lasts 7 days at most ...
            seen_at      {timestamp} NOT NULL   -- ... and INBOX_SESSION_HOURS without a request
        )""",
        "CREATE INDEX sessions_by_name ON sessions (name)",
        "CREATE INDEX sessions_by_use ON sessions (seen_at)",
        """CREATE TABLE login_failures (
            name         TEXT NOT NULL,         -- as typed: names no one has count too
            failed_at    {timestamp} NOT NULL
        )""",
        "CREATE INDEX login_failures_by_name ON login_failures (name, failed_at)",
        """CREATE TABLE consent_changes (
            number       TEXT NOT NULL,         -- the customer, digits
            to_number    TEXT NOT NULL,         -- our number, digits
            change       TEXT NOT NULL,         -- "opted out" or "opted in"
            changed_by   TEXT NOT NULL,         -- the person
            changed_at   {timestamp} NOT NULL
        )""",
        "CREATE INDEX consent_changes_by_number ON consent_changes (number, to_number, changed_at)",
        # A customer's conversation shows the owners' relays to them (only relays take an entry).
        "CREATE INDEX messages_relayed ON messages (relayed_to, received_at) WHERE relayed_to IS NOT NULL",
    ],
    [
        # Hardening. A token's scopes (send, read, verify; comma-separated): the tokens made before scopes
        # existed keep what they could do. Every token made since names its scopes.
        "ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'send,read'",
        # Failed logins older than the lockout window are deleted at each login, whatever the name.
        "CREATE INDEX login_failures_by_time ON login_failures (failed_at)",
    ],
    [
        # Verification codes (README: Verify a phone number). The code itself is never stored: it is
        # re-made from the random seed with a key derived from PLIVO_AUTH_TOKEN, when the worker sends it
        # and when it is checked.
        """CREATE TABLE verifications (
            id           TEXT PRIMARY KEY,      -- the ID in the API (random)
            token        TEXT NOT NULL,         -- the API token's name that asked for it
            to_number    TEXT NOT NULL,         -- digits
            from_number  TEXT NOT NULL,         -- our number, digits
            prefix       TEXT NOT NULL,         -- the calling code and the next 3 digits (the prefix limit)
            seed         TEXT NOT NULL,         -- random; without the key it tells nothing of the code
            digits       INTEGER NOT NULL,      -- the code's length when it was made
            status       TEXT NOT NULL,         -- pending, approved, max_attempts, cancelled, expired (a
                                                -- pending one past expires_at is expired, written lazily)
            sends        INTEGER NOT NULL,      -- the first send and each resend
            checks_left  INTEGER NOT NULL,      -- wrong codes still allowed
            created_at   {timestamp} NOT NULL,
            expires_at   {timestamp} NOT NULL,
            approved_at  {timestamp}
        )""",
        # One pending verification per token, number and number of ours: a second request is a resend,
        # also when two race (the database refuses a second pending row).
        "CREATE UNIQUE INDEX verifications_pending ON verifications (token, to_number, from_number)"
        " WHERE status = 'pending'",
        # The prefix limit reads the verifications to one prefix not approved, over the last 13 hours.
        "CREATE INDEX verifications_unapproved_by_prefix ON verifications (prefix, created_at)"
        " WHERE status <> 'approved'",
        "CREATE INDEX verifications_by_time ON verifications (created_at)",  # purge
        # The outbox row of a verification's SMS holds the text with the code masked; text_source names
        # what makes the real text when the worker sends it ("verification:ID"); NULL: the text is sent as stored.
        "ALTER TABLE outbox ADD COLUMN text_source TEXT",
    ],
    [
        # The team divides the work (README: The inbox). One row per conversation (a customer and a number
        # of ours, as digits): its newest activity either way, its customer's newest message (what is
        # unread for a person came after their last look) and whom it is assigned to.
        """CREATE TABLE conversations (
            customer     TEXT NOT NULL,
            ours         TEXT NOT NULL,
            last_at      {timestamp} NOT NULL,  -- the newest message: the customer's, outbound, an owner's relay
            last_in_at   {timestamp},           -- the customer's newest message; NULL if they have sent none
            assignee     TEXT,                  -- the person it is assigned to; NULL: unassigned
            assigned_by  TEXT,
            assigned_at  {timestamp},
            PRIMARY KEY (customer, ours)
        )""",
        # Only assigned conversations take an entry: a new message changes no index of this table.
        "CREATE INDEX conversations_by_assignee ON conversations (assignee) WHERE assignee IS NOT NULL",
        """CREATE TABLE conversation_reads (     -- what each person has read: unread is what came after
            name         TEXT NOT NULL,
            customer     TEXT NOT NULL,
            ours         TEXT NOT NULL,
            read_at      {timestamp} NOT NULL,  -- the customer's newest message when the person last opened it
            PRIMARY KEY (name, customer, ours)
        )""",
        """CREATE TABLE assignments (            -- every change of assignee, for the conversation's timeline
            customer     TEXT NOT NULL,
            ours         TEXT NOT NULL,
            assignee     TEXT,                  -- NULL: unassigned
            assigned_by  TEXT NOT NULL,
            assigned_at  {timestamp} NOT NULL
        )""",
        "CREATE INDEX assignments_by_conversation ON assignments (customer, ours, assigned_at)",
        "CREATE INDEX assignments_by_time ON assignments (assigned_at)",
        """CREATE TABLE notes (                  -- the team's notes: shown in the inbox, never sent
            customer     TEXT NOT NULL,
            ours         TEXT NOT NULL,
            text         TEXT NOT NULL,
            written_by   TEXT NOT NULL,
            written_at   {timestamp} NOT NULL
        )""",
        "CREATE INDEX notes_by_conversation ON notes (customer, ours, written_at)",
        "CREATE INDEX notes_by_time ON notes (written_at)",
        {"sqlite": ["CREATE TABLE saved_replies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, text TEXT NOT NULL,"
                    " changed_by TEXT NOT NULL, changed_at TEXT NOT NULL)"],
         "postgresql": ["CREATE TABLE saved_replies (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT"
                        " NOT NULL UNIQUE, text TEXT NOT NULL, changed_by TEXT NOT NULL, changed_at TIMESTAMPTZ NOT NULL)"]},
        # The conversations so far (an owner's relay belongs to the customer it went to).
        "INSERT INTO conversations (customer, ours, last_at, last_in_at) SELECT customer, ours, max(at), max(in_at)"
        " FROM (SELECT coalesce(relayed_to, ltrim(from_number, '+')) AS customer, ltrim(to_number, '+') AS ours,"
        " received_at AS at, CASE WHEN relayed_to IS NULL THEN received_at END AS in_at FROM messages"
        " WHERE from_number IS NOT NULL UNION ALL SELECT dst, src, queued_at, NULL FROM outbox"
        " WHERE kind = 'outbound' AND dst IS NOT NULL) AS activity GROUP BY customer, ours",
        # Search by words: an index of the words of every message from a customer or an owner, and of every
        # outbound message; a purged (NULL) text leaves it. Existing messages are indexed here.
        {"sqlite": [
            # FTS5 tables that hold no text, only the index (rowid: the message's rowid, the outbox's id).
            # The webhook writes neither them nor conversations: FTS5 writes a segment per transaction, 45 us
            # a message at 1,000,000. The inbox brings both up to date before it reads them, from the rows
            # after indexed_to, in batches (README: The inbox, At scale); messages are never deleted, so
            # their rowids only grow.
            "CREATE VIRTUAL TABLE message_words USING fts5(text, content='', detail=none, columnsize=0,"
            " tokenize='unicode61 remove_diacritics 0')",
            "CREATE VIRTUAL TABLE outbound_words USING fts5(text, content='', detail=none, columnsize=0,"
            " tokenize='unicode61 remove_diacritics 0')",
            "INSERT INTO message_words (rowid, text) SELECT rowid, text FROM messages WHERE text IS NOT NULL",
            "INSERT INTO outbound_words (rowid, text) SELECT id, text FROM outbox WHERE kind = 'outbound'"
            " AND text IS NOT NULL",
            """CREATE TABLE inbox_index (            -- how far conversations and the words have read
                messages_to  INTEGER NOT NULL,      -- messages.rowid
                outbox_to    INTEGER NOT NULL       -- outbox.id
            )""",
            "INSERT INTO inbox_index SELECT (SELECT coalesce(max(rowid), 0) FROM messages),"
            " (SELECT coalesce(max(id), 0) FROM outbox)",
            # A text erased (purge) or a row deleted leaves the index, if it was in it.
            """CREATE TRIGGER message_words_erased AFTER UPDATE OF text ON messages
            WHEN OLD.text IS NOT NULL AND OLD.text IS NOT NEW.text
                AND OLD.rowid <= (SELECT messages_to FROM inbox_index) BEGIN
                INSERT INTO message_words (message_words, rowid, text) VALUES ('delete', OLD.rowid, OLD.text);
                INSERT INTO message_words (rowid, text) SELECT NEW.rowid, NEW.text WHERE NEW.text IS NOT NULL;
            END""",
            """CREATE TRIGGER message_words_deleted AFTER DELETE ON messages
            WHEN OLD.text IS NOT NULL AND OLD.rowid <= (SELECT messages_to FROM inbox_index) BEGIN
                INSERT INTO message_words (message_words, rowid, text) VALUES ('delete', OLD.rowid, OLD.text);
            END""",
            """CREATE TRIGGER outbound_words_erased AFTER UPDATE OF text ON outbox
            WHEN OLD.kind = 'outbound' AND OLD.text IS NOT NULL AND OLD.text IS NOT NEW.text
                AND OLD.id <= (SELECT outbox_to FROM inbox_index) BEGIN
                INSERT INTO outbound_words (outbound_words, rowid, text) VALUES ('delete', OLD.id, OLD.text);
                INSERT INTO outbound_words (rowid, text) SELECT NEW.id, NEW.text WHERE NEW.text IS NOT NULL;
            END""",
            """CREATE TRIGGER outbound_words_deleted AFTER DELETE ON outbox
            WHEN OLD.kind = 'outbound' AND OLD.text IS NOT NULL AND OLD.id <= (SELECT outbox_to FROM inbox_index)
            BEGIN
                INSERT INTO outbound_words (outbound_words, rowid, text) VALUES ('delete', OLD.id, OLD.text);
            END""",
            # purge deletes finished replies: a new row may then take an id already read past. It is read now.
            """CREATE TRIGGER outbound_behind AFTER INSERT ON outbox
            WHEN NEW.kind = 'outbound' AND NEW.id <= (SELECT outbox_to FROM inbox_index) BEGIN
                INSERT INTO outbound_words (rowid, text) SELECT NEW.id, NEW.text WHERE NEW.text IS NOT NULL;
                INSERT INTO conversations (customer, ours, last_at) VALUES (NEW.dst, NEW.src, NEW.queued_at)
                ON CONFLICT (customer, ours) DO UPDATE SET last_at = max(last_at, excluded.last_at);
            END""",
        ], "postgresql": [
            # GIN indexes of the words (to_tsvector 'simple': no stemming, no stop words) and triggers that keep
            # conversations: together 80 to 110 us of the database server's CPU a message, when each message
            # starts a new conversation (README: Performance).
            # IF NOT EXISTS: on a large database an operator may build them beforehand, CONCURRENTLY (README)
            "CREATE INDEX IF NOT EXISTS messages_words ON messages USING gin (to_tsvector('simple', text))",
            "CREATE INDEX IF NOT EXISTS outbox_words ON outbox USING gin (to_tsvector('simple', text))"
            " WHERE kind = 'outbound'",
            """CREATE FUNCTION conversation_of_message() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                INSERT INTO conversations AS c (customer, ours, last_at, last_in_at)
                VALUES (coalesce(NEW.relayed_to, ltrim(NEW.from_number, '+')), ltrim(NEW.to_number, '+'),
                        NEW.received_at, CASE WHEN NEW.relayed_to IS NULL THEN NEW.received_at END)
                ON CONFLICT (customer, ours) DO UPDATE SET last_at = greatest(c.last_at, excluded.last_at),
                    last_in_at = greatest(c.last_in_at, excluded.last_in_at);
                RETURN NULL;
            END $$""",
            "CREATE TRIGGER message_added AFTER INSERT ON messages FOR EACH ROW WHEN (NEW.from_number IS NOT NULL)"
            " EXECUTE FUNCTION conversation_of_message()",
            """CREATE FUNCTION conversation_of_outbound() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                INSERT INTO conversations AS c (customer, ours, last_at) VALUES (NEW.dst, NEW.src, NEW.queued_at)
                ON CONFLICT (customer, ours) DO UPDATE SET last_at = greatest(c.last_at, excluded.last_at);
                RETURN NULL;
            END $$""",
            "CREATE TRIGGER outbound_added AFTER INSERT ON outbox FOR EACH ROW WHEN (NEW.kind = 'outbound')"
            " EXECUTE FUNCTION conversation_of_outbound()",
        ]},
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
SQLITE_TYPES = {"dialect": "sqlite", "timestamp": "TEXT", "real": "REAL"}  # times as UTC ISO 8601 text
POSTGRES_TYPES = {"dialect": "postgresql", "timestamp": "TIMESTAMPTZ", "real": "DOUBLE PRECISION"}


def migrate(execute: Callable[[str], object], version: int, types: Mapping[str, str], database: str) -> None:
    """Bring a schema at `version` up to SCHEMA_VERSION; refuse one newer than this code knows."""
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(f"{database} has schema version {version}; "
                               f"this sms_responder knows up to {SCHEMA_VERSION}")
    for step in MIGRATIONS[version:]:
        for entry in step:
            for statement in [entry] if isinstance(entry, str) else entry[types["dialect"]]:
                execute(statement.format(**types))


# -- Storage: connections, transactions, group commit, the two dialects -------

class StoreUnavailable(Exception):
    """The database cannot be used right now: its file is gone or read-only, or it does not answer."""


class StoreMissing(StoreUnavailable):
    """The SQLite file a command was to read or change does not exist (it is never created for it)."""


def iso_time(timestamp: float) -> str:
    """UTC ISO 8601 with microseconds: sorts as text, reads well in the database.

    The same text as datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds"), with
    the date and time of the second made once (a webhook writes two times; isoformat is slow).
    """
    second = math.floor(timestamp)
    microseconds = round((timestamp - second) * 1_000_000)
    if microseconds == 1_000_000:
        second, microseconds = second + 1, 0
    return f"{_second_text(second)}.{microseconds:06d}+00:00"


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Transaction:
    """One database transaction: how a statement runs, and the opt-out list every feature consults.

    Storage owns how a statement runs (execute: SQLiteTransaction and PostgresTransaction
    say how each database runs one, stores time, locks rows, batches round trips) and the
    transactions themselves (SQLiteStore with GroupCommit, PostgresStore). The statements
    live in the section of the feature they serve (the webhook's in Application, the rules',
    the outbox's, a surface's in its module), as functions taking the transaction: written
    once with ? placeholders, next to the logic that needs them, run through this class.
    Only the opt-out list's are here: the webhook, the outbox and the surfaces all use them.
    """

    unique_violation: type[Exception]
    for_update = ""   # row locks: SQLite needs none, BEGIN IMMEDIATE serializes its writers
    skip_locked = ""
    like = "LIKE"     # case-insensitive matching (SQLite's LIKE is, for ASCII)
    scan = " NOT INDEXED"  # a table read whole, by design: one pass through it, not index by index

    def __init__(self, store: Store, connection: Any) -> None:
        self.store = store
        self.connection = connection

    def execute(self, sql: str, params: tuple = ()) -> Any:
        """Run one statement; the cursor (rowcount, fetchone, fetchall)."""
        raise NotImplementedError

    def execute_many(self, sql: str, rows: list[tuple]) -> int:
        """Run one statement for each row; the rows changed in all."""
        raise NotImplementedError

    def timestamp(self, unix_time: float) -> object:
        """A time as this database stores it."""
        raise NotImplementedError

    def moment(self, stored: Any) -> datetime:
        """A stored time as an aware datetime in UTC."""
        raise NotImplementedError

    def batch(self) -> contextlib.AbstractContextManager:
        """A block whose statements may travel to the database together (PostgreSQL's pipeline: one round
        trip, its BEGIN included); their results are read after it."""
        return _NO_BATCH

    def commit_early(self) -> None:
        """Nothing more will be written: a database that can commit in the same round trip as the last
        statement does (PostgreSQL, in a batch); SQLite's commit belongs to its group (GroupCommit)."""

    def opt_out(self, sender: str, recipient: str, when: float) -> bool:
        """Record an opt-out; False if the sender had already opted out."""
        cursor = self.execute(
            "INSERT INTO opt_outs (number, to_number, number_key, to_key, opted_out_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (sender, recipient, number_key(sender), number_key(recipient), self.timestamp(when)))
        return cursor.rowcount == 1

    def opt_in(self, sender: str, recipient: str) -> None:
        """Remove an opt-out, if there is one."""
        self.execute("DELETE FROM opt_outs WHERE number_key = ? AND to_key = ?",
                     (number_key(sender), number_key(recipient)))

    def opted_out_of(self, numbers: Iterable[str], recipient: str) -> set[str]:
        """Which of these numbers have opted out of this number of ours (as number keys)."""
        keys = [number_key(number) for number in numbers]
        return {row[0] for row in self.execute(
            f"SELECT number_key FROM opt_outs WHERE to_key = ? AND number_key IN ({', '.join('?' * len(keys))})",
            (number_key(recipient), *keys)).fetchall()}

    def lock(self, key: str) -> None:
        """Hold off other transactions that lock the same key until this one ends (SQLite's writers
        take turns anyway: BEGIN IMMEDIATE)."""


_NO_BATCH = contextlib.nullcontext()  # holds nothing: one serves every transaction


class SQLiteTransaction(Transaction):
    """Transaction on a SQLite connection."""

    unique_violation = sqlite3.IntegrityError

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        return self.connection.execute(sql, params)

    def timestamp(self, unix_time: float) -> str:
        return iso_time(unix_time)

    def moment(self, stored: str) -> datetime:
        return datetime.fromisoformat(stored)

    def execute_many(self, sql: str, rows: list[tuple]) -> int:
        return self.connection.executemany(sql, rows).rowcount


class _Job:
    """One thread's work for a shared transaction, and what came of it."""

    __slots__ = ("work", "result", "error", "finished", "wake")

    def __init__(self, work: Callable[[Transaction], Any]) -> None:
        self.work, self.result, self.error, self.finished = work, None, None, False
        self.wake = threading.Event()  # set when it is finished, or when it is to lead the next batch

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit:
    """Runs the work of many threads in shared transactions: one commit, one fsync, per batch.

    SQLite commits one transaction at a time, and at SQLITE_SYNCHRONOUS=full each commit waits
    for the disk. A thread whose work finds no batch being written writes it at once, alone (no
    queue, no savepoint: the bookkeeping is only for work that has to wait). A thread that finds a
    batch being written queues its work and waits; when the batch is done, the first waiting job
    leads the next one: it runs every queued job in one transaction, each in a savepoint so that a
    failing job undoes only its own work, commits, hands each job its result, and passes the lead
    on. Alone, a job is its own batch; under load, one fsync serves many messages.
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._leading = False

    def run(self, work: Callable[[Transaction], Any]) -> Any:
        """work(tx) inside a transaction shared with other threads' work; its result, or its exception."""
        with self._lock:
            leads, self._leading = not self._leading, True
            if not leads:
                job = _Job(work)
                self._queue.append(job)
        if leads:  # nothing is being written: no batch can form before this work is done
            try:
                with self.store.transaction() as tx:
                    return work(tx)
            finally:
                self._pass_lead()
        job.wake.wait()
        if not job.finished:  # woken to lead: this job is in the batch it writes
            self._write_batch()
        return job.outcome()

    def _write_batch(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            with self.store.transaction() as tx:
                for job in batch:
                    self._run_job(tx, job, isolated=len(batch) > 1)
        except Exception as error:  # the commit failed: nothing in the batch was stored
            for job in batch:
                job.result, job.error = None, error
        finally:
            with self._lock:
                for job in batch:
                    job.finished = True
                    job.wake.set()
            self._pass_lead()

    def _pass_lead(self) -> None:
        """The first job that waits leads the next batch; with none waiting, the next thread writes at once."""
        with self._lock:
            successor = self._queue[0] if self._queue else None
            self._leading = successor is not None
        if successor:
            successor.wake.set()

    @staticmethod
    def _run_job(tx: Transaction, job: _Job, isolated: bool) -> None:
        if not isolated:  # a batch of one: the transaction itself rolls back on failure
            try:
                job.result = job.work(tx)
            except Exception as error:
                job.error = error
                raise
            return
        tx.execute("SAVEPOINT job")
        try:
            job.result = job.work(tx)
        except Exception as error:
            job.error = error
            tx.execute("ROLLBACK TO job")
        tx.execute("RELEASE job")


class SQLiteWrite:
    """One write transaction on a SQLite store, as a context manager (SQLiteStore.transaction): the
    writers' turn and BEGIN IMMEDIATE on entering; COMMIT when the block ends, ROLLBACK if it raises;
    the connection back to the pool. A class rather than a generator: every webhook opens one, and
    contextlib's machinery cost as much as the rest of this."""

    __slots__ = ("store", "connection", "identity", "turn")

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __enter__(self) -> SQLiteTransaction:
        store = self.store
        self.connection, self.identity = store._acquire()
        try:
            self.turn = store._take_turn(self.identity)
            try:
                self.connection.execute("BEGIN IMMEDIATE")
            except BaseException:
                store._pass_turn(self.turn)
                raise
        except BaseException as error:
            store._after_failure(self.connection, self.identity, error)
            raise
        return SQLiteTransaction(store, self.connection)

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> None:
        store, connection = self.store, self.connection
        try:
            try:
                if error is None:
                    connection.execute("COMMIT")
                else:
                    _rollback(connection)
            finally:
                store._pass_turn(self.turn)
        except BaseException as failure:  # COMMIT or ROLLBACK failed
            store._after_failure(connection, self.identity, failure)
            raise
        if error is None:
            store._release(connection, self.identity)
        else:  # the block's own error goes on, as StoreUnavailable if the database cannot be used now
            store._after_failure(connection, self.identity, error)


class SQLiteStore:
    """Messages and opt-outs in one SQLite file, safe for many threads and processes.

    WAL mode lets readers and one writer work at once; writers take turns on a
    lock file (_take_turn), then BEGIN IMMEDIATE, so a count read inside a
    transaction is still true at commit. Connections are pooled, each used by
    one thread at a time. Webhooks share transactions through GroupCommit.
    """

    def __init__(self, path: str, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous.upper()
        self._idle: list[tuple[sqlite3.Connection, tuple[int, int]]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._seen_file = False  # once the file existed, its absence is a fault, not a first start
        self._group_commit = GroupCommit(self)
        self._writer_lock = threading.Lock()
        self._writer_file: tuple[int, int, tuple[int, int]] | None = None  # (fd, pid, database identity)

    def run(self, work: Callable[[Transaction], Any]) -> Any:
        """work(tx) in a transaction, possibly shared with other threads' work (group commit)."""
        return self._group_commit.run(work)

    def transaction(self) -> SQLiteWrite:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        return SQLiteWrite(self)

    def _after_failure(self, connection: sqlite3.Connection, identity: tuple[int, int], error: BaseException) -> None:
        """After a transaction that raised: a connection whose SQLite call failed is closed (its state is
        unknown; the next request opens a fresh one), and a database that cannot be used now raises
        StoreUnavailable; any other connection goes back to the pool."""
        if not isinstance(error, sqlite3.Error):
            self._release(connection, identity)
            return
        connection.close()
        if error.sqlite_errorcode & 0xFF in SQLITE_UNAVAILABLE:  # low byte: the primary result code
            raise StoreUnavailable(f"{self.path}: {error}") from error

    @contextlib.contextmanager
    def reading(self, missing_ok: bool = False) -> Iterator[SQLiteTransaction]:
        """One consistent read-only view, for commands: the file is never written, nor created.

        A missing file is StoreMissing, or with missing_ok an empty database. A file with an
        older schema (or none yet) is copied into memory and migrated there, so reading it
        needs no write; a file at the current schema is read in place, while the service runs.
        """
        if not os.path.exists(self.path):
            if not missing_ok:
                raise StoreMissing(f"{self.path} does not exist")
            source = None
        else:
            uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
            source = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT)
        connection = source
        try:
            version = source.execute("PRAGMA user_version").fetchone()[0] if source else 0
            if version != SCHEMA_VERSION:
                connection = sqlite3.connect(":memory:", isolation_level=None)
                if source:
                    source.backup(connection)
                migrate(connection.execute, version, SQLITE_TYPES, self.path)
            connection.execute("BEGIN")  # one snapshot for every read of the command
            yield SQLiteTransaction(self, connection)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"{self.path}: {error}") from error
        finally:
            for opened in {source, connection} - {None}:
                opened.close()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database can take a write now."""
        try:
            with self.transaction() as tx:
                tx.connection.execute("SELECT 1 FROM messages LIMIT 1").fetchall()
        except sqlite3.Error as error:  # a schema that cannot be created or read
            raise StoreUnavailable(f"{self.path}: {error}") from error

    def close(self) -> None:
        """Close the idle connections (connections in use close when returned)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _take_turn(self, identity: tuple[int, int]) -> int:
        """Wait for this file's other writers, threads and processes, in the kernel (flock); the lock
        file's descriptor, for _pass_turn.

        SQLite's busy handler makes a blocked writer sleep and retry, up to 100 ms at a time,
        which gives several gunicorn workers on one file a long tail of slow answers. Queuing on
        a lock file beside the database wakes the next writer at once. It only orders writers:
        SQLite's own locking still guards the data, so nothing breaks if another program
        writes without it.
        """
        self._writer_lock.acquire()
        try:
            fd = self._writer_fd(identity)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._writer_lock.release()
            raise
        return fd

    def _pass_turn(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        self._writer_lock.release()

    def _writer_fd(self, identity: tuple[int, int]) -> int:
        # Reopened after a fork (a shared open file would share the lock) or a replaced database file.
        if self._writer_file and self._writer_file[1:] == (os.getpid(), identity):
            return self._writer_file[0]
        if self._writer_file and self._writer_file[1] == os.getpid():
            os.close(self._writer_file[0])
        try:
            fd = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreUnavailable(f"{self.path}-writer: {error.strerror}") from error
        self._writer_file = (fd, os.getpid(), identity)
        return fd

    def _file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the database file, None before it is first created."""
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            if self._seen_file:
                # A new empty file would forget every opt-out: wait for the real one to come back.
                raise StoreUnavailable(f"{self.path} has disappeared; restore it") from None
            return None
        except OSError as error:
            raise StoreUnavailable(f"{self.path}: {error.strerror}") from error
        if not os.access(self.path, os.W_OK):
            raise StoreUnavailable(f"{self.path} is read-only")
        return status.st_dev, status.st_ino

    def _acquire(self) -> tuple[sqlite3.Connection, tuple[int, int]]:
        identity = self._file_identity()
        with self._lock:
            if self._pid != os.getpid():  # forked (gunicorn --preload): never share a parent's connections
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                connection, connected_to = self._idle.pop()
                if connected_to == identity:
                    return connection, connected_to
                connection.close()  # the file was replaced: that connection writes to the old one
        return self._connect()

    def _release(self, connection: sqlite3.Connection, identity: tuple[int, int]) -> None:
        with self._lock:
            self._idle.append((connection, identity))

    def _connect(self) -> tuple[sqlite3.Connection, tuple[int, int]]:
        connection = None
        try:
            connection = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT,
                                         isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")  # validated: FULL or NORMAL
            connection.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_SIZE}")
            connection.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")
            self._migrate(connection)
            self._seen_file = True
            return connection, self._file_identity()
        except BaseException as error:
            if connection is not None:
                connection.close()
            if isinstance(error, sqlite3.Error):  # cannot open, configure or migrate it
                raise StoreUnavailable(f"{self.path}: {error}") from error
            raise

    def _migrate(self, connection: sqlite3.Connection) -> None:
        """Create or upgrade the schema; BEGIN IMMEDIATE makes concurrent starters take turns."""
        if connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            migrate(connection.execute, version, SQLITE_TYPES, self.path)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            _rollback(connection)
            raise
        connection.execute("COMMIT")


def _rollback(connection: sqlite3.Connection) -> None:
    # SQLite ends the transaction itself after some errors (disk full, I/O); ROLLBACK would then fail.
    if connection.in_transaction:
        connection.execute("ROLLBACK")


class PostgresTransaction(Transaction):
    """Transaction on a psycopg 3 connection (in autocommit mode: the transaction is explicit).

    A webhook takes two round trips (batch): BEGIN, the per-sender lock and the read go in
    one pipeline, the insert and COMMIT in another (psycopg syncs when a pipeline ends).
    Every other statement is sent on its own, its BEGIN with the first of them.
    """

    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"  # two workers claim two different rows, without waiting
    like = "ILIKE"
    scan = " /* read whole */"  # the planner chooses; the statement still says what it does

    def __init__(self, store: PostgresStore, connection: Any) -> None:
        super().__init__(store, connection)
        self.state = "new"  # new, begun, committed

    @property
    def unique_violation(self) -> type[Exception]:
        return self.store.psycopg.IntegrityError

    def execute(self, sql: str, params: tuple = ()) -> Any:
        # PostgreSQL text cannot hold NUL characters; they are stored as U+FFFD.
        params = tuple(value.replace("\0", "\ufffd") if isinstance(value, str) else value for value in params)
        self.begin()
        return self.connection.execute(_postgres_placeholders(sql), params)

    def begin(self) -> None:
        if self.state == "new":
            self.state = "begun"
            self.connection.execute("BEGIN")

    def commit(self) -> None:
        if self.state == "begun":
            self.connection.execute("COMMIT")
        self.state = "committed"

    def lock(self, key: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (key,))

    def timestamp(self, unix_time: float) -> datetime:
        return datetime.fromtimestamp(unix_time, UTC)

    def moment(self, stored: datetime) -> datetime:
        return stored.astimezone(UTC)

    def execute_many(self, sql: str, rows: list[tuple]) -> int:
        self.begin()
        with self.connection.cursor() as cursor:
            cursor.executemany(_postgres_placeholders(sql), rows)
            return cursor.rowcount

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        with self.connection.pipeline():  # psycopg sends the statements together and syncs when the block ends
            self.begin()
            yield

    def commit_early(self) -> None:
        self.commit()


@functools.cache
def _postgres_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # psycopg's placeholder; none of our statements holds a literal ? or %


class PostgresStore:
    """The same tables in PostgreSQL (DATABASE_URL=postgresql://...), for several hosts.

    psycopg 3's pool keeps up to POSTGRES_POOL_SIZE connections per process. A
    connection the database closed while it was idle (a restart) fails on its first
    use, and the webhook's work is then run once more on a fresh one, so a restart
    costs nothing once the database is back; while it is down, requests wait
    POSTGRES_WAIT seconds and then fail (503 for /health, 500 for webhooks). The
    pool opens on first use, in the process that uses it (gunicorn workers fork
    after import).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.psycopg = importlib.import_module("psycopg")
        self._pool_module = importlib.import_module("psycopg_pool")
        self._pool = None
        self._pid = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        TransactionStatus = self.psycopg.pq.TransactionStatus  # noqa: N806 - psycopg's enum
        try:
            with self._open_pool().connection() as connection:
                tx = PostgresTransaction(self, connection)
                try:
                    yield tx
                    tx.commit()
                except BaseException:
                    if not connection.broken and connection.info.transaction_status != TransactionStatus.IDLE:
                        connection.execute("ROLLBACK")
                    raise
        except (self.psycopg.OperationalError, self._pool_module.PoolTimeout) as error:
            raise StoreUnavailable(f"{redact_url(self.url)}: {first_line(error)}") from error

    def run(self, work: Callable[[Transaction], Any]) -> Any:
        """work(tx) in a transaction of its own (PostgreSQL groups concurrent commits itself).

        A connection the database closed while it sat in the pool (a restart) fails on its first
        statement: the work runs again, once, on another; nothing of the first attempt was committed."""
        for attempt in (1, 2):
            tx = None
            try:
                with self.transaction() as tx:
                    return work(tx)
            except StoreUnavailable:
                # Run again only if the connection died before anything could have been committed.
                if attempt == 2 or tx is None or not tx.connection.broken or tx.state != "begun":
                    raise
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def reading(self, missing_ok: bool = False) -> Iterator[PostgresTransaction]:
        """One consistent read-only view, for commands: a transaction that is always rolled back.

        Tables missing or older than this code are created or migrated inside it, so they
        read as empty or current and nothing is left behind.
        """
        try:
            with self.psycopg.connect(self.url, connect_timeout=int(POSTGRES_WAIT)) as connection:
                with connection.transaction(force_rollback=True):
                    self._migrate_schema(connection)
                    tx = PostgresTransaction(self, connection)
                    tx.state = "begun"  # psycopg's transaction, never committed
                    yield tx
        except self.psycopg.OperationalError as error:
            raise StoreUnavailable(f"{redact_url(self.url)}: {first_line(error)}") from error

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        with self.transaction() as tx:
            tx.execute("SELECT 1 FROM messages LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    def _open_pool(self) -> Any:
        """This process's pool, opened only once one connection has reached the database: a pool
        that cannot connect retries in the background, a warning each time, until its wait runs out."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._migrate()
                pool = self._pool_module.ConnectionPool(
                    self.url, min_size=1, max_size=POSTGRES_POOL_SIZE, timeout=POSTGRES_WAIT, open=False,
                    kwargs={"connect_timeout": int(POSTGRES_WAIT), "autocommit": True}, name="sms_responder")
                pool.open(wait=False)
                self._pool, self._pid = pool, os.getpid()
            return self._pool

    def _migrate(self) -> None:
        try:
            with self.psycopg.connect(self.url, connect_timeout=int(POSTGRES_WAIT)) as connection:
                self._migrate_schema(connection)  # committed when the block ends
        except self.psycopg.OperationalError as error:
            raise StoreUnavailable(f"{redact_url(self.url)}: {first_line(error)}") from error

    def _migrate_schema(self, connection: Any) -> None:
        """Create or upgrade the schema; an advisory lock makes processes starting together take turns."""
        connection.execute("SELECT pg_advisory_xact_lock(7270001)")  # any constant, same for all
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        migrate(connection.execute, version, POSTGRES_TYPES, redact_url(self.url))
        if version < SCHEMA_VERSION:
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))


def first_line(error: Exception) -> str:
    """An error's message as one line (libpq adds hints on lines of their own)."""
    return str(error).strip().split("\n", 1)[0]


def redact_url(url: str) -> str:
    """The URL without its password, for log lines."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


Store = SQLiteStore | PostgresStore  # either database, as open_store() gives it


def open_store(settings: Settings) -> Store:
    """The store DATABASE_URL names (nothing is opened until first use)."""
    if settings.database_url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(settings.database_url)
    return SQLiteStore(sqlite_path(settings.database_url), settings.sqlite_synchronous)


# -- HTTP plumbing: requests and answers --------------------------------------

class HTTPError(Exception):
    """An expected client error: raised where it is found, answered in SmsResponder.__call__."""

    def __init__(self, status: HTTPStatus, reason: str, headers: tuple[tuple[str, str], ...] = (),
                 **log_fields: object) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.log_fields = log_fields

    def response(self) -> Response:
        """The answer: the reason as short plain text."""
        return Response(self.status, f"{self.reason}\n".encode(), TEXT_CONTENT_TYPE, self.headers,
                        {"outcome": Outcome.REJECTED.value, "status": self.status.value, "reason": self.reason,
                         **self.log_fields})


class ApiError(HTTPError):
    """An error of the API (/api/...): answered as JSON, {"error": reason, ...details}."""

    def __init__(self, http_status: HTTPStatus, reason: str, headers: tuple[tuple[str, str], ...] = (),
                 **details: object) -> None:
        super().__init__(http_status, reason, headers)
        self.document = {"error": reason, **details}

    def response(self) -> Response:
        return json_response(self.status, self.document, self.headers)


@dataclasses.dataclass(slots=True)
class Response:
    """What a handler decided to answer; SmsResponder.__call__ encodes it."""

    status: HTTPStatus
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    log_fields: Mapping[str, object] = dataclasses.field(default_factory=dict)


STATUS_LINES = {status: f"{status.value} {status.phrase}" for status in HTTPStatus}


def json_response(status: HTTPStatus, document: Mapping[str, object],
                  headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A JSON answer (the health check, the API)."""
    return Response(status, json.dumps(document, ensure_ascii=False).encode(), JSON_CONTENT_TYPE, headers)


_PLAIN_NUMBER = re.compile("[0-9]+")


def declared_length(environ: WSGIEnvironment, error: type[HTTPError] = HTTPError) -> int | None:
    """The request's Content-Length (None: it has none), or 400 unless it is a plain decimal number.

    RFC 9110 8.6 allows digits only. int() would also take -1, +5, 5_0 and other scripts' digits, and
    a length of -1 passed every size check, then made a read wait for the client to close."""
    header = environ.get("CONTENT_LENGTH", "").strip(" \t")
    if not header:
        return None
    if not _PLAIN_NUMBER.fullmatch(header):
        raise error(HTTPStatus.BAD_REQUEST, "invalid Content-Length: not a plain decimal number")
    return int(header)


def read_body(environ: WSGIEnvironment, max_bytes: int, expected_type: str = FORM_CONTENT_TYPE,
              error: type[HTTPError] = HTTPError) -> bytes:
    """The request body, after the size (413) and content-type (415) checks of step 1."""
    length = declared_length(environ, error)
    if length is not None and length > max_bytes:
        raise error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {max_bytes} bytes")
    media_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if media_type != expected_type:
        raise error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"expected {expected_type}")
    if length is None:
        if environ.get("wsgi.input_terminated"):  # the host de-chunked the body: read to its end
            length = max_bytes + 1
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise error(HTTPStatus.LENGTH_REQUIRED, "this server needs a Content-Length")
        else:
            return b""  # no length and no chunks: an empty body (RFC 9112, section 6.3)
    try:
        body = environ["wsgi.input"].read(min(length, max_bytes + 1))
    except OSError:  # the client timed out or went away mid-body
        raise error(HTTPStatus.BAD_REQUEST, "incomplete body") from None
    if len(body) > max_bytes:
        raise error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {max_bytes} bytes")
    return body


_HOST = re.compile(r"(?:[A-Za-z0-9_.-]+|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{1,5}))?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986 3.1


@functools.lru_cache(maxsize=64)  # a service sees a few hosts again and again; bounded: the client chooses them
def is_host(value: str) -> bool:
    """Is this a host name or address with an optional port, as a URL holds it ([::1]:3000 too)?"""
    match = _HOST.fullmatch(value)
    if match is None or (match["port"] and int(match["port"]) > 65535):
        return False
    try:
        return not match["ipv6"] or bool(ipaddress.IPv6Address(match["ipv6"]))
    except ValueError:
        return False


#: The headers a webhook's URL may be made of (see webhook_url): each value, or each of a list's values.
URL_HEADERS = (("Host", "HTTP_HOST", is_host), ("X-Forwarded-Host", "HTTP_X_FORWARDED_HOST", is_host),
               ("X-Forwarded-Proto", "HTTP_X_FORWARDED_PROTO", _SCHEME.fullmatch))


def check_url_headers(environ: WSGIEnvironment) -> None:
    """403 naming the header if Host, X-Forwarded-Host or X-Forwarded-Proto could not be part of a URL.

    No signature can match such a request, and turning the header into a URL made urlsplit raise
    (Host: [ was a 500 that counted as a failed webhook). Refused here, before any URL is made."""
    for name, key, is_valid in URL_HEADERS:
        value = environ.get(key)
        if value and not all(is_valid(part.strip()) for part in value.split(",") if part.strip()):
            raise HTTPError(HTTPStatus.FORBIDDEN, f"invalid {name} header", header=name, value=value[:100])


def parse_form(body: bytes) -> dict[str, list[str]] | None:
    """The form fields of a UTF-8 form body, blank values kept (Plivo signs them); None if not UTF-8.

    The same as urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    (a property test holds them equal), but a field with neither '+' nor '%' is taken as it is.
    """
    try:
        text = body.decode("utf-8")
        escaped = "+" in text or "%" in text  # most bodies hold nothing to unquote: no look at each field then
        fields: dict[str, list[str]] = {}
        for pair in text.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            if escaped:
                if "+" in name or "%" in name:
                    name = urllib.parse.unquote_plus(name, errors="strict")
                if "+" in value or "%" in value:
                    value = urllib.parse.unquote_plus(value, errors="strict")
            if name in fields:
                fields[name].append(value)
            else:
                fields[name] = [value]
        return fields
    except UnicodeDecodeError:
        return None


def parse_json(body: bytes) -> object:
    """A JSON body (UTF-8; no duplicate keys, no NaN), else 400."""
    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("a key given twice")
        return dict(pairs)

    def no_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=unique, parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body is not a JSON object", field="body") from None


_BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)


def bearer_token(environ: WSGIEnvironment) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header (the API's, /metrics'), None without one."""
    match = _BEARER.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
    return match[1] if match else None


def token_digest(token: str) -> str:
    """What is stored of a random token (an API token, a session's): its SHA-256. A slow hash protects
    guessable passwords, not 32 random bytes; the digest is looked up on every request."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# -- Signature ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SignatureHeaders:
    """The environ keys of one Plivo signature version."""

    version: str
    signatures: tuple[str, str]  # the account's own and the main account's ("Ma") header
    nonce: str


V3_HEADERS = SignatureHeaders("v3", ("HTTP_X_PLIVO_SIGNATURE_V3", "HTTP_X_PLIVO_SIGNATURE_MA_V3"),
                              "HTTP_X_PLIVO_SIGNATURE_V3_NONCE")
V2_HEADERS = SignatureHeaders("v2", ("HTTP_X_PLIVO_SIGNATURE_V2", "HTTP_X_PLIVO_SIGNATURE_MA_V2"),
                              "HTTP_X_PLIVO_SIGNATURE_V2_NONCE")


def webhook_url(environ: WSGIEnvironment, public_url: str) -> str:
    """The URL Plivo called, which is the URL it signed.

    With PUBLIC_URL set: PUBLIC_URL + path (+ query). Otherwise the URL is
    rebuilt like wsgiref.util.request_uri, preferring X-Forwarded-Proto and
    X-Forwarded-Host (first value) because behind ngrok or a TLS proxy the
    server only sees its own side. Trusting them is safe for V3: the signature
    covers the URL and the body, so a forged header only makes the check fail.
    A V2 signature covers no body, so V2 headers made for another URL of the
    account could be replayed here with that URL's host: start-up warns while
    V2 is accepted without PUBLIC_URL. Values that cannot be part of a URL are
    refused before this is called (check_url_headers).
    """
    path = _quoted_path(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING", "")
    if query:  # a query of raw non-ASCII bytes is not a URL anyone signed; quoted, it fails the check as it should
        query = urllib.parse.quote(query, safe="=&;%+/:,@!$'()*?~[]", encoding="latin1")
    if public_url:
        base = public_url
    else:
        scheme = _first(environ.get("HTTP_X_FORWARDED_PROTO")) or environ["wsgi.url_scheme"]
        host = (_first(environ.get("HTTP_X_FORWARDED_HOST")) or environ.get("HTTP_HOST")
                or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}")
        base = f"{scheme}://{host}"
    return base + path + (f"?{query}" if query else "")


@functools.lru_cache(maxsize=64)  # bounded: the path is the client's; a service sees its two webhooks' again and again
def _quoted_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/;=,", encoding="latin1")


def _first(header: str | None) -> str:
    return header.split(",")[0].strip() if header else ""


@functools.lru_cache(maxsize=64)  # bounded: the URL may come from X-Forwarded-Host
def other_port_form(url: str) -> str | None:
    """The URL with its default port (:443, :80) removed if present, added if absent: Plivo may sign either."""
    parts = urllib.parse.urlsplit(url)
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return None
    if default_port is None or port not in (None, default_port):
        return None
    netloc = parts.netloc.removesuffix(f":{port}") if port else f"{parts.netloc}:{default_port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def v3_signature(token: bytes, url: str, params: Mapping[str, list[str]], nonce: str,
                 params_half: str | None = None) -> bytes:
    """Plivo's V3 signature: HMAC-SHA256 over URL, sorted POST params and nonce, by the SDK's rules.

    The string to sign is the SDK's construct_post_url(url, params) and the nonce: its URL half is
    made by the SDK (once per URL: it is the same for every request), its parameters half by
    params_text (given as params_half when it is made already). Property tests hold the result
    equal to the SDK's for any form.
    """
    if params_half is None:
        params_half = params_text(params)
    digest = hmac.digest(token, f"{_signed_url(url, bool(params))}{params_half}.{nonce}".encode("utf-8"), "sha256")
    return binascii.b2a_base64(digest, newline=False)  # base64.b64encode, without its Python-level call


def params_text(params: Mapping[str, list[str]]) -> str:
    """The string to sign's parameters half, as the SDK's get_sorted_params_string makes it of a form:
    each name in order, each of its values in order, name and value run together; in one pass."""
    return "".join([name + values[0] if len(values) == 1 else name + name.join(sorted(values))
                    for name, values in sorted(params.items())])


@functools.lru_cache(maxsize=64)  # bounded: the URL may come from X-Forwarded-Host
def _signed_url(url: str, has_params: bool) -> str:
    return construct_get_url(url, {}, empty_post_params=not has_params).decode("utf-8")


def v2_signature(token: bytes, url: str, nonce: str) -> bytes:
    """Plivo's V2 signature: HMAC-SHA256 over scheme://host/path + nonce (no query, no body)."""
    return binascii.b2a_base64(hmac.digest(token, (_v2_base(url) + nonce).encode("utf-8"), "sha256"),
                               newline=False)


@functools.lru_cache(maxsize=64)  # bounded: the URL may come from X-Forwarded-Host
def _v2_base(url: str) -> str:
    parts = urllib.parse.urlparse(url)  # the SDK's validate_signature drops params, query, fragment
    return urllib.parse.urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))


def signature_matches(expected: bytes, headers: Iterable[str]) -> bool:
    """Does any comma-separated signature in the headers equal the expected one (constant time)?"""
    for header in headers:
        for candidate in header.encode("latin-1").split(b","):  # one signature per valid token
            if hmac.compare_digest(expected, candidate.strip()):
                return True
    return False


def signature_is_valid(headers: SignatureHeaders, environ: WSGIEnvironment, url: str,
                       params: Mapping[str, list[str]] | None, token: bytes) -> bool:
    """Check one signature version for this request; params is None when the body did not parse.

    The URL as seen is checked first; its other default-port form only when that fails (it is rarely
    needed), with the same parameters half of the string to sign, made once."""
    nonce = environ.get(headers.nonce, "")
    presented = [environ[name] for name in headers.signatures if environ.get(name)]
    if not nonce or not presented:
        return False
    if headers is V3_HEADERS and params is None:
        return False  # V3 covers the body, and there is no body to cover
    try:
        if headers is V3_HEADERS:
            params_half = params_text(params)  # the same for either URL: made once
            expected = v3_signature(token, url, params, nonce, params_half)
        else:
            expected = v2_signature(token, url, nonce)
        if signature_matches(expected, presented):
            return True
        other_url = other_port_form(url)  # only when the URL as seen did not match: it is rarely needed
        if other_url is None:
            return False
        expected = (v3_signature(token, other_url, params, nonce, params_half) if headers is V3_HEADERS
                    else v2_signature(token, other_url, nonce))
        return signature_matches(expected, presented)
    except UnicodeError:  # the SDK cannot make the string to sign of a query with non-ASCII bytes: nobody signed it
        return False


# -- Messages: an inbound message, its state, the reply's text ----------------

class InboundMessage(NamedTuple):
    """One inbound SMS or MMS, as Plivo posted it. (A named tuple: one is made per webhook, and a frozen
    dataclass takes several times as long to make.)"""

    message_uuid: str
    sender: str       # From
    recipient: str    # To: one of our numbers
    text: str         # Text, or Body for MMS
    type: str
    media_urls: tuple[str, ...] = ()
    intent: str = ""  # MessageIntent, when Plivo itself recognised a keyword


_MEDIA_FIELD = re.compile(r"Media(\d+)")


def parse_inbound(form: Mapping[str, list[str]], our_numbers: frozenset[str]) -> InboundMessage:
    """The inbound message in a webhook form, or 400 naming the missing or invalid field (step 4)."""
    for name in ("From", "To", "MessageUUID"):
        value = single_field(form, name)
        if not value:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"missing field {name}")
        if len(value) > 128 or not value.isprintable():
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"invalid field {name}")
    message_type = (single_field(form, "Type") or "sms").lower()
    text = single_field(form, "Text" if message_type == "sms" else "Body")
    if text is None and message_type == "sms":
        raise HTTPError(HTTPStatus.BAD_REQUEST, "missing field Text")
    message = InboundMessage(form["MessageUUID"][0], form["From"][0], form["To"][0], text or "", message_type,
                             media_urls(form), (single_field(form, "MessageIntent") or "").lower())
    if number_key(message.recipient) not in our_numbers:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "To is not one of PLIVO_NUMBER",
                        message_uuid=message.message_uuid, sender=mask_number(message.sender))
    return message


def single_field(form: Mapping[str, list[str]], name: str) -> str | None:
    """A field's value (None: absent), or 400 if the form gives it more than once."""
    values = form.get(name)
    if values is not None and len(values) > 1:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"field {name} given more than once")
    return values[0] if values else None


def media_urls(form: Mapping[str, list[str]]) -> tuple[str, ...]:
    """MMS media URLs from Media0, Media1, ... in index order (Plivo's docs disagree on the first index)."""
    if "Media" not in "".join(form):  # an SMS: no field name holds it, and no field is looked at
        return ()
    indexed = sorted((int(match[1]), values[0]) for name, values in form.items()
                     if name.startswith("Media") and (match := _MEDIA_FIELD.fullmatch(name)) and values[0])
    return tuple(url for _, url in indexed)


class MessageState(NamedTuple):
    """What the database says about a new message before it is decided: the row of message_state's read."""

    duplicate: bool        # its MessageUUID is stored already
    nonce_used: bool       # its V2 nonce is bound to another message
    opted_out: bool        # its sender has opted out of the receiving number
    recent_replies: int    # limited replies to its sender within REPLY_WINDOW
    previous_rule: str | None = None  # rules with `after`: the rule that matched the sender's most recent
    previous_at: Any = None           # earlier message to this number, and when it came (None: no message


# Not an XML 1.0 Char (https://www.w3.org/TR/xml/#charsets): C0 controls but tab, LF and CR;
# lone surrogates; U+FFFE and U+FFFF. (Written as the invalid set: the valid one compiles slowly.)
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def render_reply(template: str, message: InboundMessage) -> str:
    """REPLY_TEXT with {text}, {from} and {to} filled in (the template was checked at start-up)."""
    return template.format_map({"text": message.text, "from": message.sender, "to": message.recipient})


def xml_safe(text: str) -> str:
    """Text without the characters XML 1.0 cannot carry (control characters, lone surrogates)."""
    return _XML_INVALID.sub("", text)


def clean_reply(text: str | None) -> str | None:
    """Step 9: only characters XML 1.0 can carry, at most 1600 of them; None when nothing but blanks
    is left (an SMS of spaces is nothing to send: no reply, no forward, no relay)."""
    cleaned = xml_safe(text)[:MAX_REPLY_CHARS] if text else ""
    return cleaned if cleaned and not cleaned.isspace() else None


# GSM 03.38: the default alphabet (without ESC, which only announces the extension table) and the
# extension table, whose characters take two septets. Any other character makes the text UCS-2.
GSM_ALPHABET = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION = "\f^{}\\[~]|€"
_NOT_GSM = re.compile(f"[^{re.escape(GSM_ALPHABET + GSM_EXTENSION)}]")
_GSM_DOUBLE = re.compile(f"[{re.escape(GSM_EXTENSION)}]")
_UCS2_DOUBLE = re.compile("[\U00010000-\U0010ffff]")  # outside the BMP: a surrogate pair in UTF-16
#: encoding: (its name, the limit of a single message, the limit of each part of a longer one)
SEGMENT_LIMITS = {"gsm": ("GSM-7", 160, 153), "ucs2": ("UCS-2", 70, 67)}


@functools.lru_cache(maxsize=256)  # most replies are a few fixed texts
def segments_of(text: str) -> tuple[int, str]:
    """How many SMS parts the text is sent as, and its encoding (GSM-7 or UCS-2).

    Counted in septets for GSM-7 (an extension character takes two) and in UTF-16 code
    units for UCS-2 (a character outside the BMP takes two); a longer text is cut into
    parts of 153 or 67, and a two-unit character is never split between parts.
    """
    gsm = _NOT_GSM.search(text) is None
    double = _GSM_DOUBLE if gsm else _UCS2_DOUBLE
    encoding, single_limit, part_limit = SEGMENT_LIMITS["gsm" if gsm else "ucs2"]
    doubles = len(double.findall(text))
    if len(text) + doubles <= single_limit:
        return 1, encoding
    if not doubles:
        return -(-len(text) // part_limit), encoding
    parts, used = 1, 0
    for character in text:
        width = 2 if double.match(character) else 1
        if used + width > part_limit:
            parts, used = parts + 1, 0
        used += width
    return parts, encoding


def reply_xml(src: str, messages: Iterable[tuple[str, str]]) -> bytes:
    """Plivo XML that sends each (dst, text) from src, in order (Plivo runs a Response top to bottom).

    Byte for byte what the SDK's plivoxml writes (a property test holds them equal for every kind
    of character): text and numbers escaped as lxml escapes them. Every text is non-empty and
    holds only characters XML 1.0 can carry (clean_reply).
    """
    source = _xml_escape(src, _XML_ATTRIBUTE)
    return "".join(["<Response>", *(f'<Message src="{source}" dst="{_xml_escape(dst, _XML_ATTRIBUTE)}" type="sms">'
                                     f"{_xml_escape(text, _XML_TEXT)}</Message>" for dst, text in messages),
                    "</Response>"]).encode("utf-8")


# What lxml escapes in element text, and in attribute values.
_XML_TEXT = (re.compile("[&<>\r]"), {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_XML_ATTRIBUTE = (re.compile('[&<>"\n\r\t]'), {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                                  "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _xml_escape(value: str, escapes: tuple[re.Pattern[str], dict[str, str]]) -> str:
    special, replacements = escapes
    return special.sub(lambda match: replacements[match[0]], value) if special.search(value) else value


# -- Keywords and consent: step 7's families, opt-outs in other words ---------

class Keyword(enum.Enum):
    """The keyword families (README: What the webhook does, step 7)."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


# Keyword families, compared after normalize_keyword() (README: What the webhook does, step 7).
OPT_OUT_WORDS = frozenset({
    "stop", "stopall", "stop all", "unsubscribe", "unsub", "cancel",
    "end", "quit", "revoke", "optout", "opt out",
})
OPT_IN_WORDS = frozenset({"start", "yes", "unstop", "resume"})
HELP_WORDS = frozenset({"help", "info"})
#: Opt-in words only for a sender who has opted out; from anyone else an ordinary message ("Reply YES to confirm").
OPT_IN_WHEN_OPTED_OUT = frozenset({"yes"})


def normalize_keyword(text: str) -> str:
    """Trimmed, case-folded, inner whitespace collapsed, trailing punctuation removed: ' Stop! ' -> 'stop'."""
    words = " ".join(text.casefold().split())
    while words and unicodedata.category(words[-1]).startswith("P"):
        words = words[:-1].rstrip()
    return words


CONSENT_CHECK_PERIOD = 24 * 3600  # seconds: the consent question is asked once per sender and number of ours in this
#: Words that may stand around a keyword without changing what it says: "Stop please", "STOP IT", "Stop. Thanks".
COURTESY_WORDS = (
    "please", "pls", "plz", "now", "it", "me", "thanks", "thank you", "thx", "ok", "okay", "all", "asap",
    "just", "sorry",
    "right now", "already", "immediately", "kindly", "hi", "hey", "hello", "ty", "thank u", "u",
    "por favor", "porfa", "gracias", "ya", "svp", "stp", "s'il vous plaît", "s'il te plaît", "merci",
)
#: Alone or with courtesy words, each of these is an opt-out; the key names the kind `try` shows.
OPT_OUT_KEYWORDS = {
    "keyword": ("stop", "stopall", "stop all", "unsubscribe", "unsub", "optout", "opt out", "revoke", "quit",
                "unsubcribe", "unsuscribe"),  # the two spellings most often mistyped
    "spanish": ("alto", "basta", "parar", "cancelar", "baja", "no más", "no más mensajes", "no más textos",
                "no más sms", "darme de baja", "dar de baja", "cancelar suscripción"),
    "french": ("arrêt", "arrêter", "arrête", "arrêtez", "désabonner", "désinscrire", "désabonnement",
               "désinscription", "plus de sms", "plus de messages"),
}
# A request for no more messages: a refusal whose object is texting itself, in any sentence.
#: The refusals. After a subject ("I never text", "you never text me back") a sentence tells of
#: someone's texting, not a request, unless it also asks (REQUEST_LEADS: "can you stop texting me").
REFUSALS = ("stop", "quit", "cease", "don't", "dont", "do not", "never", "put a stop to")
#: Refusals that are the writer's own request whoever the sentence names: "I want no more texts".
WRITER_REFUSALS = ("no more", "don't want", "dont want", "do not want", "don't need", "dont need", "do not need")
SUBJECTS = ("i", "im", "we", "he", "she", "they", "you", "u", "my", "our", "people", "someone")
REQUEST_LEADS = ("please", "pls", "need", "want", "asked", "told", "can", "could", "would", "will", "like")
#: Between the refusal and the texting word: "stop sending me messages", "don't send me any more spam".
SENDING = ("sending", "send", "receiving", "receive", "getting", "get", "to get", "to receive")
PEOPLE = ("me", "us")
DETERMINERS = ("the", "these", "those", "this", "your", "ur", "all", "any", "all the", "all these", "all those",
               "all of the", "all of these", "all of your", "all your", "any of your", "any more", "anymore")
KINDS = ("marketing", "promotional", "promo", "automated", "annoying", "stupid", "damn", "fucking", "freaking")
#: Texting itself, the object a refusal must have: "don't send the wrong size" is no opt-out.
TEXTING = ("text", "texts", "texting", "txt", "txts", "txting", "text message", "text messages", "message",
           "messages", "messaging", "msg", "msgs", "sms", "sms messages", "spam", "spamming")
#: What may follow the texting word to the end of the sentence: "stop texting me anymore, thanks".
AFTER_TEXTING = ("me", "us", "to me", "to us", "my number", "my phone", "this number", "to my number",
                 "to my phone", "to this number", "anymore", "any more", "again", "ever", "ever again", "from you",
                 "from you guys", "from this number", "from your number", "from now on", "for good", "thanks")
#: Requests to be taken off: at the end of a sentence, or naming a list ("Remove me from your list").
REMOVALS = ("remove me", "remove my number", "take me off", "take my number off", "delete my number")
LISTS = ("list", "lists", "mailing list", "texting list", "text list", "sms list", "contact list", "contacts",
         "database", "system", "texts", "messages", "number", "numbers")
#: Requests that are clear wherever they stand in a sentence.
OPT_OUT_REQUESTS = ("opt me out", "unsubscribe me", "unsubscribe me from", "i want to unsubscribe",
                    "i want to opt out", "i'd like to opt out", "i would like to opt out", "i'd like to unsubscribe",
                    "i would like to unsubscribe", "i wanna unsubscribe", "i want to be removed",
                    "i'd like to be removed")
#: Any of these as a whole word makes a message that is not clearly an opt-out maybe one ...
MAYBE_WORDS = ("stop", "unsubscribe", "unsub", "optout", "opt out", "revoke")
#: ... except `stop` where it does not mean ending messages: a visit or a thing ("stop by", "stop sign") ...
STOP_VISITS = ("by", "in", "at", "over", "sign", "signs", "light", "lights", "payment", "watch", "and go",
               "and shop", "shop")
#: ... a place ("bus stop", "missed my stop") ...
STOP_PLACES = ("bus", "next", "last", "pit", "one", "non", "first", "final", "rest", "truck", "train", "subway",
               "full", "quick", "a", "the", "my", "your", "our", "his", "her", "their")
#: ... or after a negation or inability ("I can't stop laughing", "don't stop the delivery"). A refusal
#: after one is no request either.
NEGATIONS = ("can't", "cant", "cannot", "can not", "couldn't", "couldnt", "won't", "wont", "don't", "dont",
             "doesn't", "doesnt", "didn't", "didnt", "shouldn't", "wouldn't", "never", "not")


class Revocation(enum.Enum):
    """The consent classes of a message no keyword family matched."""

    CLEAR = "clear"  # an opt-out: stored and answered exactly like STOP
    MAYBE = "maybe"  # may be one: CONSENT_CHECK_TEXT asks, at most once a day


@dataclasses.dataclass(frozen=True, slots=True)
class ConsentMatch:
    """What the consent classes read in a message: the class, the kind of match and its words."""

    revocation: Revocation
    kind: str   # keyword, spanish, french, rules file, phrase (a request), word (maybe)
    words: str  # what matched, normalized: "stop", "stop texting", "no mas"

    def __str__(self) -> str:
        return f"{self.kind}: {self.words}"


_SENTENCE_ENDS = ".!?;,\n\r\u2028\u2029"
_SENTENCE_END = re.compile(f"[{_SENTENCE_ENDS}]")
_NOT_A_WORD = re.compile(r"[^\w\n]+|_+")  # \w is a letter, a digit or "_" (str.isalnum, and "_")
#: ASCII bytes as sentence_marks() writes them: letters lower case, digits, a sentence's end a line break,
#: anything else a space. In ASCII, NFKC and accents change nothing and case folding is lower().
_ASCII_MARKS = bytes(ord(c.lower()) if c.isascii() and c.isalnum() else ord("\n") if c in _SENTENCE_ENDS
                     else ord(" ") for c in map(chr, range(256)))


def consent_words(text: str) -> tuple[str, list[str]]:
    """A text as the consent classes compare it, whole and by sentence.

    Unicode NFKC (full-width ＳＴＯＰ reads stop), case folded, accents removed (NFD, combining
    marks dropped: "no más" reads "no mas"), every character but letters, digits and spaces a
    space ("opt-out" reads "opt out", "s'il vous plaît" reads "s il vous plait"), whitespace
    collapsed. Sentences end at . ! ? ; , and line breaks, cut before the punctuation goes.
    """
    return words_and_sentences(sentence_marks(text))


def sentence_marks(text: str) -> str:
    """The text normalized as consent_words() says, sentences ending in line breaks, spaces not collapsed."""
    if text.isascii():  # most messages: one table, in C
        return text.encode().translate(_ASCII_MARKS).decode()
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = "".join(c for c in unicodedata.normalize("NFD", folded) if unicodedata.category(c) != "Mn")
    return _NOT_A_WORD.sub(" ", _SENTENCE_END.sub("\n", folded))


def words_and_sentences(marked: str) -> tuple[str, list[str]]:
    sentences = [" ".join(part.split()) for part in marked.split("\n")]
    sentences = [sentence for sentence in sentences if sentence]
    return " ".join(sentences), sentences


def _any(phrases: Iterable[str]) -> str:
    """A pattern matching any of the phrases, normalized as messages are, the longest first."""
    normalized = {consent_words(phrase)[0] for phrase in phrases}
    return "(?:" + "|".join(re.escape(phrase) for phrase in sorted(normalized, key=lambda p: (-len(p), p))) + ")"


def _not_after(*lists: Iterable[str], ending: str = "") -> str:
    """Lookbehinds: the `ending` just matched (or what is about to match) follows none of these words."""
    words = sorted({consent_words(word)[0] for words in lists for word in words})
    return "".join(f"(?<! {re.escape(word)} {ending})" for word in words)


def _not_negated(phrases: str) -> str:
    """A pattern for one of the phrases (an _any()) that follows no negation. The negations are looked at
    only where a phrase starts: a lookbehind tried at every word costs more than the whole match."""
    return rf"(?={phrases} ){_not_after(NEGATIONS)}{phrases}"


def _anchors(*lists: Iterable[str]) -> frozenset[str]:
    """One word of each phrase: a text holding none of them holds none of the phrases. Shorter phrases
    first, and a phrase holding a word already chosen adds none (the longest word of the others)."""
    chosen: set[str] = set()
    for phrase in sorted({consent_words(phrase)[0] for phrases in lists for phrase in phrases},
                         key=lambda phrase: (phrase.count(" "), phrase)):
        if chosen.isdisjoint(phrase.split()):
            chosen.add(max(phrase.split(), key=len))
    return frozenset(chosen)


@functools.cache
def _compiled(source: str) -> re.Pattern[str]:
    """A pattern below, compiled on first use: compiling them all takes 10 ms, which every command would
    otherwise pay at import, most of them never reading a message."""
    return re.compile(source)


# The patterns, built from the lists; each runs on a normalized text with a space before and after it.
_COURTESY = _any(COURTESY_WORDS)
_KEYWORD_KINDS = {consent_words(word)[0]: kind for kind, words in OPT_OUT_KEYWORDS.items() for word in words}
#: A whole message of opt-out keywords and courtesy words, at least one keyword.
_WHOLE_MESSAGE = (rf" (?:{_COURTESY} )*+(?P<keyword>{_any(_KEYWORD_KINDS)}) "
                  rf"(?:(?:{_any(_KEYWORD_KINDS)}|{_COURTESY}) )*+")
#: A rules file's [consent] phrase without the courtesy words around it (run on the file, not on messages).
_AROUND = rf" (?:{_COURTESY} )*+(?P<core>.+?)(?: {_COURTESY})*+ "
#: A refusal of texting that ends its sentence.
_REFUSAL = (
    rf" (?P<refusal>{_not_negated(_any(REFUSALS + WRITER_REFUSALS))})(?: {_any(SENDING)})?"
    rf"(?: {_any(PEOPLE)})?(?: {_any(DETERMINERS)})?(?: {_any(KINDS)})? (?P<texting>{_any(TEXTING)})"
    rf"(?: {_any(AFTER_TEXTING + COURTESY_WORDS)})*+ $")
_WRITERS = frozenset(consent_words(refusal)[0] for refusal in WRITER_REFUSALS)
_SUBJECTS = frozenset(SUBJECTS)
_REQUEST_LEADS = frozenset(REQUEST_LEADS)
#: A request to be taken off, or to opt out.
_REMOVAL = (
    rf" (?P<request>{_not_negated(_any(REMOVALS))})(?:(?: {_any(AFTER_TEXTING + COURTESY_WORDS)})*+ $"
    rf"| (?:(?:from|off|of) )?(?:{_any(DETERMINERS)} )?(?:{_any(KINDS)} )?{_any(LISTS)} )")
_OPT_OUT_REQUEST = rf" (?P<request>{_not_negated(_any(OPT_OUT_REQUESTS))}) "
#: Maybe an opt-out: one of MAYBE_WORDS, but not `stop` in a visit, a place, or after a negation.
_MAYBE = (rf" (?P<word>stop{_not_after(STOP_PLACES, NEGATIONS, ending='stop')}(?! {_any(STOP_VISITS)} )"
          rf"|{_any(set(MAYBE_WORDS) - {'stop'})})(?= )")
#: Every class needs a whole phrase of one of these lists; a text holding no word of any (its anchors, one
#: word of each phrase) is decided at a glance, without normalizing it (Consent.of).
ANCHORED_LISTS = (*OPT_OUT_KEYWORDS.values(), TEXTING, REMOVALS, OPT_OUT_REQUESTS, MAYBE_WORDS)


@dataclasses.dataclass(frozen=True)
class Consent:
    """How messages are read for consent: the lists above, and a rules file's own [consent] phrases."""

    own_phrases: frozenset[str] = frozenset()  # normalized, courtesy words stripped
    anchors: frozenset[str] = _anchors(*ANCHORED_LISTS)
    own: re.Pattern[str] | None = None  # a whole message of one own phrase and courtesy words

    @classmethod
    def with_phrases(cls, phrases: Iterable[str]) -> Consent:
        """The built-in classes and these phrases (each normalized and stripped by own_phrase_of)."""
        phrases = frozenset(phrases)
        own = re.compile(rf" (?:{_COURTESY} )*+(?P<core>{_any(phrases)}) (?:{_COURTESY} )*+") if phrases else None
        return cls(phrases, _anchors(*ANCHORED_LISTS, phrases), own)

    def of(self, text: str) -> ConsentMatch | None:
        """The consent class of a message and what matched; None: not an opt-out."""
        marked = sentence_marks(text)
        if self.anchors.isdisjoint(marked.split()):
            return None  # most messages: none of the words any class needs, so no pattern runs
        whole, sentences = words_and_sentences(marked)
        padded = f" {whole} "
        return (self.own_phrase_in(padded) or whole_message_opt_out(padded)
                or next((request for request in map(request_in, sentences) if request), None)
                or maybe_opt_out(padded))

    def own_phrase_in(self, padded: str) -> ConsentMatch | None:
        """Clear: one of the rules file's phrases, courtesy words around it."""
        match = self.own.fullmatch(padded) if self.own else None
        return ConsentMatch(Revocation.CLEAR, "rules file", match["core"]) if match else None


CONSENT = Consent()


def own_phrase_of(words: str) -> str | None:
    """A normalized phrase without the courtesy words around it; None when nothing else is left."""
    match = _compiled(_AROUND).fullmatch(f" {words} ")
    return match["core"] if match else None


def whole_message_opt_out(padded: str) -> ConsentMatch | None:
    """Clear: opt-out keywords (English, Spanish, French) and courtesy words, nothing else."""
    match = _compiled(_WHOLE_MESSAGE).fullmatch(padded)
    return ConsentMatch(Revocation.CLEAR, _KEYWORD_KINDS[match["keyword"]], match["keyword"]) if match else None


def request_in(sentence: str) -> ConsentMatch | None:
    """Clear: a request for no more messages in this sentence (a refusal of texting, a removal, an opt-out)."""
    padded = f" {sentence} "
    request = _compiled(_REMOVAL).search(padded) or _compiled(_OPT_OUT_REQUEST).search(padded)
    if request:
        return ConsentMatch(Revocation.CLEAR, "phrase", request["request"])
    refusal = _compiled(_REFUSAL).search(padded)
    if refusal is None or not is_request(padded[:refusal.start("refusal")].split(), refusal["refusal"]):
        return None
    return ConsentMatch(Revocation.CLEAR, "phrase", padded[refusal.start("refusal"):refusal.end("texting")])


def is_request(before: list[str], refusal: str) -> bool:
    """Does a refusal ask, given the words before it? "I never text" tells; "can you stop texting me" asks."""
    named = _SUBJECTS.intersection(before)
    return refusal in _WRITERS or not named or not _REQUEST_LEADS.isdisjoint(before)


def maybe_opt_out(padded: str) -> ConsentMatch | None:
    """Maybe: stop, unsubscribe, unsub, optout, opt out or revoke as a whole word, `stop` not as a visit,
    a place, or after a negation."""
    match = _compiled(_MAYBE).search(padded)
    return ConsentMatch(Revocation.MAYBE, "word", match["word"]) if match else None


def consent_asked_since(history: Transaction, message: InboundMessage, since: float) -> bool:
    """Was the consent question sent to this sender from this number of ours since `since`? Read only for a
    message that may be an opt-out; messages_by_sender (sender, outcome, time) seeks straight to it."""
    return history.execute(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE from_number IN (?, ?) AND outcome = 'consent_check'"
        " AND received_at >= ? AND to_number IN (?, ?))",
        (*number_forms(message.sender), history.timestamp(since), *number_forms(message.recipient))).fetchone()[0]


# -- Reply rules: RULES_FILE --------------------------------------------------

RULES_POLL = 1.0  # seconds between looks at RULES_FILE: a change is in force within 2 s
DEFAULT_WITHIN = 30 * 60  # seconds: `after` without `within` looks this far back
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_OPENING = re.compile(r"([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")
_PERIOD = re.compile(r"([1-9]\d*)([smhd])")
_NOT_DIGIT = re.compile(r"\D")
PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclasses.dataclass(frozen=True)
class Hours:
    """Office hours: open minutes per weekday in one time zone, and whole days closed."""

    timezone: zoneinfo.ZoneInfo
    week: tuple[tuple[tuple[int, int], ...], ...]  # Monday first: (start, end) minutes after midnight
    closed_dates: frozenset[date]

    def are_open(self, when: float) -> bool:
        """Is it open at unix time `when` (the end of a range is closed)?"""
        local = datetime.fromtimestamp(when, self.timezone)
        if local.date() in self.closed_dates:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.week[local.weekday()])


@dataclasses.dataclass(frozen=True)
class Language:
    """A [[language]]: its own answers to the compliance families (None: the setting's text)."""

    name: str
    texts: Mapping[Keyword, str | None]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One [[rule]]: conditions that must all hold, and the reply."""

    name: str
    reply: str
    keywords: frozenset[str] = frozenset()  # normalized; empty: any text
    pattern: re.Pattern[str] | None = None
    when: str | None = None                 # "open" or "closed"
    once_per: int | None = None             # seconds
    first_message: bool | None = None
    to: frozenset[str] = frozenset()        # number keys; empty: any of ours
    from_prefixes: tuple[str, ...] = ()     # digits
    media: bool | None = None
    forward: bool = True
    after: frozenset[str] = frozenset()     # names of rules: the sender's previous message matched one ...
    within: int = DEFAULT_WITHIN            # ... at most this many seconds before this one

    def holds_for(self, message: InboundMessage, hours: Hours | None, now: float) -> bool:
        """The conditions that need no database (Rules.first_match has already matched the keywords)."""
        if self.to and number_key(message.recipient) not in self.to:
            return False
        if self.from_prefixes and not _NOT_DIGIT.sub("", message.sender).startswith(self.from_prefixes):
            return False
        if self.media is not None and self.media != (message.type == "mms" and bool(message.media_urls)):
            return False
        if self.when is not None and hours.are_open(now) != (self.when == "open"):
            return False
        return self.pattern is None or self.pattern.search(message.text) is not None

    def allowed_by(self, history: Transaction, message: InboundMessage, now: float, state: MessageState) -> bool:
        """The conditions decided from stored messages, so that they hold across processes (`after`: from
        the message's read, which fetched the sender's previous message when any rule has `after`)."""
        if self.after and not (state.previous_rule in self.after
                               and history.moment(state.previous_at).timestamp() >= now - self.within):
            return False
        if self.first_message is not None and self.first_message == has_earlier_message(history, message):
            return False
        return self.once_per is None or not rule_matched_since(history, message, self.name, now - self.once_per)


@dataclasses.dataclass(frozen=True)
class Rules:
    """A parsed rules file: the compliance words of every language, how opt-outs in other words are
    read (None: OPT_OUT_MATCH=exact), the rules in file order, the hours."""

    words: Mapping[str, tuple[Keyword, Language | None]]
    consent: Consent | None = CONSENT
    rules: tuple[Rule, ...] = ()
    hours: Hours | None = None
    by_keyword: Mapping[str, tuple[Rule, ...]] = dataclasses.field(default_factory=dict)
    without_keywords: tuple[Rule, ...] = ()
    source: bytes = b""
    longest_within: int = 0  # seconds: how far back the rules with `after` look (0: none has it)

    def keyword_of(self, words: str, opted_out: bool) -> tuple[Keyword | None, Language | None]:
        """The compliance family of a normalized text, and the language whose word it is (None: built in).
        YES opts in only a sender who has opted out; from anyone else it answers a question ("Reply YES")."""
        if words in OPT_IN_WHEN_OPTED_OUT and not opted_out:
            return None, None
        return self.words.get(words, (None, None))

    def opt_out_language(self, keyword: str) -> Language | None:
        """The language whose opt-out word this is ("alto" listed by a [[language]]), for its stop_text."""
        family, language = self.words.get(keyword, (None, None))
        return language if family is Keyword.OPT_OUT else None

    def first_match(self, history: Transaction, message: InboundMessage, words: str, now: float,
                    state: MessageState) -> Rule | None:
        """The first rule, in file order, whose conditions all hold for the message."""
        for rule in self.by_keyword.get(words, self.without_keywords):
            if rule.holds_for(message, self.hours, now) and rule.allowed_by(history, message, now, state):
                return rule
        return None

    def previous_since(self, now: float) -> float | None:
        """How far back a message's read looks for the sender's previous message (None: no rule has `after`)."""
        return now - self.longest_within if self.longest_within else None


def has_earlier_message(history: Transaction, message: InboundMessage) -> bool:
    """Is another message from this sender to this number of ours stored (a rule's first_message)?"""
    return history.execute(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE from_number IN (?, ?) AND to_number IN (?, ?)"
        " AND message_uuid <> ?)",
        (*number_forms(message.sender), *number_forms(message.recipient), message.message_uuid)).fetchone()[0]


def rule_matched_since(history: Transaction, message: InboundMessage, rule: str, since: float) -> bool:
    """Did this rule answer this sender on this number of ours since `since` (a rule's once_per)?"""
    # A matched rule's outcome is replied or no_reply: written out, so that messages_by_sender seeks.
    return history.execute(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE from_number IN (?, ?) AND outcome IN ('replied', 'no_reply')"
        " AND received_at >= ? AND rule = ? AND to_number IN (?, ?) AND message_uuid <> ?)",
        (*number_forms(message.sender), history.timestamp(since), rule, *number_forms(message.recipient),
         message.message_uuid)).fetchone()[0]


BUILT_IN_WORDS = {word: (family, None) for family, words in (
    (Keyword.OPT_OUT, OPT_OUT_WORDS), (Keyword.OPT_IN, OPT_IN_WORDS), (Keyword.HELP, HELP_WORDS)) for word in words}
NO_RULES = Rules(BUILT_IN_WORDS)
FAMILY_NAMES = {Keyword.OPT_OUT: "opt_out", Keyword.OPT_IN: "opt_in", Keyword.HELP: "help"}


def load_rules(path: str, our_numbers: Iterable[str], *, phrases: bool = True) -> Rules:
    """The rules in RULES_FILE (none when it is empty); ConfigError with one line per problem.
    `phrases`: OPT_OUT_MATCH=phrases (opt-outs in other words are read, and a rule may not take their words)."""
    if not path:
        return NO_RULES if phrases else dataclasses.replace(NO_RULES, consent=None)
    try:
        source = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError([f"RULES_FILE {path}: cannot read it: {error.strerror}"]) from None
    return parse_rules(source, path, frozenset(our_numbers), phrases=phrases)


def parse_rules(source: bytes, path: str, our_numbers: frozenset[str], *, phrases: bool = True) -> Rules:
    """Parse and check a whole rules file; every problem is collected before ConfigError is raised."""
    try:
        document = tomllib.loads(source.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"RULES_FILE {path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"RULES_FILE {path}: invalid TOML: {error}"]) from None
    problems = RuleProblems(path)
    top = problems.known_keys(document, "the file", {"hours": dict, "language": list, "consent": dict, "rule": list})
    hours = parse_hours(top["hours"], problems) if "hours" in top else None
    languages = [parse_language(index, table, problems) for index, table in problems.tables(top, "language")]
    words = compliance_words(languages, top.get("language", []), problems, phrases)
    consent = parse_consent(top.get("consent", {}), problems, words) if phrases else None
    if not phrases:  # OPT_OUT_MATCH=exact reads no [consent], but a file is valid whatever the setting
        parse_consent(top.get("consent", {}), problems, words)
    rules = [parse_rule(index, table, problems, "hours" in top, words, consent, our_numbers)
             for index, table in problems.tables(top, "rule")]
    problems.check_unique("language", [language.name for language in languages])
    problems.check_unique("rule", [rule.name for rule in rules])
    names = {rule.name for rule in rules}
    for index, rule in enumerate(rules, 1):
        for unknown in sorted(rule.after - names):
            problems.add(_place("rule", index, rule.name), f'after: no rule is named "{unknown}"')
    problems.raise_if_any()
    return index_rules(tuple(rules), hours, words, consent, source)


def index_rules(rules: tuple[Rule, ...], hours: Hours | None, words: Mapping[str, tuple[Keyword, Language | None]],
                consent: Consent | None, source: bytes) -> Rules:
    """Rules, with the candidates for each keyword worked out once: a message tries only those."""
    without_keywords = tuple(rule for rule in rules if not rule.keywords)
    keywords = {word for rule in rules for word in rule.keywords}
    by_keyword = {word: tuple(rule for rule in rules if not rule.keywords or word in rule.keywords)
                  for word in keywords}
    longest_within = max((rule.within for rule in rules if rule.after), default=0)
    return Rules(words, consent, rules, hours, by_keyword, without_keywords, source, longest_within)


class RuleProblems:
    """The problems found in a rules file, each a line naming the file and the place."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, place: str, problem: str) -> None:
        self.lines.append(f"RULES_FILE {self.path}: {place}: {problem}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)

    def known_keys(self, table: Mapping[str, object], place: str, types: Mapping[str, type | tuple]) -> dict:
        """The table's keys of known name and type; a problem for each other key."""
        known = {}
        for key, value in table.items():
            if key not in types:
                self.add(place, f'unknown key "{key}"')
            elif not isinstance(value, types[key]):
                self.add(place, f"{key} must be {_TYPE_NAMES[types[key]]}")
            else:
                known[key] = value
        return known

    def tables(self, top: Mapping[str, object], kind: str) -> Iterator[tuple[int, dict]]:
        """The [[kind]] tables with their position from 1."""
        for index, table in enumerate(top.get(kind, []), 1):
            if isinstance(table, dict):
                yield index, table
            else:
                self.add(f"{kind} {index}", f"expected a table: write [[{kind}]]")

    def parsed(self, place: str, key: str, parse: Callable[[Any], Any], value: object) -> Any:
        """parse(value), or None with a problem naming the key."""
        try:
            return parse(value)
        except ValueError as error:
            self.add(place, f"{key}: {error}")
            return None

    def check_unique(self, kind: str, names: list[str]) -> None:
        for name in sorted({name for name in names if names.count(name) > 1}):
            self.add(kind, f'two {kind}s are named "{name}"')


_TYPE_NAMES = {str: "a string", bool: "true or false", list: "a list", dict: "a table", (str, list): "a string or a list"}


def _strings(value: list) -> list[str]:
    if not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings")
    return value


def _place(kind: str, index: int, name: object) -> str:
    return f'{kind} {index} ("{name}")' if isinstance(name, str) and name else f"{kind} {index}"


def parse_hours(table: dict, problems: RuleProblems) -> Hours | None:
    """[hours]: the time zone, the open ranges of each weekday, the closed dates."""
    place = "[hours]"
    day_keys = {key: (str, list) for key in [*DAYS, *(f"{a}-{b}" for i, a in enumerate(DAYS) for b in DAYS[i + 1:])]}
    fields = problems.known_keys(table, place, {"timezone": str, "closed_dates": list, **day_keys})
    if "timezone" not in table:
        problems.add(place, "timezone is required (an IANA name such as America/New_York)")
    timezone = problems.parsed(place, "timezone", _timezone, fields["timezone"]) if "timezone" in fields else None
    week: list[tuple[tuple[int, int], ...] | None] = [None] * 7
    for key, value in fields.items():
        if key in ("timezone", "closed_dates"):
            continue
        ranges = problems.parsed(place, key, _openings, value)
        first, _, last = key.partition("-")
        for day in range(DAYS.index(first), DAYS.index(last or first) + 1):
            if week[day] is not None:
                problems.add(place, f"{DAYS[day]} is given twice")
            week[day] = ranges or ()
    closed = problems.parsed(place, "closed_dates", _dates, fields.get("closed_dates", []))
    if timezone is None or closed is None:
        return None
    return Hours(timezone, tuple(day or () for day in week), closed)


def _timezone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown time zone "{name}"') from None


def _openings(value: str | list) -> tuple[tuple[int, int], ...]:
    """'09:00-17:00' or a list of them, as minutes after midnight."""
    ranges = []
    for item in [value] if isinstance(value, str) else value:
        match = _OPENING.fullmatch(item) if isinstance(item, str) else None
        if not match:
            raise ValueError(f'{item!r} is not "HH:MM-HH:MM"')
        start_hour, start_minute, end_hour, end_minute = map(int, match.groups())
        start, end = start_hour * 60 + start_minute, end_hour * 60 + end_minute
        if start >= 24 * 60 or end > 24 * 60 or end <= start:
            raise ValueError(f'"{item}": the end must be after the start, at most 24:00')
        ranges.append((start, end))
    return tuple(ranges)


def _dates(value: list) -> frozenset[date]:
    dates = set()
    for item in value:
        if isinstance(item, date) and not isinstance(item, datetime):
            dates.add(item)
            continue
        try:
            dates.add(date.fromisoformat(item))
        except (TypeError, ValueError):
            raise ValueError(f"{item!r} is not a date (2026-12-25)") from None
    return frozenset(dates)


def parse_language(index: int, table: dict, problems: RuleProblems) -> Language:
    """One [[language]]: its name and answers (its words are gathered by compliance_words)."""
    place = _place("language", index, table.get("name"))
    fields = problems.known_keys(table, place, {
        "name": str, "opt_out": list, "opt_in": list, "help": list,
        "stop_text": str, "start_text": str, "help_text": str})
    if not fields.get("name"):
        problems.add(place, "name is required")
    return Language(fields.get("name") or f"language {index}", {
        Keyword.OPT_OUT: fields.get("stop_text"), Keyword.OPT_IN: fields.get("start_text"),
        Keyword.HELP: fields.get("help_text")})


def compliance_words(languages: list[Language], tables: list, problems: RuleProblems, phrases: bool
                     ) -> dict[str, tuple[Keyword, Language | None]]:
    """Every compliance word, built-in and per language; a word may belong to one family of one language.
    With `phrases`, an opt-out in other words (ALTO) may be a language's opt-out word, and nothing else."""
    words = dict(BUILT_IN_WORDS)
    for index, (language, table) in enumerate(zip(languages, tables), 1):
        place = _place("language", index, language.name)
        for family, key in FAMILY_NAMES.items():
            for word in problems.parsed(place, key, _strings, table.get(key, [])) or []:
                normalized = normalize_keyword(word)
                owner = words.get(normalized)
                opt_out = CONSENT.of(word) if phrases and family is not Keyword.OPT_OUT else None
                if not normalized:
                    problems.add(place, f"{key}: {word!r} is empty once normalized")
                elif owner not in (None, (family, language)):
                    problems.add(place, f'{key}: "{word}" is already {_word_owner(*owner)}')
                elif opt_out is not None and opt_out.revocation is Revocation.CLEAR:
                    problems.add(place, f'{key}: "{word}" is an opt-out ({opt_out}); list it under opt_out')
                else:
                    words[normalized] = (family, language)
    return words


def _word_owner(family: Keyword, language: Language | None) -> str:
    kind = FAMILY_NAMES[family].replace("_", "-")
    if language is None:
        return f"a built-in {kind} word"
    return f'{"an" if kind.startswith("o") else "a"} {kind} word of language "{language.name}"'


def parse_consent(table: dict, problems: RuleProblems, words: Mapping[str, tuple[Keyword, Language | None]]
                  ) -> Consent:
    """[consent]: opt_out, the file's own words and phrases that opt out like STOP, each a whole message
    (courtesy words around it allowed), compared as the consent classes compare messages."""
    place = "[consent]"
    fields = problems.known_keys(table, place, {"opt_out": list})
    answered = {own_phrase_of(consent_words(word)[0]): owner for word, owner in words.items()
                if owner[0] is not Keyword.OPT_OUT}  # opt-in and help words: a phrase cannot be one
    phrases = set()
    for phrase in problems.parsed(place, "opt_out", _strings, fields.get("opt_out", [])) or []:
        whole = consent_words(phrase)[0]
        core = own_phrase_of(whole)
        if not whole:
            problems.add(place, f"opt_out: {phrase!r} is empty once normalized")
        elif core is None:
            problems.add(place, f'opt_out: "{phrase}" is only courtesy words ({", ".join(COURTESY_WORDS[:4])}, ...),'
                                " which may stand around any message")
        elif core in answered:
            problems.add(place, f'opt_out: "{phrase}" is {_word_owner(*answered[core])}')
        else:
            phrases.add(core)
    return Consent.with_phrases(phrases)


def parse_rule(index: int, table: dict, problems: RuleProblems, has_hours: bool,
               words: Mapping[str, tuple[Keyword, Language | None]], consent: Consent | None,
               our_numbers: frozenset[str]) -> Rule:
    """One [[rule]], checked against the file's hours, compliance words and opt-outs, and PLIVO_NUMBER."""
    place = _place("rule", index, table.get("name"))
    fields = problems.known_keys(table, place, {
        "name": str, "keywords": list, "pattern": str, "when": str, "once_per": str, "first_message": bool,
        "to": list, "from": list, "media": bool, "forward": bool, "after": list, "within": str, "reply": str})
    if "reply" not in table:
        problems.add(place, 'reply is required ("" answers nothing)')
    parsers = {
        "keywords": lambda value: _rule_keywords(value, words, consent),
        "pattern": _pattern,
        "when": lambda value: _when(value, has_hours),
        "once_per": period_seconds,
        "to": lambda value: _our_numbers(value, our_numbers),
        "from": _prefixes,
        "after": _rule_names,
        "within": period_seconds,
        "reply": _reply_template,
    }
    parsed = {key: problems.parsed(place, key, parse, fields[key]) for key, parse in parsers.items() if key in fields}
    if "within" in fields and "after" not in fields:
        problems.add(place, "within needs after (the rules whose answer this one follows)")
    return Rule(
        name=fields.get("name") or f"rule {index}", reply=parsed.get("reply") or "",
        keywords=parsed.get("keywords") or frozenset(), pattern=parsed.get("pattern"), when=parsed.get("when"),
        once_per=parsed.get("once_per"), first_message=fields.get("first_message"),
        to=parsed.get("to") or frozenset(), from_prefixes=parsed.get("from") or (),
        media=fields.get("media"), forward=fields.get("forward", True), after=parsed.get("after") or frozenset(),
        within=parsed.get("within") or DEFAULT_WITHIN)


def _rule_keywords(value: list, words: Mapping[str, tuple[Keyword, Language | None]],
                   consent: Consent | None) -> frozenset[str]:
    """A rule's keywords, normalized. Not a compliance word (YES aside: it answers a question from a
    subscriber), nor, with OPT_OUT_MATCH=phrases, a text the consent classes answer before any rule."""
    keywords = set()
    for word in _strings(value):
        normalized = normalize_keyword(word)
        if not normalized:
            raise ValueError(f"{word!r} is empty once normalized")
        if normalized in words and normalized not in OPT_IN_WHEN_OPTED_OUT:
            raise ValueError(f'"{word}" is {_word_owner(*words[normalized])}: compliance words cannot be rules')
        opt_out = consent.of(word) if consent else None
        if opt_out is not None and opt_out.revocation is Revocation.CLEAR:
            raise ValueError(f'"{word}" is an opt-out ({opt_out}): opt-outs cannot be rules')
        if opt_out is not None:
            raise ValueError(f'"{word}" may be an opt-out ({opt_out}): it would get the consent question'
                             " before this rule; choose another keyword")
        keywords.add(normalized)
    return frozenset(keywords)


def _rule_names(value: list) -> frozenset[str]:
    names = frozenset(_strings(value))
    if not names:
        raise ValueError("name at least one rule")
    return names


def _pattern(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as error:
        raise ValueError(f"invalid regular expression: {error}") from None


def _when(value: str, has_hours: bool) -> str:
    if value not in ("open", "closed"):
        raise ValueError(f'"{value}" is not "open" or "closed"')
    if not has_hours:
        raise ValueError("needs [hours] (and its timezone)")
    return value


def period_seconds(value: str) -> int:
    """A period such as 90s, 30m, 12h or 7d in seconds (once_per, within, --since); ValueError if it is not one."""
    match = _PERIOD.fullmatch(value)
    if not match:
        raise ValueError(f'"{value}" is not a period such as 90s, 30m, 12h or 7d')
    return int(match[1]) * PERIOD_SECONDS[match[2]]


def _our_numbers(value: list, our_numbers: frozenset[str]) -> frozenset[str]:
    numbers = frozenset(number_key(number) for number in _strings(value))
    unknown = sorted(numbers - our_numbers)
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in PLIVO_NUMBER")
    return numbers


def _prefixes(value: list) -> tuple[str, ...]:
    prefixes = tuple(number_key(prefix) for prefix in _strings(value))
    for prefix in prefixes:
        if not prefix.isdigit():
            raise ValueError(f'"{prefix}" is not the start of a phone number (digits, optional +)')
    return prefixes


class RulesFile:
    """The rules in force, reloaded when RULES_FILE changes.

    A thread in each process looks at the file every RULES_POLL seconds (its size,
    time and inode) and, when it changed, parses it again: a valid file replaces the
    rules at once ("rules reloaded"), an invalid, deleted or unreadable one is refused
    with one ERROR line and the rules in force stay. The thread is started again after
    a fork, on first use, so every gunicorn worker watches the file itself.
    """

    def __init__(self, path: str, our_numbers: Iterable[str], rules: Rules, *, phrases: bool = True) -> None:
        self.path = path
        self.our_numbers = frozenset(our_numbers)
        self.phrases = phrases  # OPT_OUT_MATCH=phrases
        self.rules = rules
        self._seen = self._signature()
        self._watching_pid: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.metrics: Any = None  # the metrics surface's counters (METRICS_TOKEN): it counts reloads

    def current(self) -> Rules:
        """The rules in force; starts this process's watcher on first use."""
        if self.path and self._watching_pid != os.getpid():
            self._watch()
        return self.rules

    def check(self) -> None:
        """Reload the file if it changed since the last look."""
        seen = self._signature()
        if seen == self._seen:
            return
        self._seen = seen
        try:
            rules = load_rules(self.path, self.our_numbers, phrases=self.phrases)
        except ConfigError as error:
            log.error("rules not reloaded, the %d rules in force stay: %s", len(self.rules.rules),
                      "; ".join(error.problems))
            if self.metrics:
                self.metrics.rules_reloaded("refused")
            return
        if rules.source != self.rules.source:
            self.rules = rules
            log.info("rules reloaded", extra={"fields": {"rules": len(rules.rules), "pid": os.getpid()}})
            if self.metrics:
                self.metrics.rules_reloaded("reloaded")

    def stop(self) -> None:
        self._stopping.set()

    def _watch(self) -> None:
        with self._lock:
            if self._watching_pid == os.getpid():
                return
            self._watching_pid = os.getpid()
            self._stopping = threading.Event()  # a forked child's own
        self.check()  # a fork may have happened long after the parent loaded the file
        threading.Thread(target=self._poll, args=(self._stopping,), name="rules-watcher", daemon=True).start()

    def _poll(self, stopping: threading.Event) -> None:
        while not stopping.wait(RULES_POLL):
            try:
                self.check()
            except Exception:  # the watcher must outlive any surprise; the rules in force stay
                log.exception("rules watcher failure")

    def _signature(self) -> tuple[int, ...] | str:
        try:
            status = os.stat(self.path)
        except OSError as error:
            return error.strerror or "unreadable"
        return status.st_mtime_ns, status.st_size, status.st_ino, status.st_dev


# -- A person in the loop: FORWARD_TO -----------------------------------------

RELAY_WINDOW = 24 * 3600  # seconds: an owner's plain text goes to the customer last forwarded within this
_RELAY_TO = re.compile(r"@\+?(\d{3,20})(?: (.*))?", re.DOTALL)


class PersonInTheLoop:
    """Forwards customers' texts to the owners (FORWARD_TO) and relays the owners' answers to customers.

    A customer is any sender that is neither one of our numbers nor an owner. Each new
    message of a customer is forwarded, in the same answer, to every owner who has not
    opted out of the receiving number, at most REPLY_LIMIT of a customer's messages per
    REPLY_WINDOW. An owner's text goes to the customer it names (`@NUMBER text`), or to the
    one this number of ours last forwarded to that owner within 24 hours. Both are read
    from stored messages, so every worker and host agrees.
    """

    def __init__(self, settings: Settings) -> None:
        self.owners = settings.forward_to
        self.template = settings.forward_text
        self.limit, self.window = settings.reply_limit, settings.reply_window
        self.our_numbers = frozenset(settings.plivo_number)

    def is_owner(self, number: str) -> bool:
        return bool(self.owners) and number_key(number) in self.owners

    def forward(self, history: Transaction, message: InboundMessage, now: float, decision: Decision) -> Decision:
        """The decision with the forwards of a customer's message added (none for owners and our numbers)."""
        if (not self.owners or decision.outcome is Outcome.OWN_NUMBER or self.is_owner(message.sender)
                or (decision.rule is not None and not decision.rule.forward)
                or forwards_since(history, message.sender, now - self.window) >= self.limit):
            return decision
        opted_out = history.opted_out_of(self.owners, message.recipient)
        owners = tuple(owner for owner in self.owners if owner not in opted_out)
        text = clean_reply(with_media(render_reply(self.template, message), message.media_urls))
        if not owners or not text:
            return decision
        return decision._replace(forwarded_to=owners, forward_text=text)

    def relay(self, history: Transaction, message: InboundMessage, now: float, owner_opted_out: bool) -> Decision:
        """An owner's message: relayed to the customer it is for, or refused with a line to the owner."""
        addressed = _RELAY_TO.fullmatch(message.text.lstrip())
        if addressed:
            customer, text = addressed[1], addressed[2] or ""
        else:
            customer = last_conversation(history, message.recipient, message.sender, now - RELAY_WINDOW)
            text = message.text
            if customer is None:
                return self.refuse("no conversation in the last 24 hours; start with @number.", owner_opted_out)
        text = clean_reply(with_media(text, message.media_urls))
        if not text:
            return self.refuse(f"nothing to send to +{customer}.", owner_opted_out)
        if customer in self.our_numbers:
            return self.refuse(f"+{customer} is one of our own numbers.", owner_opted_out)
        if history.opted_out_of([customer], message.recipient):
            return self.refuse(f"+{customer} has opted out.", owner_opted_out)
        return Decision(Outcome.RELAYED, text, relayed_to=customer)

    @staticmethod
    def refuse(reason: str, owner_opted_out: bool) -> Decision:
        """Nothing relayed; the owner is told why (unless the owner has opted out of this number)."""
        return Decision(Outcome.NOT_RELAYED, None if owner_opted_out else f"Not sent: {reason}")


def forwards_since(history: Transaction, sender: str, since: float) -> int:
    """How many of this customer's messages were forwarded since `since` (the forward limit)."""
    return history.execute(
        "SELECT count(*) FROM messages WHERE from_number IN (?, ?) AND received_at >= ?"
        " AND forwarded_to IS NOT NULL", (*number_forms(sender), history.timestamp(since))).fetchone()[0]


def last_conversation(history: Transaction, recipient: str, owner: str, since: float) -> str | None:
    """The customer whose message this number of ours most recently forwarded to the owner, since `since`."""
    row = history.execute(
        "SELECT from_number FROM messages WHERE to_number IN (?, ?) AND received_at >= ?"
        " AND forwarded_to IS NOT NULL AND ',' || forwarded_to || ',' LIKE ? AND from_number IS NOT NULL"
        " ORDER BY received_at DESC LIMIT 1",
        (*number_forms(recipient), history.timestamp(since), f"%,{number_key(owner)},%")).fetchone()
    return row and number_key(row[0])


def with_media(text: str, media_urls: tuple[str, ...]) -> str:
    """A text with an MMS's media URLs on lines of their own after it."""
    return "\n".join(part for part in (text, *media_urls) if part)


# -- Deciding: what a new message gets ----------------------------------------

class Decision(NamedTuple):
    """What a new message gets: its outcome, the reply (None: no reply), the rule that matched,
    the opt-out change to record (Keyword.OPT_OUT or OPT_IN), what the consent classes read in
    it, and what a person in the loop adds. (A named tuple, as MessageState: one is made per
    message, and a frozen dataclass takes three times as long to make.)"""

    outcome: Outcome
    reply: str | None = None
    rule: Rule | None = None
    change: Keyword | None = None
    consent: ConsentMatch | None = None  # an opt-out in other words, or maybe one (OPT_OUT_MATCH=phrases)
    deferred: bool = False              # REPLY_MODE=api: the worker runs the reply function
    relayed_to: str | None = None       # an owner's relay: the customer the reply goes to
    forwarded_to: tuple[str, ...] = ()  # the owners the message is forwarded to
    forward_text: str | None = None

    def sms(self, sender: str) -> list[Outbound]:
        """The SMS this decision sends, in order: the reply (to the sender, or a relay's customer), the forwards."""
        sent = [Outbound("reply", self.relayed_to or sender, self.reply)] if self.reply or self.deferred else []
        return sent + [Outbound("forward", owner, self.forward_text) for owner in self.forwarded_to]


class Outbound(NamedTuple):
    """One SMS from the number that received a message: its kind ("reply" or "forward"), recipient, text."""

    kind: str
    dst: str
    text: str | None  # None: a deferred reply, for the worker's reply function


DUPLICATE = Decision(Outcome.DUPLICATE)
#: What Plivo's MessageIntent asks us to record (Plivo has answered the keyword itself).
INTENT_CHANGES = {"optout": Keyword.OPT_OUT, "optin": Keyword.OPT_IN, "help": None}
ReplyFunction = Callable[[InboundMessage], "str | None"]


class Decider:
    """What a new message gets (steps 7-9, consent, the rules, a person in the loop), decided from what
    the database says of it (`state`, read with the message) and from stored messages (`history`):
    never written. The webhook decides in the message's transaction, `try` in a read-only view."""

    def __init__(self, settings: Settings, reply: ReplyFunction) -> None:
        self.settings = settings
        self.reply = reply
        self.people = PersonInTheLoop(settings)
        self.our_numbers = frozenset(settings.plivo_number)

    def decide(self, history: Transaction, message: InboundMessage, now: float, rules: Rules,
               state: MessageState, *, defer_reply: bool = False) -> Decision:
        """What a new message gets, read from `state` and `history`, never written: its answer, its forwards."""
        decision = self.answer(history, message, now, rules, state, defer_reply)
        return self.people.forward(history, message, now, decision)

    def answer(self, history: Transaction, message: InboundMessage, now: float, rules: Rules, state: MessageState,
               defer_reply: bool) -> Decision:
        """Steps 7-9, consent and the rules.

        Plivo's MessageIntent, our own numbers and the compliance words (built-in and each
        language's, then a customer's opt-out in other words) come first. An owner's message
        (FORWARD_TO) is then relayed. A customer's meets the opt-out state and the reply limit,
        then, if it may be an opt-out, the consent question (once a day), then the first rule
        that matches, then the reply function (with defer_reply, the outbox worker runs it).
        """
        if message.intent in INTENT_CHANGES:  # Plivo has answered the keyword itself
            return Decision(Outcome.PLIVO_KEYWORD, change=INTENT_CHANGES[message.intent])
        if number_key(message.sender) in self.our_numbers:
            return Decision(Outcome.OWN_NUMBER)
        words = normalize_keyword(message.text)
        opted_out = state.opted_out
        family, language, consent = self.compliance_family(message, words, rules, opted_out)
        if family is Keyword.OPT_OUT:  # confirmed once only
            return Decision(Outcome.OPTED_OUT) if opted_out else self.compliance_answer(Outcome.STOPPED, family,
                                                                                        language, consent)
        if family is Keyword.OPT_IN:
            return self.compliance_answer(Outcome.STARTED, family, language)
        if self.people.is_owner(message.sender):  # never the rules, the reply function or the limit
            if family is Keyword.HELP:
                return self.compliance_answer(Outcome.HELPED, family, language)
            return self.people.relay(history, message, now, opted_out)
        if opted_out and family is not Keyword.HELP:
            return Decision(Outcome.OPTED_OUT)
        if state.recent_replies >= self.settings.reply_limit:
            return Decision(Outcome.RATE_LIMITED)
        if family is Keyword.HELP:
            return self.compliance_answer(Outcome.HELPED, family, language)
        if consent is not None and not consent_asked_since(history, message, now - CONSENT_CHECK_PERIOD):
            return self.consent_question(message, consent)
        rule = rules.first_match(history, message, words, now, state)
        if rule is not None:
            reply = clean_reply(render_reply(rule.reply, message))
            return Decision(Outcome.REPLIED if reply else Outcome.NO_REPLY, reply, rule)
        if defer_reply:
            return Decision(Outcome.REPLIED, deferred=True)
        reply = clean_reply(self.reply(message))  # in xml mode inside the transaction: it must be quick
        return Decision(Outcome.REPLIED, reply) if reply else Decision(Outcome.NO_REPLY)

    def compliance_family(self, message: InboundMessage, words: str, rules: Rules, opted_out: bool
                          ) -> tuple[Keyword | None, Language | None, ConsentMatch | None]:
        """A message's compliance family and language (step 7's words), and what the consent classes read.

        They read a customer's message no family matched, with OPT_OUT_MATCH=phrases: a clear
        opt-out is then the opt-out family (in the language that lists its word, if one does);
        maybe one comes back for the consent question. Not read: an opted-out sender's message
        (it gets nothing, whatever it says) and an owner's, which is a text for a customer.
        """
        family, language = rules.keyword_of(words, opted_out)
        if (family is not None or opted_out or rules.consent is None
                or self.people.is_owner(message.sender)):
            return family, language, None
        consent = rules.consent.of(message.text)
        if consent is not None and consent.revocation is Revocation.CLEAR:
            return Keyword.OPT_OUT, rules.opt_out_language(consent.words), consent
        return None, None, consent

    def consent_question(self, message: InboundMessage, consent: ConsentMatch) -> Decision:
        """CONSENT_CHECK_TEXT, for a message that may be an opt-out: an automatic reply (it counts toward
        the reply limit), in place of any rule's."""
        return Decision(Outcome.CONSENT_CHECK, clean_reply(render_reply(self.settings.consent_check_text, message)),
                        consent=consent)

    def compliance_answer(self, outcome: Outcome, family: Keyword, language: Language | None,
                          consent: ConsentMatch | None = None) -> Decision:
        """A compliance family's answer: the language's own text if it has one, else the setting's."""
        text = language.texts[family] if language else None
        if text is None:
            text = {Keyword.OPT_OUT: self.settings.stop_text, Keyword.OPT_IN: self.settings.start_text,
                    Keyword.HELP: self.settings.help_text}[family]
        return Decision(outcome, clean_reply(text), change=None if family is Keyword.HELP else family,
                        consent=consent)


# -- Application: the WSGI app, the webhooks' steps in order ------------------

#: Every answer: a browser takes a body for what its Content-Type says, never for what it looks like.
NOSNIFF = ("X-Content-Type-Options", "nosniff")
#: Answers under PRIVATE_PREFIXES: kept by no cache; and behind https (PUBLIC_URL), HTTPS-only for a year.
PRIVATE_HEADERS = (("Cache-Control", "no-store"),)
HSTS_HEADERS = (("Strict-Transport-Security", "max-age=31536000"),)
Routes = dict[str, dict[str, Callable[[WSGIEnvironment], Response]]]  # path -> method -> handler


class SmsResponder:
    """The WSGI application: the health check and Plivo's two webhooks, and the routes the surfaces
    beside the core add (the API, the inbox, metrics: see Surfaces).

    `metrics` is None, or the metrics surface's counters: the core calls webhook(outcome, seconds),
    sent(status), rules_reloaded(result) and api_request(status) on them. `text_makers` are what the
    surfaces register to make, when the worker sends it, the text of an outbox row that is stored
    masked (text_source "NAME:KEY": a verification code); see the Outbox.
    """

    def __init__(self, settings: Settings, store: Store, reply: ReplyFunction, rules: RulesFile) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules
        self.decider = Decider(settings, reply)
        self.metrics: Any = None
        self.text_makers: dict[str, TextMaker] = {}
        self.token = settings.plivo_auth_token.encode("utf-8")
        self.our_numbers = frozenset(settings.plivo_number)
        self.signature_checks = [headers for headers in (V3_HEADERS, V2_HEADERS)
                                 if headers.version in settings.signature_versions]
        self.private_headers = PRIVATE_HEADERS + (HSTS_HEADERS if settings.public_url.startswith("https://") else ())
        self.routes: Routes = {}
        self.prefixes: list[tuple[str, dict]] = []
        self.add_routes({HEALTH_PATH: {"GET": self.handle_health, "HEAD": self.handle_health},
                         WEBHOOK_PATH: {"POST": self.handle_messaging},
                         STATUS_PATH: {"POST": self.handle_status}})

    @property
    def reply(self) -> ReplyFunction:
        """The reply function (create_app's reply=): the decider runs it, or the outbox worker in REPLY_MODE=api."""
        return self.decider.reply

    @reply.setter
    def reply(self, reply: ReplyFunction) -> None:
        self.decider.reply = reply

    def add_routes(self, routes: Routes) -> None:
        """Serve these routes too; a path that ends in "/" serves every path below it (/api/messages/ID)."""
        self.routes.update(routes)
        self.prefixes = [(path, methods) for path, methods in self.routes.items() if path.endswith("/")]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        try:
            response = self.dispatch(path, environ)
        except HTTPError as error:
            response = error.response()
        except StoreUnavailable as error:
            log.error("database unavailable: %s", error)
            response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"database unavailable\n", TEXT_CONTENT_TYPE,
                                log_fields={"outcome": Outcome.FAILED.value})
        except Exception:
            # The transaction has rolled back, so Plivo's retry of this message is processed afresh.
            log.exception("unexpected failure handling %s", path)
            response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", TEXT_CONTENT_TYPE,
                                log_fields={"outcome": Outcome.FAILED.value})
        if path in (WEBHOOK_PATH, STATUS_PATH):
            self.log_webhook(response, started)
        elif path.startswith(API_PREFIX):
            log_api_request(environ, response, started)
            if self.metrics:
                self.metrics.api_request(response.status.value)
        headers = [("Content-Length", str(len(response.body))), *response.headers, NOSNIFF]
        if path.startswith(PRIVATE_PREFIXES):
            headers += self.private_headers
        if response.status != HTTPStatus.NO_CONTENT:  # RFC 9110 15.3.5: a 204 has no content, nor a type
            headers.insert(0, ("Content-Type", response.content_type))
        start_response(STATUS_LINES[response.status], headers)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [response.body]

    def close(self) -> None:
        """Stop watching the rules file and close the database's idle connections."""
        self.rules.stop()
        self.store.close()

    def dispatch(self, path: str, environ: WSGIEnvironment) -> Response:
        """Find the handler for the path and method: 404 and 405 (with Allow) otherwise."""
        methods = self.routes.get(path) or next(
            (methods for prefix, methods in self.prefixes if path.startswith(prefix) and path != prefix), None)
        error = ApiError if path.startswith(API_PREFIX) else HTTPError
        declared_length(environ, error)  # a length that is not a number: 400 before any handler reads a byte
        if methods is None:
            raise error(HTTPStatus.NOT_FOUND, "not found")
        handler = methods.get(environ["REQUEST_METHOD"])
        if handler is None:
            raise error(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", ", ".join(methods)),))
        return handler(environ)

    def handle_health(self, environ: WSGIEnvironment) -> Response:
        """200 when the database takes writes, 503 when it does not."""
        try:
            self.store.ping()
        except StoreUnavailable as error:
            log.warning("health check failed: %s", error)
            return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "error", "error": "database unavailable"})
        return json_response(HTTPStatus.OK, {"status": "ok"})

    def handle_messaging(self, environ: WSGIEnvironment) -> Response:
        """The webhook's steps, in order (README: What the webhook does); 4xx come back as HTTPError."""
        form, v2_nonce = self.signed_form(environ)                                  # 1-3
        message = parse_inbound(form, self.our_numbers)                             # 4
        log.debug("text of %s: %r", message.message_uuid, message.text)
        now = time.time()
        decision = self.store.run(lambda tx: self.record(tx, message, now, v2_nonce))  # 5-9
        return self.xml_answer(message, decision)

    def record(self, tx: Transaction, message: InboundMessage, now: float, v2_nonce: str | None) -> Decision:
        """Steps 5-9 in the message's transaction: one read, the decision, one write and its effects."""
        rules = self.rules.current()
        state = message_state(tx, message, now - self.settings.reply_window, v2_nonce, rules.previous_since(now))
        if state.duplicate:                                                         # 5
            return DUPLICATE
        if state.nonce_used:
            raise NonceReused(message.message_uuid)
        api = self.settings.reply_mode == "api"
        decision = self.decider.decide(tx, message, now, rules, state, defer_reply=api)  # 7-9, rules
        queued = decision.sms(message.sender) if api else []  # the worker sends them; the answer stays empty
        follow_up = decision.change is not None or bool(queued)
        if not add_message(tx, message, now, v2_nonce, decision, last=not follow_up):  # 5, 6
            return DUPLICATE
        if decision.change is Keyword.OPT_OUT:
            if tx.opt_out(message.sender, message.recipient, now):
                cancel_for_opt_out(tx, [(message.sender, message.recipient)])
        elif decision.change is Keyword.OPT_IN:
            tx.opt_in(message.sender, message.recipient)
        for sms in queued:
            queue_sms(tx, message, sms, now)
        return decision

    def handle_status(self, environ: WSGIEnvironment) -> Response:
        """A delivery report for a reply sent through the API: stored once, its outbox row moved forward."""
        form, v2_nonce = self.signed_form(environ)
        report = parse_report(form)
        self.store.run(lambda tx: add_delivery_report(tx, report, time.time(), v2_nonce))
        return Response(HTTPStatus.OK, b"", TEXT_CONTENT_TYPE, log_fields={
            "outcome": Outcome.REPORTED.value, "message_uuid": report.plivo_message_uuid, "status": report.status})

    def signed_form(self, environ: WSGIEnvironment) -> tuple[dict[str, list[str]], str | None]:
        """Steps 1-3 of both webhooks: size and type limits, signature, form. Also the V2 nonce to bind."""
        body = read_body(environ, self.settings.max_body_bytes)                    # 1
        form = parse_form(body)
        v2_nonce = self.verify_signature(environ, form)                             # 2
        if form is None:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "body is not UTF-8 form data")  # 3
        return form, v2_nonce

    def verify_signature(self, environ: WSGIEnvironment, form: Mapping[str, list[str]] | None) -> str | None:
        """Step 2: 403 unless an accepted signature version matches. Returns the V2 nonce to bind, if any."""
        if not self.settings.validate_signature:
            return None
        check_url_headers(environ)  # with PUBLIC_URL too: no proxy that works sends a malformed Host
        url = webhook_url(environ, self.settings.public_url)
        for headers in self.signature_checks:
            if signature_is_valid(headers, environ, url, form, self.token):
                break
        else:
            uuid_field = (form or {}).get("MessageUUID", [""])[0]
            raise HTTPError(HTTPStatus.FORBIDDEN, "invalid signature", url=url, message_uuid=uuid_field)
        if V2_HEADERS not in self.signature_checks:
            return None
        # A V2 signature does not cover the body: bind its nonce to this message even when V3 matched,
        # or its V2 headers could be replayed with another MessageUUID and another text.
        return environ.get(V2_HEADERS.nonce) or None

    def xml_answer(self, message: InboundMessage, decision: Decision) -> Response:
        """200 with Plivo XML sending, from our number, the reply and the forwards; or an empty Response.

        In REPLY_MODE=api they are in the outbox, so the answer is empty."""
        sms = decision.sms(message.sender) if self.settings.reply_mode == "xml" else []
        body = reply_xml(message.recipient, [(each.dst, each.text) for each in sms]) if sms else EMPTY_RESPONSE
        fields = {"outcome": decision.outcome.value, "message_uuid": message.message_uuid,
                  "sender": mask_number(message.sender)}
        if decision.rule:
            fields["rule"] = decision.rule.name
        if decision.consent:  # the kind of match only: its words are the message's text
            fields["consent"] = decision.consent.kind
        if decision.reply:
            fields["segments"] = segments_of(decision.reply)[0]
        if decision.forwarded_to:
            fields["forwarded"] = len(decision.forwarded_to)
        if decision.relayed_to:
            fields["relayed_to"] = mask_number(decision.relayed_to)
        return Response(HTTPStatus.OK, body, XML_CONTENT_TYPE, log_fields=fields)

    def log_webhook(self, response: Response, started: float) -> None:
        """The one INFO line per webhook: outcome, MessageUUID, masked sender, handling time (and its metrics)."""
        fields = {name: value for name, value in response.log_fields.items() if value not in ("", None)}
        seconds = time.perf_counter() - started
        fields["ms"] = round(seconds * 1000, 2)
        if self.metrics:
            self.metrics.webhook(fields["outcome"], seconds)
        write_line(logging.WARNING if response.status == HTTPStatus.FORBIDDEN else logging.INFO, "webhook", fields)


class NonceReused(HTTPError):
    """A V2 signature nonce arrived again with another MessageUUID: a replayed signature (403). Raised
    inside the transaction, which is then rolled back."""

    def __init__(self, message_uuid: str) -> None:
        super().__init__(HTTPStatus.FORBIDDEN, "V2 signature nonce already used for another message",
                         message_uuid=message_uuid)


# The one read a new message is decided from. Outcomes are written out, so that the index
# messages_by_sender (sender, outcome, time) seeks straight to the limited replies (automatic replies,
# HELP answers, consent questions), and (rules with `after`) to each outcome a customer's message can
# have, within the rules' longest `within`, however much the sender has sent before.
STATE_SQL = (
    "SELECT EXISTS (SELECT 1 FROM messages WHERE message_uuid = ?),"
    " EXISTS (SELECT 1 FROM messages WHERE v2_nonce = ? AND v2_nonce IS NOT NULL),"
    " EXISTS (SELECT 1 FROM opt_outs WHERE number_key = ? AND to_key = ?),"
    " (SELECT count(*) FROM messages WHERE from_number = ? AND outcome IN ('replied', 'helped', 'consent_check')"
    " AND received_at >= ?)")
STATE_AND_PREVIOUS_SQL = (
    STATE_SQL + ", previous.rule, previous.received_at FROM (SELECT 1) AS one LEFT JOIN (SELECT rule, received_at"
    " FROM messages WHERE from_number = ? AND outcome IN ('replied', 'no_reply', 'helped', 'started', 'stopped',"
    " 'opted_out', 'rate_limited', 'plivo_keyword', 'consent_check') AND received_at >= ? AND to_number IN (?, ?)"
    " ORDER BY received_at DESC LIMIT 1) AS previous ON TRUE")


def message_state(tx: Transaction, message: InboundMessage, since: float, v2_nonce: str | None,
                  previous_since: float | None = None) -> MessageState:
    """All a new message's decision reads, in one statement: is it stored already, is its V2 nonce bound
    to another message, has its sender opted out of this number, how many limited replies (REPLY_LIMIT)
    has the sender had since `since`; and, with `previous_since` (the rules have `after`), the rule and
    time of the sender's most recent earlier message to this number since then.

    On PostgreSQL one transaction per sender runs at a time (tx.lock), so that what the read finds is
    still true at the commit (two copies of a message, the reply limit, opt-outs)."""
    params = (message.message_uuid, v2_nonce, number_key(message.sender), number_key(message.recipient),
              message.sender, tx.timestamp(since))
    if previous_since is not None:
        params += (message.sender, tx.timestamp(previous_since), *number_forms(message.recipient))
    with tx.batch():
        tx.lock(number_key(message.sender))
        cursor = tx.execute(STATE_SQL if previous_since is None else STATE_AND_PREVIOUS_SQL, params)
    return MessageState(*cursor.fetchone())


def add_message(tx: Transaction, message: InboundMessage, received_at: float, v2_nonce: str | None,
                decision: Decision, *, last: bool = False) -> bool:
    """Store a new message with what was decided for it, in one statement; False if its MessageUUID is
    stored already (the database, not the read before, has the last word on duplicates). `last`: nothing
    more is written in this transaction, so PostgreSQL commits in the same round trip."""
    try:
        with tx.batch():
            cursor = tx.execute(
                "INSERT INTO messages (message_uuid, from_number, to_number, text, type, media_urls, received_at,"
                " v2_nonce, outcome, reply, rule, forwarded_to, relayed_to)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_uuid) DO NOTHING",
                (message.message_uuid, message.sender, message.recipient, message.text, message.type,
                 json.dumps(message.media_urls) if message.media_urls else "[]", tx.timestamp(received_at),
                 v2_nonce, decision.outcome.value, decision.reply, decision.rule and decision.rule.name,
                 ",".join(decision.forwarded_to) or None, decision.relayed_to))
            if last:
                tx.commit_early()
    except tx.unique_violation as error:
        if v2_nonce is None:
            raise
        raise NonceReused(message.message_uuid) from error
    return cursor.rowcount == 1


def log_api_request(environ: WSGIEnvironment, response: Response, started: float) -> None:
    """The one INFO line per API request: method, path, status, token name, recipient's last four digits."""
    fields = {"method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO", ""),
              "status": response.status.value, "token": environ.get("sms_responder.token"),
              "recipient": environ.get("sms_responder.recipient") and mask_number(environ["sms_responder.recipient"]),
              "ms": round((time.perf_counter() - started) * 1000, 2)}
    log.info("api", extra={"fields": {name: value for name, value in fields.items() if value not in ("", None)}})


def create_app(config: Mapping[str, str] | None = None, *, reply: ReplyFunction | None = None,
               **overrides: object) -> SmsResponder:
    """Build the WSGI app from `config` (default: the environment and .env) and keyword overrides.

    Overrides are settings by field name, e.g. create_app(plivo_number="14155550100",
    reply_limit=5); they are validated like environment values. `reply` takes the stored
    InboundMessage and returns the reply text or None; the default fills in REPLY_TEXT.
    """
    settings = settings_with(config, overrides)
    phrases = settings.opt_out_match == "phrases"
    rules = RulesFile(settings.rules_file, settings.plivo_number,
                      load_rules(settings.rules_file, settings.plivo_number, phrases=phrases), phrases=phrases)
    app = SmsResponder(settings, open_store(settings), reply or default_reply(settings), rules)
    absent = attach_surfaces(app)  # before anything is logged: a surface's setting may stop start-up
    rules.metrics = app.metrics
    configure_logging(settings.log_level, settings.log_format)
    warn_about_settings(settings)
    if absent:
        log.info("not installed: %s (the package %s is not beside this module): their routes answer 404",
                 ", ".join(absent), SURFACES_PACKAGE)
    if settings.rules_file:
        log.info("reply rules loaded", extra={"fields": {
            "rules": len(rules.rules.rules), "file": settings.rules_file, "pid": os.getpid()}})
    rules.current()  # start watching the file now, so that an idle worker notices changes too
    return app


def settings_with(config: Mapping[str, str] | None, overrides: Mapping[str, object]) -> Settings:
    """The settings of `config` (default: the environment and .env) with overrides by field name."""
    environ = dict(read_environment() if config is None else config)
    for name, value in overrides.items():
        if name not in {field.name for field in dataclasses.fields(Settings)}:
            raise TypeError(f"create_app() got an unknown setting {name!r}")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple, set, frozenset)):
            value = ",".join(map(str, value))
        environ[name.upper()] = str(value)
    return Settings.from_env(environ)


def warn_about_settings(settings: Settings) -> None:
    """One WARNING for each setting that is fine for a trial and wrong for production."""
    if settings.plivo_auth_token == PLACEHOLDER_AUTH_TOKEN:
        log.warning("PLIVO_AUTH_TOKEN is the placeholder from .env.example: real Plivo requests will get 403")
    if settings.validate_signature and not settings.public_url and "v2" in settings.signature_versions:
        log.warning("PUBLIC_URL is empty while V2 signatures are accepted: a V2 signature does not cover the body,"
                    " and the URL it is checked against then comes from the request's own headers (Host,"
                    " X-Forwarded-Host), so a V2 signature made for another URL could be replayed with any body;"
                    " set PUBLIC_URL in production (see README: Deploy)")
    if not settings.validate_signature:
        log.warning("VALIDATE_SIGNATURE=false: anyone who finds the URL can post messages; local experiments only")


def default_reply(settings: Settings) -> ReplyFunction:
    """The reply function without a program of one's own: REPLY_TEXT, filled in."""
    return functools.partial(render_reply, settings.reply_text)


_app: SmsResponder | None = None
_app_lock = threading.Lock()


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """WSGI entry point for gunicorn and uwsgi: built from the environment on the first request."""
    global _app
    if _app is None:
        with _app_lock:
            if _app is None:
                try:
                    _app = create_app()
                except ConfigError as error:
                    for problem in error.problems:
                        print(f"sms_responder: {problem}", file=sys.stderr)
                    start_response("500 Internal Server Error", [("Content-Type", TEXT_CONTENT_TYPE)])
                    return [b"service misconfigured; see its log\n"]
    return _app(environ, start_response)


# -- Surfaces: the package beside the core ------------------------------------
#
# What people and other systems use besides the webhook lives in a package beside this module, one
# module per surface (its docstring is the package's map). The core knows them by name only: it
# imports each when it builds the application or the command line, and asks it for its routes
# (attach(app) -> routes; a surface may also give the app what the core calls back, as metrics
# does) and its commands (add_commands(commands)). Copied alone, this module serves the webhook,
# and the routes of the absent surfaces answer 404.

SURFACES_PACKAGE = "sms_responder_surfaces"
SURFACES = ("operating", "api", "verification", "inbox", "metrics")  # in this order their commands are listed


@functools.cache
def installed_surfaces() -> tuple[tuple[ModuleType, ...], tuple[str, ...]]:
    """The surfaces' modules that are installed or beside this module, and the names of those that are not."""
    found, absent = [], []
    for name in SURFACES:
        try:
            found.append(importlib.import_module(f"{SURFACES_PACKAGE}.{name}"))
        except ModuleNotFoundError as error:
            if error.name not in (SURFACES_PACKAGE, f"{SURFACES_PACKAGE}.{name}"):
                raise  # a library the surface needs is missing: an error, not an absent surface
            absent.append(name)
    return tuple(found), tuple(absent)


def attach_surfaces(app: SmsResponder) -> tuple[str, ...]:
    """Add every installed surface's routes to the app; the names of the surfaces that are not installed."""
    surfaces, absent = installed_surfaces()
    for surface in surfaces:
        app.add_routes(surface.attach(app))
    return absent


# -- Outbox: sending through the Plivo REST API -------------------------------

#: Outbox statuses in the order a row moves through them; a report never moves a row back,
#: and a final status (3) is never replaced by another.
STATUS_RANK = {"scheduled": 0, "queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3,
               "cancelled": 3}
#: Plivo's delivery statuses, as outbox statuses (Plivo's docs also list "rejected"; "read" is WhatsApp's).
PLIVO_STATUSES = {"queued": "queued", "sent": "sent", "delivered": "delivered", "undelivered": "undelivered",
                  "failed": "failed", "rejected": "failed"}


@dataclasses.dataclass(frozen=True)
class OutboxRow:
    """An SMS claimed by a worker: to send from src to dst, unless the claim is lost."""

    id: int
    message_uuid: str | None  # None for an outbound message
    kind: str         # "reply" (the message's own answer), "forward" or "outbound" (the business speaks first)
    src: str
    dst: str
    text: str | None  # None: the worker runs the reply function first
    media_urls: str | None  # an outbound MMS's, as JSON
    attempts: int     # including this one
    claim_token: str
    text_source: str | None = None  # "NAME:KEY": the text is stored masked; text_makers[NAME] makes the real one


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """One status callback from Plivo for a message we sent."""

    plivo_message_uuid: str
    status: str
    error_code: str


def parse_report(form: Mapping[str, list[str]]) -> DeliveryReport:
    """The delivery report in a status callback form, or 400 naming the missing field."""
    fields = {name: (form.get(name) or [""])[0] for name in ("MessageUUID", "Status", "ErrorCode")}
    for name in ("MessageUUID", "Status"):
        if not fields[name] or len(fields[name]) > 128 or not fields[name].isprintable():
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"missing or invalid field {name}")
    return DeliveryReport(fields["MessageUUID"], fields["Status"].lower(), fields["ErrorCode"][:64])


def queue_sms(tx: Transaction, message: InboundMessage, sms: Outbound, now: float) -> None:
    """Queue one SMS of a message's answer; text None means the worker runs the reply function."""
    tx.execute(
        "INSERT INTO outbox (message_uuid, kind, status, src, dst, text, attempts, next_attempt_at, queued_at)"
        " VALUES (?, ?, 'queued', ?, ?, ?, 0, ?, ?)",
        (message.message_uuid, sms.kind, message.recipient, sms.dst, sms.text, now, tx.timestamp(now)))


def cancel_for_opt_out(tx: Transaction, opt_outs: Iterable[tuple[str, str]]) -> None:
    """(number, our number) opt-outs cancel the outbound messages still waiting for them, at once."""
    tx.execute_many(
        "UPDATE outbox SET status = 'cancelled', error = 'opted out' WHERE kind = 'outbound' AND dst = ?"
        " AND src = ? AND status IN ('scheduled', 'queued')",
        [(number_key(number), number_key(recipient)) for number, recipient in opt_outs])


def claim_due(tx: Transaction, now: float) -> OutboxRow | None:
    """Claim the next due row (in the order they fell due): queued or scheduled and due, or claimed by a
    worker whose lease has run out."""
    token = uuid.uuid4().hex
    row = tx.execute(
        "UPDATE outbox SET status = 'sending', claim_token = ?, next_attempt_at = ?, attempts = attempts + 1"
        " WHERE id = (SELECT id FROM outbox WHERE status IN ('scheduled', 'queued', 'sending')"
        " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT 1" + tx.skip_locked + ")"
        " RETURNING id, message_uuid, kind, src, dst, text, media_urls, attempts, text_source",
        (token, now + OUTBOX_LEASE, now)).fetchone()
    return None if row is None else OutboxRow(*row[:8], claim_token=token, text_source=row[8])


def stored_message(tx: Transaction, message_uuid: str) -> InboundMessage:
    """A stored inbound message, for the reply function the worker runs."""
    row = tx.execute("SELECT message_uuid, from_number, to_number, text, type, media_urls"
                     " FROM messages WHERE message_uuid = ?", (message_uuid,)).fetchone()
    return InboundMessage(*row[:5], media_urls=tuple(json.loads(row[5])))


def prepare_send(tx: Transaction, row: OutboxRow, text: str, now: float) -> bool:
    """Renew the claim and store the text (for a row with a text_source, the masked one it holds: the real
    text is made after this, and never stored); False if the claim was lost or the recipient opted out since."""
    renewed = tx.execute(
        "UPDATE outbox SET text = ?, next_attempt_at = ? WHERE id = ? AND claim_token = ?",
        (text, now + OUTBOX_LEASE, row.id, row.claim_token)).rowcount
    if not renewed:
        return False
    if row.kind == "reply":
        tx.execute("UPDATE messages SET reply = ? WHERE message_uuid = ?", (text, row.message_uuid))
    if row.kind == "outbound":  # queued only while its recipient had not opted out
        opted_out_since = tx.opted_out_of([row.dst], row.src)
    else:  # an answer: the STOP it answers is the message itself, and its confirmation must go
        opted_out_since = tx.execute(
            "SELECT 1 FROM opt_outs JOIN messages ON messages.message_uuid = ? WHERE opt_outs.number_key = ?"
            " AND opt_outs.to_key = ? AND opt_outs.opted_out_at > messages.received_at",
            (row.message_uuid, number_key(row.dst), number_key(row.src))).fetchone()
    if opted_out_since:  # an SMS queued before its recipient's STOP is not sent after it
        finish_attempt(tx, row, "cancelled", error="opted out")
        return False
    return True


def finish_attempt(tx: Transaction, row: OutboxRow, status: str, *, plivo_message_uuid: str | None = None,
                   error: str | None = None, retry_at: float | None = None) -> bool:
    """Record how an attempt ended (and release the claim); False if the claim had been lost."""
    sent_at = tx.timestamp(time.time()) if status == "sent" else None
    finished = tx.execute(
        "UPDATE outbox SET status = ?, plivo_message_uuid = ?, error = ?, claim_token = NULL,"
        " next_attempt_at = coalesce(?, next_attempt_at), sent_at = coalesce(?, sent_at)"
        " WHERE id = ? AND claim_token = ?",
        (status, plivo_message_uuid, error, retry_at, sent_at, row.id, row.claim_token)).rowcount
    if finished and plivo_message_uuid:  # Plivo may have reported on it before we got here
        for report_status, error_code in tx.execute(
                "SELECT status, error_code FROM delivery_reports WHERE plivo_message_uuid = ?",
                (plivo_message_uuid,)).fetchall():
            apply_report(tx, DeliveryReport(plivo_message_uuid, report_status, error_code))
    return finished == 1


def add_delivery_report(tx: Transaction, report: DeliveryReport, now: float, v2_nonce: str | None) -> None:
    """Store a delivery report (once) and move its outbox row forward."""
    try:
        tx.execute(
            "INSERT INTO delivery_reports (plivo_message_uuid, status, error_code, received_at, v2_nonce)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (plivo_message_uuid, status, error_code) DO NOTHING",
            (report.plivo_message_uuid, report.status, report.error_code, tx.timestamp(now), v2_nonce))
    except tx.unique_violation as error:
        if v2_nonce is None:
            raise
        raise NonceReused(report.plivo_message_uuid) from error
    apply_report(tx, report)


def apply_report(tx: Transaction, report: DeliveryReport) -> None:
    """Move the row a report is about forward to the reported status, never back."""
    new_status = PLIVO_STATUSES.get(report.status)
    row = tx.execute("SELECT status FROM outbox WHERE plivo_message_uuid = ?" + tx.for_update,
                     (report.plivo_message_uuid,)).fetchone()
    if new_status and row and STATUS_RANK[new_status] > STATUS_RANK[row[0]]:
        tx.execute("UPDATE outbox SET status = ?, error = coalesce(?, error) WHERE plivo_message_uuid = ?",
                   (new_status, report.error_code or None, report.plivo_message_uuid))


#: Makes the text a row with a text_source is sent with (NAME:KEY: text_makers[NAME](tx, KEY, row)), in the
#: worker, just before the Send Message call; raises NotToBeSent when the row must not leave any more.
TextMaker = Callable[[Transaction, str, OutboxRow], str]


class NotToBeSent(Exception):
    """What a text maker raises for a row that must not leave any more (its verification was approved,
    cancelled or has expired meanwhile): the row is cancelled with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SendFailed(Exception):
    """A Send Message call did not go through; `retryable` says whether trying again may help."""

    def __init__(self, reason: str, retryable: bool, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.retryable, self.retry_after = reason, retryable, retry_after


def send_message(settings: Settings, src: str, dst: str, text: str, media_urls: list[str] | None = None
                 ) -> str | None:
    """POST one SMS (or, with media URLs, an MMS) to Plivo's Send Message API; the UUID Plivo gave it."""
    payload: dict[str, object] = {"src": src, "dst": dst, "text": text, "type": "sms"}
    if media_urls:  # Plivo's MMS: type mms, media_urls, the text optional
        payload.update(type="mms", media_urls=media_urls)
        if not text:
            del payload["text"]
    if settings.public_url:
        payload["url"] = settings.public_url + STATUS_PATH  # where Plivo posts delivery reports
    credentials = b64encode(f"{settings.plivo_auth_id}:{settings.plivo_auth_token}".encode()).decode()
    request = urllib.request.Request(
        f"{settings.plivo_api_url}/v1/Account/{settings.plivo_auth_id}/Message/", data=json.dumps(payload).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"}, method="POST")
    try:
        response = urllib.request.urlopen(request, timeout=API_TIMEOUT)
    except urllib.error.HTTPError as error:
        retryable = error.code == HTTPStatus.TOO_MANY_REQUESTS or error.code >= 500
        raise SendFailed(f"{error.code} {plivo_error(error)}", retryable, retry_after(error.headers)) from None
    except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out
        raise SendFailed(f"network: {error}", retryable=True) from None
    with response:  # 2xx: Plivo has taken it, so whatever happens now, it must not be sent again
        try:
            return json.loads(response.read())["message_uuid"][0]
        except (OSError, http.client.HTTPException, ValueError, LookupError, TypeError):
            return None


def plivo_error(error: urllib.error.HTTPError) -> str:
    """Plivo's own error text from an error answer ({"api_id": ..., "error": ...}), shortened."""
    body = error.read()
    try:
        return str(json.loads(body)["error"])[:200]
    except (ValueError, LookupError, TypeError):
        return body.decode("utf-8", "replace")[:200]


def retry_after(headers: Mapping[str, str]) -> float:
    """The seconds a 429 or 503 asks us to wait (Retry-After), at most MAX_BACKOFF."""
    try:
        return min(MAX_BACKOFF, float(headers.get("Retry-After", 0)))
    except ValueError:
        return 0.0


def retry_delay(attempts: int, at_least: float = 0.0) -> float:
    """Exponential backoff: 1, 2, 4 ... s up to MAX_BACKOFF, plus up to 25 % jitter so workers do not retry in step."""
    return max(at_least, min(MAX_BACKOFF, 2.0 ** (attempts - 1) * random.uniform(1.0, 1.25)))


class OutboxWorker:
    """Sends what the outbox holds (replies, forwards, outbound messages) through the Plivo REST API, each
    row when it falls due; several workers may share one database.

    A claim is atomic and carries a lease and a token: a row is sent by one
    live worker at a time, and claimed again only once its worker's lease has
    run out. A worker killed after Plivo accepted a message but before it
    recorded that leaves the row to be sent again: Plivo's API has no
    idempotency key, so that window (milliseconds) is the limit of "once".
    """

    def __init__(self, app: SmsResponder) -> None:
        self.app = app
        self.stopping = threading.Event()

    def run(self) -> None:
        """Send due replies until stop(); when none is due, look again every OUTBOX_POLL seconds."""
        while not self.stopping.is_set():
            try:
                busy = self.send_next()
            except StoreUnavailable as error:
                log.error("database unavailable: %s", error)
                busy = False
            except Exception:
                log.exception("outbox worker failure; carrying on")
                busy = False
            if not busy:
                self.stopping.wait(OUTBOX_POLL)

    def stop(self) -> None:
        """Finish the row in hand, then return from run()."""
        self.stopping.set()

    def send_next(self) -> bool:
        """Claim one due row, send it, record how it went; False if no row was due."""
        with self.app.store.transaction() as tx:
            row = claim_due(tx, time.time())
            message = stored_message(tx, row.message_uuid) if row and row.text is None else None
        if row is None:
            return False
        if row.attempts > self.app.settings.send_max_attempts:  # its last worker died mid-attempt
            return self.finish(row, "failed", error="the worker stopped during the last attempt")
        try:
            text = clean_reply(self.app.reply(message)) if message else row.text
        except Exception:
            log.exception("reply function failed for %s", row.message_uuid)
            return self.retry_or_fail(row, "the reply function failed")
        media_urls = json.loads(row.media_urls) if row.media_urls else []
        if not text and not media_urls:
            return self.finish(row, "cancelled", error="no reply")
        with self.app.store.transaction() as tx:
            if not prepare_send(tx, row, text, time.time()):
                return True  # cancelled (opted out since) or claimed by another worker
        try:
            plivo_message_uuid = send_message(self.app.settings, row.src, row.dst, self.text_to_send(row, text),
                                              media_urls)
        except NotToBeSent as refusal:
            return self.finish(row, "cancelled", error=refusal.reason)
        except SendFailed as failure:
            if failure.retryable:
                return self.retry_or_fail(row, failure.reason, failure.retry_after)
            return self.finish(row, "failed", error=failure.reason)
        return self.finish(row, "sent", plivo_message_uuid=plivo_message_uuid)

    def text_to_send(self, row: OutboxRow, text: str) -> str:
        """The text that leaves: the stored one, or for a row with a text_source the text its surface makes
        now, which only the Plivo request carries (a verification code: README, Verify a phone number)."""
        if not row.text_source:
            return text
        name, _, key = row.text_source.partition(":")
        maker = self.app.text_makers.get(name)
        if maker is None:  # the masked text must not leave; a worker with the surface installed may send it
            raise SendFailed(f"no {name} surface in this worker to make the text", retryable=True)
        with self.app.store.transaction() as tx:
            return maker(tx, key, row)

    def retry_or_fail(self, row: OutboxRow, reason: str, at_least: float = 0.0) -> bool:
        if row.attempts >= self.app.settings.send_max_attempts:
            return self.finish(row, "failed", error=reason)
        return self.finish(row, "queued", error=reason, retry_at=time.time() + retry_delay(row.attempts, at_least))

    def finish(self, row: OutboxRow, status: str, **details: object) -> bool:
        """Record the attempt and log one line for it."""
        with self.app.store.transaction() as tx:
            kept = finish_attempt(tx, row, status, **details)
        if self.app.metrics:  # a retry is a row queued again
            self.app.metrics.sent(("retried" if status == "queued" else status) if kept else "claim_lost")
        fields = {"outcome": status if kept else "claim_lost", "message_uuid": row.message_uuid, "kind": row.kind,
                  "recipient": mask_number(row.dst), "attempt": row.attempts, "error": details.get("error")}
        log.info("outbox", extra={"fields": {key: value for key, value in fields.items() if value is not None}})
        return True


# -- Retention: purge ---------------------------------------------------------

PURGE_BATCH = 1000   # messages per transaction: a purge never holds the writer for long
PURGE_EVERY = 3600.0  # seconds between purges in serve and worker (RETENTION_DAYS)


def purge_messages(tx: Transaction, before: float, batch: int) -> int:
    """Erase the personal data of up to `batch` messages received before `before`; how many."""
    return tx.execute(
        "UPDATE messages SET from_number = NULL, to_number = NULL, text = NULL, media_urls = NULL, reply = NULL,"
        " forwarded_to = NULL, relayed_to = NULL WHERE message_uuid IN (SELECT message_uuid FROM messages"
        " WHERE received_at < ? AND from_number IS NOT NULL LIMIT ?)", (tx.timestamp(before), batch)).rowcount


def purge_outbound(tx: Transaction, before: float, batch: int) -> int:
    """Erase the numbers, text and media of up to `batch` outbound messages created before `before`, once
    they have left (their row and status stay, like an inbound message's); how many."""
    return tx.execute(
        "UPDATE outbox SET src = NULL, dst = NULL, text = NULL, media_urls = NULL WHERE id IN (SELECT id FROM outbox"
        " WHERE kind = 'outbound' AND queued_at < ? AND dst IS NOT NULL"
        " AND status NOT IN ('scheduled', 'queued', 'sending') LIMIT ?)", (tx.timestamp(before), batch)).rowcount


def purge_deliveries(tx: Transaction, before: float) -> None:
    """Delete delivery reports received, finished replies and forwards queued, Idempotency-Keys used, and
    verifications made (long expired: VERIFY_TTL is a day at most), before `before`."""
    timestamp = tx.timestamp(before)
    tx.execute("DELETE FROM delivery_reports WHERE received_at < ?", (timestamp,))
    tx.execute("DELETE FROM outbox WHERE queued_at < ? AND kind <> 'outbound'"
               " AND status NOT IN ('queued', 'sending')", (timestamp,))
    tx.execute("DELETE FROM api_requests WHERE created_at < ?", (timestamp,))
    tx.execute("DELETE FROM verifications WHERE created_at < ?", (timestamp,))


def purge_conversations(tx: Transaction, before: float) -> None:
    """Delete what the team kept of conversations quiet since `before` (the inbox's conversations, with
    their numbers and assignees), and the notes, assignments and reads written before it."""
    timestamp = tx.timestamp(before)
    # conversations and reads are read whole (one row per conversation, per person): no index to keep for it
    tx.execute("DELETE FROM conversations" + tx.scan + " WHERE last_at < ?", (timestamp,))
    tx.execute("DELETE FROM notes WHERE written_at < ?", (timestamp,))
    tx.execute("DELETE FROM assignments WHERE assigned_at < ?", (timestamp,))
    tx.execute("DELETE FROM conversation_reads" + tx.scan + " WHERE read_at < ? AND NOT EXISTS (SELECT 1 FROM"
               " conversations c WHERE c.customer = conversation_reads.customer AND c.ours = conversation_reads.ours)",
               (timestamp,))


def purge(store: Store, days: int, now: float) -> int:
    """Erase the personal data of messages older than `days` days, in small transactions; how many."""
    before = now - days * 86400
    purged = 0
    for erase in (purge_messages, purge_outbound):
        while True:
            with store.transaction() as tx:
                batch = erase(tx, before, PURGE_BATCH)
            purged += batch
            if batch < PURGE_BATCH:
                break
    with store.transaction() as tx:
        purge_deliveries(tx, before)
        purge_conversations(tx, before)
    return purged


class RetentionSchedule:
    """Purges at start and then every PURGE_EVERY seconds on a thread (serve and worker, RETENTION_DAYS >= 1)."""

    def __init__(self, store: Store, days: int) -> None:
        self.store, self.days = store, days
        self.stopping = threading.Event()

    def start(self) -> RetentionSchedule:
        threading.Thread(target=self.run, name="retention", daemon=True).start()
        return self

    def run(self) -> None:
        while True:
            try:
                purged = purge(self.store, self.days, time.time())
                log.info("purged", extra={"fields": {"messages": purged, "older_than_days": self.days}})
            except StoreUnavailable as error:
                log.error("purge failed, trying again in an hour: %s", error)
            except Exception:
                log.exception("purge failed, trying again in an hour")
            if self.stopping.wait(PURGE_EVERY):
                return

    def stop(self) -> None:
        self.stopping.set()


# -- Server and command line --------------------------------------------------

class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server with a thread per request, so one slow client cannot stall the others."""

    daemon_threads = False  # server_close() then waits for requests in flight (graceful shutdown)
    block_on_close = True
    request_queue_size = socket.SOMAXCONN  # socketserver's default backlog of 5 resets bursts of connections

    def handle_error(self, request, client_address) -> None:
        log.warning("connection from %s failed: %s", client_address[0], sys.exc_info()[1])


#: The stdlib server's Server header: wsgiref and http.server would name the Python version, which
#: tells an attacker which of its known flaws to try.
SERVER_SOFTWARE = "sms_responder"


class AnswerHandler(ServerHandler):
    """wsgiref's handler of one WSGI call (it writes the Server header of the application's answers)."""

    server_software = SERVER_SOFTWARE


class RequestHandler(WSGIRequestHandler):
    """wsgiref's request handler, with a client timeout, the access log sent to our logger, and a
    Server header that names no Python version (http.server's own answers: version_string)."""

    timeout = CLIENT_TIMEOUT
    server_version = SERVER_SOFTWARE

    def version_string(self) -> str:
        return self.server_version  # http.server would add sys_version, "Python/3.x.y"

    def handle(self) -> None:
        """wsgiref's handle(), with AnswerHandler in place of its ServerHandler."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():  # http.server has answered the error
            return
        handler = AnswerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=False)
        handler.request_handler = self  # wsgiref logs each answer through it
        handler.run(self.server.get_app())

    def log_message(self, format: str, *args: object) -> None:
        access_log.info(format, *args, extra={"fields": {"client": self.client_address[0]}})


def serve(args: argparse.Namespace) -> int:
    """Run the threaded stdlib server (and, with --with-worker, an outbox worker) until Ctrl-C or SIGTERM."""
    overrides = {name: value for name, value in (("host", args.host), ("port", args.port)) if value is not None}
    check_start_up(Settings.from_env(read_environment()))
    app = create_app(reply=args.reply, **overrides)
    settings = app.settings
    if args.with_worker:
        require_auth_id(settings)
    elif settings.reply_mode == "api":
        log.warning("REPLY_MODE=api: replies wait in the outbox until `sms_responder.py worker` runs")
    try:
        server = make_server(settings.host, settings.port, app, ThreadingWSGIServer, RequestHandler)
    except OSError as error:
        log.error("cannot start: %s", error)
        return 1
    worker = start_worker(app) if args.with_worker else None  # only once serving: its thread keeps us alive
    retention = RetentionSchedule(app.store, settings.retention_days).start() if settings.retention_days else None
    port = server.server_address[1]
    local_url = f"http://{settings.host}:{port}{WEBHOOK_PATH}"
    log.info("serving on http://%s:%s", settings.host, port)
    if settings.public_url:
        log.info("Plivo message URL: %s%s", settings.public_url, WEBHOOK_PATH)
    else:
        log.info("Plivo message URL: %s (Plivo cannot reach this address: expose it with "
                 "`ngrok http %s`, then set PUBLIC_URL to the https address ngrok prints)", local_url, port)

    def stop(signum: int, frame: object) -> None:
        log.info("SIGTERM received: finishing requests in flight, then exiting")
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever to return

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("Keyboard interrupt received, exiting.")
    finally:
        server.server_close()
        for background in (worker, retention):
            if background:
                background.stop()
        app.close()
    return 0


def check_start_up(settings: Settings) -> None:
    """Stop start-up (one line per problem, exit 2) before anything is logged: a bad rules file, then a
    database that cannot be written (a service without it answers only 500s). Creates the schema."""
    load_rules(settings.rules_file, settings.plivo_number, phrases=settings.opt_out_match == "phrases")
    store = open_store(settings)
    try:
        store.ping()
    finally:
        store.close()


def start_worker(app: SmsResponder) -> OutboxWorker:
    """An outbox worker on a thread of this process (serve --with-worker)."""
    worker = OutboxWorker(app)
    threading.Thread(target=worker.run, name="outbox-worker").start()
    return worker


def run_worker(args: argparse.Namespace) -> int:
    """Send queued replies until SIGTERM or Ctrl-C (the row in hand is finished first)."""
    settings = Settings.from_env(read_environment())
    require_auth_id(settings)
    check_start_up(settings)
    app = create_app(reply=args.reply)
    worker = OutboxWorker(app)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: worker.stop())
    log.info("outbox worker sending through %s", app.settings.plivo_api_url)
    retention = RetentionSchedule(app.store, app.settings.retention_days).start() if app.settings.retention_days else None
    worker.run()
    if retention:
        retention.stop()
    app.close()
    return 0


def require_auth_id(settings: Settings, command: str = "worker, --with-worker") -> None:
    if not settings.plivo_auth_id:
        raise ConfigError([f"PLIVO_AUTH_ID is required to send through the Plivo REST API ({command})"])


def send(args: argparse.Namespace) -> int:
    """Play Plivo: POST one V3-signed inbound SMS to the webhook and print the answer."""
    settings = Settings.from_env(read_environment())
    url = args.url or (f"{settings.public_url}{WEBHOOK_PATH}" if settings.public_url
                       else f"http://{settings.host}:{settings.port}{WEBHOOK_PATH}")
    form = {
        "From": args.sender, "To": args.to or settings.plivo_number[0], "Text": args.text, "Type": "sms",
        "MessageUUID": str(uuid.uuid4()), "Units": "1", "TotalRate": "0.00000", "TotalAmount": "0.00000",
        "MessageIntent": "", "PowerpackUUID": "",
    }
    nonce = str(secrets.randbelow(10**20))
    signature = v3_signature(settings.plivo_auth_token.encode("utf-8"), url, {k: [v] for k, v in form.items()}, nonce)
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers={
        "Content-Type": FORM_CONTENT_TYPE, "X-Plivo-Signature-V3": signature.decode(),
        "X-Plivo-Signature-V3-Nonce": nonce})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except OSError as error:
        print(f"cannot reach {url}: {error}", file=sys.stderr)
        return 1
    print(f"{status} {HTTPStatus(status).phrase}")
    print(body.decode("utf-8", "replace").rstrip())
    if status == HTTPStatus.FORBIDDEN:
        print(f"(signed for {url}; the service's log says which URL it checked)", file=sys.stderr)
    return 0 if status == HTTPStatus.OK else 1


def try_message(args: argparse.Namespace) -> int:
    """Decide a message as the webhook would now, store nothing, and print what would be sent."""
    settings = Settings.from_env(read_environment())
    rules = load_rules(settings.rules_file, settings.plivo_number, phrases=settings.opt_out_match == "phrases")
    recipient = args.to or settings.plivo_number[0]
    if number_key(recipient) not in settings.plivo_number:
        raise ConfigError([f"--to: {recipient} is not one of PLIVO_NUMBER"])
    now = time.time() if args.at is None else argument(
        parse_at, args.at, rules.hours.timezone if rules.hours else UTC)
    message = InboundMessage(message_uuid=str(uuid.uuid4()), sender=number_key(args.sender), recipient=recipient,
                             text=args.text, type="mms" if args.media else "sms", media_urls=tuple(args.media))
    decider = Decider(settings, args.reply or default_reply(settings))
    store = open_store(settings)
    try:
        with store.reading(missing_ok=True) as history:
            state = message_state(history, message, now - settings.reply_window, None, rules.previous_since(now))
            decision = decider.decide(history, message, now, rules, state)
    finally:
        store.close()
    print(f"outcome: {decision.outcome.value}" + (f" ({decision.consent})" if decision.consent else ""))
    print(f"rule: {decision.rule.name if decision.rule else 'none'}")
    print(f"reply: {decision.reply if decision.reply else 'none'}")
    if decision.reply:
        count, encoding = segments_of(decision.reply)
        print(f"segments: {count} ({encoding}, {len(decision.reply)} characters)")
    if decision.relayed_to:
        print(f"relay: {decision.relayed_to}: {decision.reply}")
    for owner in decision.forwarded_to:
        print(f"forward: {owner}: {decision.forward_text}")
    return 0


def parse_at(value: str, zone: tzinfo) -> float:
    """try --at: an ISO 8601 time; without an offset, in the [hours] time zone (else UTC)."""
    try:
        return iso_timestamp(value, zone)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time such as 2026-12-01T18:30") from None


def purge_command(args: argparse.Namespace) -> int:
    """purge: erase what RETENTION_DAYS (or --days) no longer allows to keep."""
    settings = Settings.from_env(read_environment())
    days = args.days or settings.retention_days
    if not days:
        raise ConfigError(["purge needs --days N (N >= 1) or RETENTION_DAYS"])
    with command_store(settings) as store:
        print(f"purged {purge(store, days, time.time())} messages")
    return 0

# What the commands share, the surfaces' too: numbers and times given by a person, the store, names.
_CLI_NUMBER = re.compile(r"\d{3,20}")


def cli_number(raw: str, what: str = "number") -> str:
    """A number given on the command line or in a file, as digits: '+1 (415) 555-0100' -> '14155550100'."""
    digits = number_key(raw.strip())
    if not _CLI_NUMBER.fullmatch(digits):
        raise ValueError(f"{what} {raw!r} is not a phone number of 3 to 20 digits")
    return digits


def iso_timestamp(value: str, zone: tzinfo | None) -> float:
    """An ISO 8601 date or time as unix time; without an offset it is in `zone` (None: the machine's
    local time, as a person at the terminal means it). ValueError if it is not one."""
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.astimezone() if zone is None else moment.replace(tzinfo=zone)
    return moment.timestamp()


#: A token's or a person's name: 1 to 64 letters, digits, '.', '_' or '-'.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def positive(raw: str) -> int:
    value = int(raw) if raw.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of 1 or more")
    return value


def argument(parse: Callable[..., Any], value: str, *details: Any) -> Any:
    """parse(value, *details), a ValueError becoming the command's one-line error."""
    try:
        return parse(value, *details)
    except ValueError as error:
        raise ConfigError([str(error)]) from None


@contextlib.contextmanager
def command_store(settings: Settings) -> Iterator[Store]:
    """The store a command reads or changes: a SQLite file must exist already (it is never created here)."""
    store = open_store(settings)
    if isinstance(store, SQLiteStore) and not os.path.exists(store.path):
        raise StoreMissing(f"{store.path} does not exist (DATABASE_URL); the service creates it on first start")
    try:
        yield store
    finally:
        store.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sms_responder.py", description="Two-way SMS service for Plivo.")
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve", help="serve the webhook (the default command)")
    serve_parser.add_argument("--host", help="address to listen on (default: HOST, else 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port to listen on (default: PORT, else 3000)")
    serve_parser.add_argument("--with-worker", action="store_true",
                              help="also run the worker in this process (it sends the outbox: replies in"
                                   " REPLY_MODE=api, texts sent first)")
    serve_parser.set_defaults(run=serve)
    worker_parser = commands.add_parser("worker", help="send the outbox through the Plivo REST API: replies"
                                        " (REPLY_MODE=api) and messages sent first")
    worker_parser.set_defaults(run=run_worker)
    send_parser = commands.add_parser("send", help="post a signed test SMS to the webhook, print the answer")
    send_parser.add_argument("text", help="the message text")
    send_parser.add_argument("--from", dest="sender", default="14155550123",
                             help="sender number (default: %(default)s)")
    send_parser.add_argument("--to", help="our number (default: the first of PLIVO_NUMBER)")
    send_parser.add_argument("--url", help="full webhook URL (default: PUBLIC_URL or http://HOST:PORT, + webhook path)")
    send_parser.set_defaults(run=send)
    try_parser = commands.add_parser("try", help="decide a message as the webhook would now; store nothing")
    try_parser.add_argument("text", help="the message text")
    try_parser.add_argument("--from", dest="sender", default="14155550123",
                            help="sender number, read as Plivo writes numbers: digits (default: %(default)s)")
    try_parser.add_argument("--to", help="our number (default: the first of PLIVO_NUMBER)")
    try_parser.add_argument("--at", help="ISO 8601 time the message arrives (default: now; without an offset: "
                                         "in the [hours] time zone, else UTC)")
    try_parser.add_argument("--media", action="append", default=[], metavar="URL",
                            help="a media URL: the message is an MMS (repeat for several)")
    try_parser.set_defaults(run=try_message)
    for surface in installed_surfaces()[0]:
        surface.add_commands(commands)
    purge_parser = commands.add_parser("purge", help="erase the personal data of old messages")
    purge_parser.add_argument("--days", type=positive, help="older than N days (default: RETENTION_DAYS)")
    purge_parser.set_defaults(run=purge_command)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, reply: ReplyFunction | None = None) -> int:
    """Command line entry point: serve (the default), send, try, worker and the operating commands.

    Exit 2 on bad settings or a database a command cannot use.

    A program with its own reply function runs `sys.exit(sms_responder.main(reply=my_reply))`.
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.reply = reply
    try:
        return args.run(args)
    except ConfigError as error:
        for problem in error.problems:
            print(f"sms_responder: {problem}", file=sys.stderr)
        return 2
    except StoreUnavailable as error:  # a command's database: missing, unreachable, or newer than this code
        print(f"sms_responder: {error}".splitlines()[0], file=sys.stderr)
        return 2
    except BrokenPipeError:  # `messages | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # The surfaces `import sms_responder`: run as a script, this module is __main__, and that import would
    # load a second copy with classes of its own (an HTTPError the app's `except` does not catch).
    sys.modules["sms_responder"] = sys.modules[__name__]
    sys.exit(main())

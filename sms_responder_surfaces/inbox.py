"""The team inbox: every conversation in a browser, behind a login (README: The inbox).

Owns: the people who may log in (Argon2id, at most two checks at once, lockout, the record of
logins) and their sessions, the command `users`, and the pages under /inbox: the list, a
conversation, answering, opt-out and opt-in by hand, live updates. Its templates are in
templates/ (Jinja2, every value escaped), its style, script and icon in static/.

Uses of the core: the app's settings and store, the opt-out list, the HTTP plumbing, phone numbers,
segments and the command helpers; and of speaking first (api), the checks and queue every outbound
message goes through, so that an answer from the inbox is sent as POST /api/messages would send it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import getpass
import hashlib
import hmac
import importlib
import json
import re
import secrets
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from wsgiref.types import WSGIEnvironment

from sms_responder import (
    MAX_REPLY_CHARS, NAME_PATTERN, TEXT_CONTENT_TYPE, ApiError, ConfigError, HTTPError, Response, Routes, Settings,
    SmsResponder, Store, Transaction, cancel_for_opt_out, cli_number, command_store, configure_logging,
    iso_timestamp, json_response, log, mask_number, number_forms, number_key, parse_form, read_body,
    read_environment, segments_of, token_digest,
)
from sms_responder_surfaces.api import (
    OUTBOUND_COLUMNS, InvalidField, OptedOut, outbound_of, outbound_request, queue_outbound,
)

#: The pages' templates, and the files the pages load (style, script, icon), installed with the package.
TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def attach(app: SmsResponder) -> Routes:
    """The routes under /inbox."""
    return Inbox(app.settings, app.store).routes()


def add_commands(commands: Any) -> None:
    """users: who may log in (add, list, remove, password)."""
    users = commands.add_parser("users", help="who may log in to the inbox: add, list, remove, password"
                                ).add_subparsers(dest="action", required=True)
    for action, what in (("add", "add a person (asks for a password)"), ("remove", "remove a person; ends their"
                         " sessions"), ("password", "set a new password; ends their sessions")):
        person_parser = users.add_parser(action, help=what)
        person_parser.add_argument("name", help="1 to 64 of A-Z a-z 0-9 . _ -")
        person_parser.set_defaults(run=manage_people)
    users.add_parser("list", help="everyone who may log in").set_defaults(run=manage_people)


# -- People and sessions ------------------------------------------------------

INBOX_PATH = "/inbox"
SESSION_COOKIE = "sms_inbox"
SESSION_LIMIT = 7 * 86400.0    # seconds a session lasts at most, however active
SESSION_TOUCH_EVERY = 60.0     # seconds: a session's last request is written at most this often
LOGIN_TRIES = 5                # failed logins of one name within LOGIN_LOCKOUT ...
LOGIN_LOCKOUT = 15 * 60.0      # ... lock that name for this long, whatever the password
MIN_PASSWORD = 12
MAX_PASSWORD = 1024            # characters: a longer one is refused before it is hashed
PASSWORD_CHECKS = 2            # Argon2 checks at once in one process: each holds 64 MiB while it runs
#: Logins beyond PASSWORD_CHECKS wait their turn here, so that twenty at once cost the memory of two.
password_checks = threading.BoundedSemaphore(PASSWORD_CHECKS)


@dataclasses.dataclass(frozen=True)
class Session:
    """A person logged in: their name, the cookie's token (only its digest is stored), its CSRF token."""

    name: str
    token: str

    @property
    def csrf(self) -> str:
        """The CSRF token of this session: derived from the session's token, so nothing more is stored."""
        return hmac.new(self.token.encode(), b"csrf", "sha256").hexdigest()


def person_name(raw: str) -> str:
    if not NAME_PATTERN.fullmatch(raw):
        raise ConfigError([f"name {raw!r}: 1 to 64 letters, digits, '.', '_' or '-'"])
    return raw


@functools.cache
def passwords() -> Any:
    """Argon2id with the library's (OWASP's) recommended parameters. The inbox's libraries are imported
    when it is first used: a worker that only answers webhooks never loads them."""
    return importlib.import_module("argon2").PasswordHasher()


def add_person(tx: Transaction, name: str, password: str, now: float) -> None:
    """A new person who may log in; ConfigError if the name is taken."""
    added = tx.execute("INSERT INTO users (name, password, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                       (name, passwords().hash(password), tx.timestamp(now))).rowcount
    if not added:
        raise ConfigError([f"{name} exists already; `users password {name}` sets a new password"])


def change_password(tx: Transaction, name: str, password: str) -> bool:
    """Set a new password and end every session of that person; False if there is no such person."""
    changed = tx.execute("UPDATE users SET password = ? WHERE name = ?", (passwords().hash(password), name)).rowcount
    tx.execute("DELETE FROM sessions WHERE name = ?", (name,))
    return changed == 1


def remove_person(tx: Transaction, name: str) -> bool:
    """Remove a person and end their sessions at once (every host reads sessions from the database)."""
    tx.execute("DELETE FROM sessions WHERE name = ?", (name,))
    return tx.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 1


def people(history: Transaction) -> list[tuple[str, datetime, int]]:
    """(name, added, sessions open) of everyone who may log in."""
    return [(name, history.moment(created), sessions) for name, created, sessions in history.execute(
        "SELECT name, created_at, (SELECT count(*) FROM sessions s WHERE s.name = u.name) FROM users u"
        " ORDER BY name").fetchall()]


def anyone_may_log_in(history: Transaction) -> bool:
    return history.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0]


def may_be_a_login(name: str, password: str) -> bool:
    """Could this be someone's name and password? If not, the login is refused before any hashing and
    stored nowhere (a 60,000-character name was a failed try of its own, and a long password a long hash)."""
    return NAME_PATTERN.fullmatch(name) is not None and len(password) <= MAX_PASSWORD


def log_login(outcome: str, name: str, environ: WSGIEnvironment) -> None:
    """The record of a login (ok, failed, locked): the name as typed, cut to a name's longest (the log's
    formatter escapes what could forge a line), and the client's address; never the password."""
    fields = {"outcome": outcome, "name": name[:64]}
    if environ.get("REMOTE_ADDR"):
        fields["client"] = environ["REMOTE_ADDR"]
    log.info("login", extra={"fields": fields})


def start_login(tx: Transaction, name: str, now: float) -> str | None:
    """The stored password hash of `name` (None: no one is called that), the try counted as failed in
    advance, so that tries racing on several hosts all count. LockedOut after LOGIN_TRIES failures of
    that name within LOGIN_LOCKOUT; failures older than that, anyone's, are deleted on the way (the
    table holds the last LOGIN_LOCKOUT's at most). The hash is checked outside any transaction: it
    is slow on purpose."""
    tx.lock(f"login {name}")
    tx.execute("DELETE FROM login_failures WHERE failed_at < ?", (tx.timestamp(now - LOGIN_LOCKOUT),))
    if tx.execute("SELECT count(*) FROM login_failures WHERE name = ?", (name,)).fetchone()[0] >= LOGIN_TRIES:
        raise LockedOut(name)
    tx.execute("INSERT INTO login_failures (name, failed_at) VALUES (?, ?)", (name, tx.timestamp(now)))
    row = tx.execute("SELECT password FROM users WHERE name = ?", (name,)).fetchone()
    return row and row[0]


def upgrade_hash(tx: Transaction, name: str, old: str, new: str) -> None:
    """Store a hash made with today's parameters in place of one made with older ones (unless the
    password was changed meanwhile)."""
    tx.execute("UPDATE users SET password = ? WHERE name = ? AND password = ?", (new, name, old))


def open_session(tx: Transaction, name: str, now: float) -> str | None:
    """A new session's token for a person whose password matched (their failed tries are forgotten);
    None if they were removed meanwhile. Sessions unused for 7 days, anyone's, are deleted on the way
    (others that have ended are refused, and deleted, when next presented)."""
    token = secrets.token_urlsafe(32)
    tx.execute("DELETE FROM sessions WHERE seen_at < ?", (tx.timestamp(now - SESSION_LIMIT),))  # long dead
    tx.execute("DELETE FROM login_failures WHERE name = ?", (name,))
    opened = tx.execute("INSERT INTO sessions (digest, name, created_at, seen_at) SELECT ?, name, ?, ? FROM users"
                        " WHERE name = ?", (token_digest(token), tx.timestamp(now), tx.timestamp(now), name)).rowcount
    return token if opened else None


class LockedOut(Exception):
    """Too many failed logins for one name: refused for a while, whatever the password."""


def check_password(hashed: str | None, password: str) -> tuple[bool, str | None]:
    """Does the password match the stored hash; and if it does and the hash was made with older
    parameters, a new hash to store in its place (else None). With no hash (no such person) a hash
    is still checked, so that an unknown name takes as long as a wrong password. At most
    PASSWORD_CHECKS of these run at once in this process (each Argon2 check holds 64 MiB); the
    others wait their turn."""
    errors = importlib.import_module("argon2.exceptions")
    hasher = passwords()
    with password_checks:
        try:
            matches = hasher.verify(hashed or _nobodys_hash(), password) and hashed is not None
        except (errors.VerificationError, errors.InvalidHashError):
            return False, None
        return matches, (hasher.hash(password) if matches and hasher.check_needs_rehash(hashed) else None)


@functools.cache
def _nobodys_hash() -> str:
    """The hash an unknown name is checked against (made once, of a password no one knows)."""
    return passwords().hash(secrets.token_urlsafe(16))


def session_of(tx: Transaction, token: str, now: float, idle_hours: int) -> Session | None:
    """The session a cookie's token opens, if it has not ended (idle too long, too old, or ended)."""
    row = tx.execute("SELECT name, created_at, seen_at FROM sessions WHERE digest = ?",
                     (token_digest(token),)).fetchone()
    if row is None:
        return None
    created, seen = tx.moment(row[1]).timestamp(), tx.moment(row[2]).timestamp()
    if seen < now - idle_hours * 3600 or created < now - SESSION_LIMIT:
        tx.execute("DELETE FROM sessions WHERE digest = ?", (token_digest(token),))
        return None
    if seen < now - SESSION_TOUCH_EVERY:
        tx.execute("UPDATE sessions SET seen_at = ? WHERE digest = ?", (tx.timestamp(now), token_digest(token)))
    return Session(row[0], token)


def end_session(tx: Transaction, token: str) -> None:
    tx.execute("DELETE FROM sessions WHERE digest = ?", (token_digest(token),))


def read_password(name: str) -> str:
    """A new password: asked twice on a terminal, else one line of standard input."""
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError(["the two passwords differ"])
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise ConfigError([f"the password must have at least {MIN_PASSWORD} characters"])
    return password


def manage_people(args: argparse.Namespace) -> int:
    """users add NAME | list | remove NAME | password NAME: who may log in to the inbox."""
    settings = Settings.from_env(read_environment())
    name = person_name(args.name) if args.action != "list" else ""
    password = read_password(name) if args.action in ("add", "password") else ""
    configure_logging(settings.log_level, settings.log_format)
    with command_store(settings) as store:
        if args.action == "list":
            with store.reading() as history:
                for person, added, sessions in people(history):
                    print(f"{person:<24} added {added.astimezone():%Y-%m-%d %H:%M}, {sessions} session(s) open")
            return 0
        with store.transaction() as tx:
            if args.action == "add":
                add_person(tx, name, password, time.time())
                found = True
            elif args.action == "password":
                found = change_password(tx, name, password)
            else:
                found = remove_person(tx, name)
        if not found:
            raise ConfigError([f"there is no one called {name}"])
    log.info({"add": "person added", "password": "password changed", "remove": "person removed"}[args.action],
             extra={"fields": {"name": name}})
    print({"add": f"{name} may log in to the inbox",
           "password": f"new password for {name}; their sessions have ended",
           "remove": f"removed {name}; their sessions have ended"}[args.action])
    return 0


# -- Pages: conversations in a browser ----------------------------------------

LIST_PAGE = 50                 # conversations a page of the list shows; "More" shows the next ones
CONVERSATION_PAGE = 200        # a conversation shows its newest messages, this many
LIST_WINDOW = 2_000            # the list looks at the newest messages first, then at four times more ...
LIST_WINDOW_MAX = 128_000      # ... up to this many, then groups them all (one sender flooding the rest)
SEARCH_WINDOW = 5_000          # a search looks at the newest messages first, then scans them all
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
#: Every page: scripts and styles only from our own files (no inline script can run), no framing. (The
#: application adds Cache-Control: no-store and X-Content-Type-Options: nosniff to every /inbox answer.)
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
                                " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("Referrer-Policy", "same-origin"))
STATIC_FILES = {"inbox.css": "text/css; charset=utf-8", "inbox.js": "text/javascript; charset=utf-8",
                "favicon.svg": "image/svg+xml"}
_CONVERSATION_PATH = re.compile(r"(\d{3,20})/(\d{3,20})(?:/(send|opt-out|opt-in))?")


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A row of the list: one customer and one number of ours, and what happened last."""

    customer: str       # digits
    ours: str           # digits
    last_at: datetime
    last_text: str | None
    waiting: bool       # the customer wrote last, and no one has answered since
    opted_out: bool
    forwarded: bool     # the customer's last message was forwarded to an owner's phone

    @property
    def path(self) -> str:
        return f"{INBOX_PATH}/conversations/{self.customer}/{self.ours}"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One thing in a conversation, in time order: the customer's message (with its automatic answer
    and forwards), an outbound message, an owner's relay, or an opt-out or opt-in made by hand."""

    kind: str                          # "in", "out", "relay" or "consent"
    at: datetime
    text: str | None = None
    media_urls: tuple[str, ...] = ()
    reply: str | None = None           # "in": the automatic answer ...
    rule: str | None = None            # ... the rule that chose it
    outcome: str | None = None
    forwarded_to: tuple[str, ...] = ()
    by: str | None = None              # "out": who sent it; "relay": the owner; "consent": the person
    status: str | None = None          # "out": where it is (queued ... delivered, failed)
    error: str | None = None


def conversation_list(history: Transaction, not_customers: frozenset[str], before: float | None,
                      search: str, limit: int = LIST_PAGE) -> list[Conversation]:
    """The conversations with activity before `before` (None: any), newest activity first; with
    `search`, only those with a message holding every word of it, or whose number holds its digits."""
    until = history.timestamp(before if before is not None else time.time() + 86400)
    found = (_found_pairs if search else _recent_pairs)(history, until, search, limit, not_customers)
    rows = []
    for customer, ours in sorted(found, key=found.get, reverse=True):  # by their newest activity found
        row = _summary(history, customer, ours)
        if row and (before is None or row.last_at.timestamp() < before):  # else it was on an earlier page
            rows.append(row)
            if len(rows) == limit:
                break
    opted_out = {(number, ours) for ours in {row.ours for row in rows}
                 for number in history.opted_out_of([row.customer for row in rows if row.ours == ours], ours)}
    return [dataclasses.replace(row, opted_out=(row.customer, row.ours) in opted_out,
                                waiting=row.waiting and (row.customer, row.ours) not in opted_out) for row in rows]


def _recent_pairs(history: Transaction, until: object, search: str, limit: int, not_customers: frozenset[str]
                  ) -> dict[tuple[str, str], object]:
    """The newest activity before `until` of at least `limit` conversations (unless there are fewer):
    outbound messages, and the newest messages, grouped, looking four times further back while they
    hold too few conversations (one sender flooding the rest: all of them, grouped, once)."""
    found = _outbound_pairs(history, until, limit, "")
    window = LIST_WINDOW
    while True:
        grouped = history.execute(
            "SELECT from_number, to_number, relayed_to, max(received_at), count(*) FROM (SELECT from_number, to_number,"
            " relayed_to, received_at FROM messages WHERE received_at < ? AND from_number IS NOT NULL"
            " ORDER BY received_at DESC LIMIT ?) AS m GROUP BY from_number, to_number, relayed_to",
            (until, window)).fetchall()
        inbound = _by_pair(grouped, not_customers)
        if len(inbound) >= limit or sum(row[4] for row in grouped) < window:
            break
        if window >= LIST_WINDOW_MAX:
            inbound = _by_pair(history.execute(
                "SELECT from_number, to_number, relayed_to, max(received_at) FROM messages WHERE received_at < ?"
                " AND from_number IS NOT NULL GROUP BY from_number, to_number, relayed_to"
                " ORDER BY max(received_at) DESC LIMIT ?", (until, limit + len(not_customers))).fetchall(),
                not_customers)
            break
        window *= 4
    return _newest(found, inbound)


def _found_pairs(history: Transaction, until: object, search: str, limit: int, not_customers: frozenset[str]
                 ) -> dict[tuple[str, str], object]:
    """The newest matching activity before `until` of conversations with a message matching the search
    (digits: the customer's number; words: each in the customer's text or an owner's relayed answer):
    among the newest messages first, then (too few found) in one scan of them all."""
    digits = number_key(search.strip())
    if digits.isdigit():
        inbound, outbound, outbound_params = " AND from_number LIKE ?", " AND dst LIKE ?", [f"%{digits}%"]
        params = outbound_params
    else:  # every word in the customer's text, or in an owner's relayed answer (not the automatic replies)
        # the longest word first: longer words are rarer, so most rows fail the first test and stop there
        outbound_params = [f"%{_like_escaped(word)}%" for word in sorted(search.split(), key=len, reverse=True)]
        like = f"{history.like} ? ESCAPE '\\'"
        inbound = "".join(f" AND (text {like} OR (relayed_to IS NOT NULL AND reply {like}))" for _ in outbound_params)
        outbound = "".join(f" AND text {like}" for _ in outbound_params)
        params = [pattern for word in outbound_params for pattern in (word, word)]
    found = _outbound_pairs(history, until, limit, outbound, *outbound_params)
    matching = _by_pair(history.execute(
        "SELECT from_number, to_number, relayed_to, max(received_at) FROM (SELECT from_number, to_number, relayed_to,"
        " received_at, text, reply FROM messages WHERE received_at < ? AND from_number IS NOT NULL"
        " ORDER BY received_at DESC LIMIT ?) AS m WHERE 1 = 1" + inbound + " GROUP BY from_number, to_number,"
        " relayed_to", (until, SEARCH_WINDOW, *params)).fetchall(), not_customers)
    if len(matching) < limit:
        matching = _by_pair(history.execute(
            "SELECT from_number, to_number, relayed_to, max(received_at) FROM messages" + history.scan +
            " WHERE received_at < ? AND from_number IS NOT NULL" + inbound + " GROUP BY from_number, to_number,"
            " relayed_to ORDER BY max(received_at) DESC LIMIT ?", (until, *params, limit + len(not_customers))
        ).fetchall(), not_customers)
    return _newest(found, matching)


def _by_pair(rows: list[tuple], not_customers: frozenset[str]) -> dict[tuple[str, str], object]:
    """Grouped (from, to, relayed_to, newest) rows by conversation: the sender's, or for an owner's relay,
    the customer's; senders who are not customers (owners, our numbers) left out."""
    pairs: dict[tuple[str, str], object] = {}
    for sender, ours, relayed_to, newest in (row[:4] for row in rows):
        pair = (relayed_to or number_key(sender), number_key(ours))
        if pair[0] not in not_customers:
            pairs[pair] = max(newest, pairs.get(pair, newest))
    return pairs


def _outbound_pairs(history: Transaction, until: object, limit: int, condition: str, *params: object
                    ) -> dict[tuple[str, str], object]:
    return {(number_key(dst), number_key(src)): newest for dst, src, newest in history.execute(
        "SELECT dst, src, max(queued_at) FROM outbox WHERE kind = 'outbound' AND queued_at < ? AND dst IS NOT NULL" +
        condition + " GROUP BY dst, src ORDER BY max(queued_at) DESC LIMIT ?", (until, *params, limit)).fetchall()}


def _newest(*found: dict[tuple[str, str], object]) -> dict[tuple[str, str], object]:
    newest: dict[tuple[str, str], object] = {}
    for pairs in found:
        for pair, at in pairs.items():
            newest[pair] = max(at, newest.get(pair, at))
    return newest


def _like_escaped(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _summary(history: Transaction, customer: str, ours: str) -> Conversation | None:
    """A conversation's newest message either way (an inbound one, an outbound one, an owner's relay)."""
    latest = []
    inbound = history.execute(
        "SELECT received_at, text, forwarded_to FROM messages WHERE from_number IN (?, ?) AND to_number IN (?, ?)"
        " ORDER BY received_at DESC LIMIT 1", (*number_forms(customer), *number_forms(ours))).fetchone()
    if inbound:
        latest.append((history.moment(inbound[0]), "in", inbound[1], inbound[2] is not None))
    outbound = history.execute(
        "SELECT queued_at, text FROM outbox WHERE kind = 'outbound' AND dst = ? AND src = ?"
        " ORDER BY queued_at DESC LIMIT 1", (customer, ours)).fetchone()
    if outbound:
        latest.append((history.moment(outbound[0]), "out", outbound[1], False))
    relay = history.execute(
        "SELECT received_at, reply FROM messages WHERE relayed_to = ? AND to_number IN (?, ?)"
        " ORDER BY received_at DESC LIMIT 1", (customer, *number_forms(ours))).fetchone()
    if relay:
        latest.append((history.moment(relay[0]), "relay", relay[1], False))
    if not latest:
        return None
    at, kind, text, _ = max(latest, key=lambda item: item[0])
    return Conversation(customer, ours, at, text, waiting=kind == "in", opted_out=False,
                        forwarded=bool(inbound and inbound[2]))


def conversation_entries(history: Transaction, customer: str, ours: str,
                         limit: int = CONVERSATION_PAGE) -> list[Entry]:
    """The newest `limit` things of a conversation, oldest first."""
    forms = (*number_forms(customer), *number_forms(ours))
    entries = [Entry("in", history.moment(row[0]), row[1], tuple(json.loads(row[2] or "[]")), row[3], row[4], row[5],
                     tuple(row[6].split(",")) if row[6] else (), status=row[7])
               for row in history.execute(
                   "SELECT m.received_at, m.text, m.media_urls, m.reply, m.rule, m.outcome, m.forwarded_to, o.status"
                   " FROM messages m LEFT JOIN outbox o ON o.message_uuid = m.message_uuid AND o.kind = 'reply'"
                   " WHERE m.from_number IN (?, ?) AND m.to_number IN (?, ?) ORDER BY m.received_at DESC LIMIT ?",
                   (*forms, limit)).fetchall()]
    entries += [Entry("out", message.created_at, message.text, message.media_urls, by=message.sent_by,
                      status=message.status, error=message.error)
                for message in (outbound_of(history, row) for row in history.execute(
                    f"SELECT {OUTBOUND_COLUMNS} FROM outbox WHERE kind = 'outbound' AND dst = ? AND src = ?"
                    " ORDER BY queued_at DESC LIMIT ?", (customer, ours, limit)).fetchall())]
    entries += [Entry("relay", history.moment(at), text, by=owner) for at, text, owner in history.execute(
        "SELECT received_at, reply, from_number FROM messages WHERE relayed_to = ? AND to_number IN (?, ?)"
        " ORDER BY received_at DESC LIMIT ?", (customer, *number_forms(ours), limit)).fetchall()]
    entries += [Entry("consent", history.moment(at), change, by=person) for change, person, at in history.execute(
        "SELECT change, changed_by, changed_at FROM consent_changes WHERE number = ? AND to_number = ?"
        " ORDER BY changed_at DESC LIMIT ?", (customer, ours, limit)).fetchall()]
    return sorted(entries, key=lambda entry: entry.at)[-limit:]


def change_consent(tx: Transaction, customer: str, ours: str, opt_out: bool, person: str, now: float) -> None:
    """An opt-out or opt-in made by a person: it acts as a STOP or a START, and who made it is kept."""
    if opt_out:
        tx.opt_out(customer, ours, now)
        cancel_for_opt_out(tx, [(customer, ours)])
    else:
        tx.opt_in(customer, ours)
    tx.execute("INSERT INTO consent_changes (number, to_number, change, changed_by, changed_at) VALUES (?, ?, ?, ?, ?)",
               (customer, ours, "opted out" if opt_out else "opted in", person, tx.timestamp(now)))


def version_of(*parts: object) -> str:
    """A short digest of what a page shows: the page's script reloads it when this changes."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


class Inbox:
    """The routes under /inbox: the list, a conversation, answering, opt-out and opt-in by hand.

    Every page and data route needs a session (pages redirect to the login page, data routes
    answer 401), and every POST a CSRF token bound to it. Pages are rendered from the templates
    in sms_responder_web/ (Jinja2, autoescaped: a customer's text is always text); the page's
    one script polls /inbox/updates every second and, when what the page shows has changed,
    fetches it again and swaps the changed part: short requests that any WSGI host serves,
    where a stream held open per browser would hold a thread (or a sync worker) each.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.not_customers = frozenset(settings.plivo_number) | frozenset(settings.forward_to)
        self.secure_cookie = settings.public_url.startswith("https://")

    @functools.cached_property
    def templates(self) -> Any:
        """The pages' templates: every value escaped (Jinja2, imported when a page is first rendered)."""
        jinja2 = importlib.import_module("jinja2")
        return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                  undefined=jinja2.StrictUndefined)

    def routes(self) -> Routes:
        return {INBOX_PATH: {"GET": self.list_page},
                f"{INBOX_PATH}/login": {"GET": self.login_page, "POST": self.log_in},
                f"{INBOX_PATH}/logout": {"POST": self.log_out},
                f"{INBOX_PATH}/new": {"GET": self.new_page, "POST": self.start_conversation},
                f"{INBOX_PATH}/updates": {"GET": self.updates},
                f"{INBOX_PATH}/segments": {"GET": self.segments},
                f"{INBOX_PATH}/static/": {"GET": self.static},
                f"{INBOX_PATH}/conversations/": {"GET": self.conversation_page, "POST": self.act_on_conversation}}

    # Pages

    def list_page(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        query = self.query(environ)
        rows, more = self.list_rows(query)
        more_link = more and f"{INBOX_PATH}?{urllib.parse.urlencode({'q': query['q'], 'before': more})}"
        return self.page("list.html", session, conversations=rows, q=query["q"], more=more_link,
                         version=version_of(rows), updates=f"{INBOX_PATH}/updates?{environ.get('QUERY_STRING', '')}")

    def list_rows(self, query: Mapping[str, Any]) -> tuple[list[Conversation], str | None]:
        """A page of the list, and where the next one begins (None: this is the last)."""
        rows = self.store.run(lambda tx: conversation_list(tx, self.not_customers, query["before"], query["q"],
                                                           LIST_PAGE + 1))
        return rows[:LIST_PAGE], rows[LIST_PAGE - 1].last_at.isoformat() if len(rows) > LIST_PAGE else None

    def conversation_page(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        customer, ours, action = self.conversation_of(environ)
        if action in ("opt-out", "opt-in"):
            return self.page("confirm.html", session, customer=customer, ours=ours, action=action)
        if action:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", "POST"),))
        return self.show_conversation(session, customer, ours)

    def show_conversation(self, session: Session, customer: str, ours: str, status: HTTPStatus = HTTPStatus.OK,
                          problem: str = "", draft: str = "") -> Response:
        entries, opted_out = self.store.run(lambda tx: (conversation_entries(tx, customer, ours),
                                                        bool(tx.opted_out_of([customer], ours))))
        return self.page("conversation.html", session, status, customer=customer, ours=ours, entries=entries,
                         opted_out=opted_out, problem=problem, draft=draft, version=version_of(entries, opted_out))

    def new_page(self, environ: WSGIEnvironment) -> Response:
        return self.page("new.html", self.session(environ, page=True), problem="", number="", draft="")

    def login_page(self, environ: WSGIEnvironment, status: HTTPStatus = HTTPStatus.OK, problem: str = "") -> Response:
        if self.session(environ, page=None):
            return redirect(INBOX_PATH)
        nobody = not self.store.run(anyone_may_log_in)
        return self.page("login.html", None, status, problem=problem, nobody=nobody)

    # Actions (POST: each needs the session's CSRF token)

    def log_in(self, environ: WSGIEnvironment) -> Response:
        form = self.form(environ)
        name, password = form.get("name", ""), form.get("password", "")
        token = None
        if may_be_a_login(name, password):  # else refused as a wrong password is, unhashed and unstored
            try:
                hashed = self.store.run(lambda tx: start_login(tx, name, time.time()))
            except LockedOut:
                log_login("locked", name, environ)
                wait = f"Too many failed tries for this name: wait {int(LOGIN_LOCKOUT // 60)} minutes."
                return self.login_page(environ, HTTPStatus.TOO_MANY_REQUESTS, wait)
            token = self.open_session_if(name, password, hashed)
        log_login("ok" if token else "failed", name, environ)
        if token is None:  # one message for an unknown name and a wrong password alike
            return self.login_page(environ, HTTPStatus.UNAUTHORIZED, "Wrong name or password.")
        cookie = (f"{SESSION_COOKIE}={token}; Path={INBOX_PATH}; Max-Age={int(SESSION_LIMIT)}; HttpOnly;"
                  f" SameSite=Strict{'; Secure' if self.secure_cookie else ''}")
        return redirect(INBOX_PATH, (("Set-Cookie", cookie),))

    def open_session_if(self, name: str, password: str, hashed: str | None) -> str | None:
        """A new session's token if the password matches the hash (re-hashed if it was made with older
        parameters), else None."""
        matches, new_hash = check_password(hashed, password)
        if not matches:
            return None

        def open_it(tx: Transaction) -> str | None:
            if new_hash:
                upgrade_hash(tx, name, hashed, new_hash)
            return open_session(tx, name, time.time())
        return self.store.run(open_it)

    def log_out(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        self.check_csrf(session, self.form(environ))
        self.store.run(lambda tx: end_session(tx, session.token))
        log.info("logout", extra={"fields": {"name": session.name}})
        cookie = f"{SESSION_COOKIE}=; Path={INBOX_PATH}; Max-Age=0; HttpOnly; SameSite=Strict"
        return redirect(f"{INBOX_PATH}/login", (("Set-Cookie", cookie),))

    def act_on_conversation(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        customer, ours, action = self.conversation_of(environ)
        form = self.form(environ)
        self.check_csrf(session, form)
        if action in ("opt-out", "opt-in"):
            self.store.run(lambda tx: change_consent(tx, customer, ours, action == "opt-out", session.name, time.time()))
            log.info(f"{action} by hand", extra={"fields": {"by": session.name, "customer": mask_number(customer),
                                                            "number": ours}})
            return redirect(f"{INBOX_PATH}/conversations/{customer}/{ours}")
        if action != "send":
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", "GET"),))
        text = form.get("message", "")
        problem, status = self.send(session, customer, ours, text)
        if problem:
            return self.show_conversation(session, customer, ours, status, problem, text)
        return redirect(f"{INBOX_PATH}/conversations/{customer}/{ours}")

    def start_conversation(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        form = self.form(environ)
        self.check_csrf(session, form)
        number, ours, text = form.get("number", ""), form.get("from", self.settings.plivo_number[0]), form.get(
            "message", "")
        problem, status = self.send(session, number, ours, text)
        if problem:
            return self.page("new.html", session, status, problem=problem, number=number, draft=text)
        return redirect(f"{INBOX_PATH}/conversations/{cli_number(number)}/{number_key(ours)}")

    def send(self, session: Session, number: str, ours: str, text: str) -> tuple[str, HTTPStatus]:
        """Queue a person's message through the outbound path; what went wrong (empty: nothing) and its status."""
        if not self.settings.plivo_auth_id:
            return "Sending is off: PLIVO_AUTH_ID is not set.", HTTPStatus.SERVICE_UNAVAILABLE
        now = time.time()
        try:
            request = outbound_request({"to": number, "from": ours, "text": text}, self.settings, now)
            self.store.run(lambda tx: queue_outbound(tx, request, session.name, "inbox", now))
        except InvalidField as invalid:
            return f"Not sent: {INBOX_FIELD_NAMES.get(invalid.field, invalid.field)} {invalid.reason}.", \
                HTTPStatus.BAD_REQUEST
        except OptedOut as refusal:
            return f"Not sent: {refusal}.", HTTPStatus.CONFLICT
        return "", HTTPStatus.SEE_OTHER

    # Data routes (401 without a session)

    def updates(self, environ: WSGIEnvironment) -> Response:
        """The version of what a page shows now: {"version": ...}; the page's script compares it with its own."""
        self.session(environ, page=False)
        query = self.query(environ)
        if query["with"]:
            customer, ours = query["with"]
            version = self.store.run(lambda tx: version_of(conversation_entries(tx, customer, ours),
                                                           bool(tx.opted_out_of([customer], ours))))
        else:
            version = version_of(self.list_rows(query)[0])
        return json_response(HTTPStatus.OK, {"version": version})

    def segments(self, environ: WSGIEnvironment) -> Response:
        """How a text would be sent, while it is typed: {"segments", "encoding", "characters"}."""
        self.session(environ, page=False)
        text = self.query(environ)["text"]
        count, encoding = segments_of(text)
        return json_response(HTTPStatus.OK, {"segments": count, "encoding": encoding, "characters": len(text)})

    def static(self, environ: WSGIEnvironment) -> Response:
        """The page's style and script (no session needed: the login page uses them; they hold no data)."""
        name = environ["PATH_INFO"].removeprefix(f"{INBOX_PATH}/static/")
        if name not in STATIC_FILES:
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
        return Response(HTTPStatus.OK, static_file(name), STATIC_FILES[name])

    # Sessions, forms, pages

    def session(self, environ: WSGIEnvironment, page: bool | None) -> Session | None:
        """The request's session. Without one: a page redirects to the login page (page=True), a data
        route answers 401 (page=False); page=None returns None."""
        token = _cookie(environ.get("HTTP_COOKIE", ""), SESSION_COOKIE)
        session = token and self.store.run(
            lambda tx: session_of(tx, token, time.time(), self.settings.inbox_session_hours))
        if session or page is None:
            return session or None
        if page:
            raise HTTPError(HTTPStatus.SEE_OTHER, "log in first", (("Location", f"{INBOX_PATH}/login"),))
        raise ApiError(HTTPStatus.UNAUTHORIZED, "log in first")

    @staticmethod
    def check_csrf(session: Session, form: Mapping[str, str]) -> None:
        if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            raise HTTPError(HTTPStatus.FORBIDDEN, "the form is out of date: reload the page")

    def form(self, environ: WSGIEnvironment) -> dict[str, str]:
        fields = parse_form(read_body(environ, self.settings.max_body_bytes))
        if fields is None:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "not UTF-8 form data")
        return {name: values[0] for name, values in fields.items()}

    def query(self, environ: WSGIEnvironment) -> dict[str, Any]:
        """q, before (a time), with (a conversation) and text of a query string."""
        fields = parse_form(environ.get("QUERY_STRING", "").encode("latin-1")) or {}
        value = {name: values[0] for name, values in fields.items()}
        try:
            before = iso_timestamp(value["before"], UTC) if value.get("before") else None
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "before: not an ISO 8601 time") from None
        pair = _CONVERSATION_PATH.fullmatch(value.get("with", ""))
        return {"q": value.get("q", "")[:200], "before": before, "text": value.get("text", "")[:MAX_REPLY_CHARS * 2],
                "with": pair and pair.group(1, 2)}

    def conversation_of(self, environ: WSGIEnvironment) -> tuple[str, str, str | None]:
        """(customer, our number, action) of a conversation's path; 404 if there is none, or if it opts a
        customer out or in of a number that is not ours (a conversation with a number no longer ours can
        still be read)."""
        match = _CONVERSATION_PATH.fullmatch(environ["PATH_INFO"].removeprefix(f"{INBOX_PATH}/conversations/"))
        if not match or (match[3] in ("opt-out", "opt-in") and match[2] not in self.settings.plivo_number):
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
        return match[1], match[2], match[3]

    def page(self, template: str, session: Session | None, status: HTTPStatus = HTTPStatus.OK,
             **context: object) -> Response:
        html = self.templates.get_template(template).render(
            session=session, read_only=not self.settings.plivo_auth_id, our_numbers=self.settings.plivo_number,
            inbox=INBOX_PATH, **context)
        return Response(status, html.encode(), HTML_CONTENT_TYPE, PAGE_HEADERS)


#: The names a person sees for the outbound path's fields.
INBOX_FIELD_NAMES = {"to": "Number", "text": "Message", "from": "From", "body": "the form"}


def redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """303 See Other: after a form, the browser fetches `location` with GET (a reload posts nothing again)."""
    return Response(HTTPStatus.SEE_OTHER, b"", TEXT_CONTENT_TYPE, (("Location", location), *headers, *PAGE_HEADERS))


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


@functools.cache
def static_file(name: str) -> bytes:
    return (STATIC / name).read_bytes()

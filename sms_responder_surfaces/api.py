"""Speaking first: the business texts a customer first, through /api/messages (README: Text first).

Owns: an outbound message (checked, queued in the outbox for the core's worker, shown), the routes
under /api/messages and the OpenAPI document, API tokens and their scopes, and the commands `text`
and `tokens`. The inbox answers through the same checks and queue (outbound_request,
queue_outbound), verification codes leave through queue_outbound and count toward API_LIMIT
(check_api_limit), and `messages` shows these messages (OutboundMessage).

Uses of the core: the app's settings and store, the outbox table, the HTTP plumbing (ApiError,
read_body, parse_json, bearer_token, token_digest), phone numbers, segments, and the command helpers.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import hmac
import json
import math
import secrets
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from wsgiref.types import WSGIEnvironment

from sms_responder import (
    JSON_CONTENT_TYPE, MAX_REPLY_CHARS, NAME_PATTERN, ApiError, ConfigError, Response, Routes, Settings,
    SmsResponder, Store, Transaction, bearer_token, cli_number, command_store, configure_logging, iso_timestamp,
    json_response, log, number_forms, number_key, parse_json, read_body, read_environment, require_auth_id,
    segments_of, token_digest, xml_safe,
)

API_MESSAGES_PATH = "/api/messages"
API_MESSAGE_PREFIX = API_MESSAGES_PATH + "/"   # /api/messages/ID
OPENAPI_PATH = "/api/openapi.json"
API_WINDOW = 3600.0            # seconds: API_LIMIT counts one token's messages in the last hour
IDEMPOTENCY_WINDOW = 86400.0   # seconds an Idempotency-Key answers with its first answer
MAX_IDEMPOTENCY_KEY = 200
MAX_MEDIA_URLS = 10
MAX_URL_LENGTH = 2048
SCHEDULE_GRACE = 60.0          # seconds a send_at may lie in the past (clocks differ by a little)
SCHEDULE_HORIZON = 30 * 86400.0
LAST_USE_EVERY = 60.0          # seconds: a token's last use is written at most this often
TOKEN_PREFIX = "smsr_"         # so that a leaked token is recognisable (secret scanners, logs)
#: What a token may do, in the order `tokens list` shows them: send (POST /api/messages, and GET and
#: DELETE of the messages it queued), read (GET of every message and conversation), verify (the
#: verification routes).
SCOPES = ("send", "read", "verify")
DEFAULT_SCOPES = ("send",)     # a token for a system that sends reminders reads no one's conversations
OUTBOUND_FIELDS = frozenset({"to", "text", "from", "media_urls", "send_at"})


def attach(app: SmsResponder) -> Routes:
    """The routes under /api/messages, and the OpenAPI document."""
    return OutboundApi(app.settings, app.store).routes()


def add_commands(commands: Any) -> None:
    """text (queue one message) and tokens (add with scopes, list, remove)."""
    text_parser = commands.add_parser("text", help="queue one outbound message (sent by the worker)")
    text_parser.add_argument("number", help="the recipient, e.g. +14155550123")
    text_parser.add_argument("text", help="the message text (may be empty with --media)")
    text_parser.add_argument("--from", dest="sender", metavar="N", help="our number (default: the first of "
                                                                         "PLIVO_NUMBER)")
    text_parser.add_argument("--at", metavar="TIME", help="send at this ISO 8601 time (local without an offset; "
                                                          "at most 30 days ahead)")
    text_parser.add_argument("--media", action="append", default=[], metavar="URL",
                             help="an https:// media URL: the message is an MMS (repeat for several, at most 10)")
    text_parser.set_defaults(run=send_text)
    tokens = commands.add_parser("tokens", help="API tokens: add (with scopes), list, remove").add_subparsers(
        dest="action", required=True)
    for action, what in (("add", "make a token and print it (once)"), ("remove", "revoke a token at once")):
        token_parser = tokens.add_parser(action, help=what)
        token_parser.add_argument("name", help="1 to 64 of A-Z a-z 0-9 . _ -")
        token_parser.set_defaults(run=manage_tokens)
    token_parser = tokens.choices["add"]
    token_parser.add_argument("--scope", default=",".join(DEFAULT_SCOPES), metavar="SCOPES",
                              help="what the token may do, comma-separated: send (POST /api/messages; GET and"
                                   " DELETE of the messages it queued), read (GET of every message and"
                                   " conversation), verify (the verification routes) (default: %(default)s)")
    tokens.add_parser("list", help="every token's name, scopes, creation and last use").set_defaults(
        run=manage_tokens)


# -- An outbound message: checked, queued in the outbox, shown ----------------


class InvalidField(ValueError):
    """A field of an outbound message that cannot be sent: 400 with its name, or exit 2 naming it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class OptedOut(Exception):
    """The recipient has opted out of the number the message would come from: nothing is queued."""

    def __init__(self, recipient: str, src: str) -> None:
        super().__init__(f"+{recipient} has opted out of {src}")
        self.recipient, self.src = recipient, src


@dataclasses.dataclass(frozen=True)
class OutboundRequest:
    """A message the business asks to send, checked: numbers as digits, send_at as unix time."""

    to: str
    text: str
    src: str
    media_urls: tuple[str, ...] = ()
    send_at: float | None = None


@dataclasses.dataclass(frozen=True)
class OutboundMessage:
    """An outbound message as GET /api/messages/ID shows it (numbers and text are None once purged)."""

    id: str
    to: str | None
    src: str | None
    text: str | None
    media_urls: tuple[str, ...]
    status: str
    error: str | None
    created_at: datetime
    send_at: datetime | None
    sent_at: datetime | None
    plivo_message_uuid: str | None
    sent_by: str | None

    def document(self) -> dict[str, object]:
        """The JSON object of GET /api/messages/ID."""
        segments, _ = segments_of(self.text or "")
        return {"id": self.id, "to": self.to, "from": self.src, "text": self.text,
                "media_urls": list(self.media_urls), "status": self.status, "error": self.error,
                "created_at": _iso(self.created_at), "send_at": _iso(self.send_at), "sent_at": _iso(self.sent_at),
                "plivo_message_uuid": self.plivo_message_uuid, "segments": segments, "sent_by": self.sent_by}

    @property
    def key(self) -> str:
        return "out " + self.id

    @property
    def at(self) -> datetime:
        return self.created_at

    def as_json(self) -> str:
        """A `messages --json` line."""
        return json.dumps({"direction": "out", **self.document()}, ensure_ascii=False)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def outbound_request(document: object, settings: Settings, now: float) -> OutboundRequest:
    """Check a requested message field by field; InvalidField names the first field that is wrong."""
    if not isinstance(document, dict):
        raise InvalidField("body", "expected a JSON object")
    for key in document:
        if key not in OUTBOUND_FIELDS:
            raise InvalidField(key, "unknown field")
    media = _media_urls(document.get("media_urls", []))
    return OutboundRequest(
        to=_recipient(document.get("to"), settings), text=_outbound_text(document.get("text"), bool(media)),
        src=our_number(document.get("from"), settings), media_urls=media,
        send_at=_send_at(document.get("send_at"), now))


def _recipient(value: object, settings: Settings) -> str:
    if value is None:
        raise InvalidField("to", "required")
    if not isinstance(value, str):
        raise InvalidField("to", "must be a string such as +14155550123")
    try:
        number = cli_number(value, "to")
    except ValueError:
        raise InvalidField("to", f"{value!r} is not a phone number of 3 to 20 digits") from None
    if number in settings.plivo_number:
        raise InvalidField("to", "is one of our own numbers")
    return number


def _outbound_text(value: object, has_media: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidField("text", "must be a string")
    if len(value) > MAX_REPLY_CHARS:
        raise InvalidField("text", f"longer than {MAX_REPLY_CHARS} characters ({len(value)})")
    if xml_safe(value) != value:  # control characters, lone surrogates: nothing a phone shows
        raise InvalidField("text", "holds characters an SMS cannot carry")
    if (not value or value.isspace()) and not has_media:
        raise InvalidField("text", "required (unless media_urls has a URL)")
    return value


def our_number(value: object, settings: Settings) -> str:
    """The `from` of a request: one of PLIVO_NUMBER (the first when absent), digits; else 400."""
    if value is None:
        return settings.plivo_number[0]
    if not isinstance(value, str) or number_key(value) not in settings.plivo_number:
        raise InvalidField("from", "must be one of PLIVO_NUMBER")
    return number_key(value)


def _media_urls(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_MEDIA_URLS:
        raise InvalidField("media_urls", f"must be a list of at most {MAX_MEDIA_URLS} https:// URLs")
    for url in value:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) and len(url) <= MAX_URL_LENGTH else None
        if parts is None or parts.scheme != "https" or not parts.hostname or not url.isprintable() or " " in url:
            raise InvalidField("media_urls", f"{str(url)[:80]!r} is not an https:// URL")
    return tuple(value)


def _send_at(value: object, now: float) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidField("send_at", "must be an ISO 8601 time with an offset, e.g. 2026-12-24T09:00:00-05:00")
    when = moment.timestamp()
    if when < now - SCHEDULE_GRACE:
        raise InvalidField("send_at", "is in the past")
    if when > now + SCHEDULE_HORIZON:
        raise InvalidField("send_at", "is more than 30 days ahead")
    return when


#: The columns an OutboundMessage is made of (outbound_of), in its order.
OUTBOUND_COLUMNS = ("public_id, dst, src, text, media_urls, status, error, queued_at, send_at, sent_at,"
                    " plivo_message_uuid, sent_by")


def queue_outbound(tx: Transaction, request: OutboundRequest, sent_by: str, sent_via: str,
                   now: float, text_source: str | None = None) -> OutboundMessage:
    """Queue (or schedule) one outbound message; OptedOut if its recipient has opted out of that number.

    With text_source ("NAME:KEY"), request.text is stored masked and the worker sends the text the
    surface registered as NAME makes (a verification code, which is never stored)."""
    if tx.opted_out_of([request.to], request.src):
        raise OptedOut(request.to, request.src)
    scheduled = request.send_at is not None and request.send_at > now
    public_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO outbox (public_id, kind, status, src, dst, text, media_urls, attempts, next_attempt_at,"
        " queued_at, send_at, sent_by, sent_via, text_source)"
        " VALUES (?, 'outbound', ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
        (public_id, "scheduled" if scheduled else "queued", request.src, request.to, request.text,
         json.dumps(request.media_urls) if request.media_urls else None, request.send_at if scheduled else now,
         tx.timestamp(now), None if request.send_at is None else tx.timestamp(request.send_at), sent_by, sent_via,
         text_source))
    return OutboundMessage(
        public_id, request.to, request.src, request.text, request.media_urls, "scheduled" if scheduled else "queued",
        None, datetime.fromtimestamp(now, UTC), None if request.send_at is None else
        datetime.fromtimestamp(request.send_at, UTC), None, None, sent_by)


def outbound_message(history: Transaction, public_id: str, token: str | None = None) -> OutboundMessage | None:
    """One outbound message by its ID; with `token`, only if that API token queued it."""
    if token is None:
        row = history.execute(f"SELECT {OUTBOUND_COLUMNS} FROM outbox WHERE public_id = ?", (public_id,)).fetchone()
    else:
        row = history.execute(f"SELECT {OUTBOUND_COLUMNS} FROM outbox WHERE public_id = ? AND sent_via = 'api'"
                              " AND sent_by = ?", (public_id, token)).fetchone()
    return None if row is None else outbound_of(history, row)


def cancel_outbound(tx: Transaction, public_id: str) -> str | None:
    """Cancel a message still waiting (scheduled or queued); its status afterwards, None if there is none."""
    cancelled = tx.execute("UPDATE outbox SET status = 'cancelled', error = 'cancelled by request'"
                           " WHERE public_id = ? AND status IN ('scheduled', 'queued')", (public_id,)).rowcount
    if cancelled:
        return "cancelled"
    row = tx.execute("SELECT status FROM outbox WHERE public_id = ?", (public_id,)).fetchone()
    return row and row[0]


def conversation_with(history: Transaction, number: str, since: float | None, limit: int) -> list[dict]:
    """GET /api/messages?number=: the customer's messages to us and ours to them, newest first."""
    since_text = history.timestamp(since or 0)
    inbound = history.execute(
        "SELECT message_uuid, from_number, to_number, text, media_urls, received_at, outcome, rule, reply"
        " FROM messages WHERE from_number IN (?, ?) AND received_at >= ? ORDER BY received_at DESC LIMIT ?",
        (*number_forms(number), since_text, limit)).fetchall()
    outbound = history.execute(
        f"SELECT {OUTBOUND_COLUMNS} FROM outbox WHERE kind = 'outbound' AND dst = ? AND queued_at >= ?"
        " ORDER BY queued_at DESC LIMIT ?", (number_key(number), since_text, limit)).fetchall()
    items = [(history.moment(row[5]), {
        "direction": "in", "message_uuid": row[0], "from": row[1], "to": row[2], "text": row[3],
        "media_urls": json.loads(row[4] or "[]"), "received_at": _iso(history.moment(row[5])), "outcome": row[6],
        "rule": row[7], "reply": row[8]}) for row in inbound]
    items += [(message.created_at, {"direction": "out", **message.document()})
              for message in (outbound_of(history, row) for row in outbound)]
    return [item for _, item in sorted(items, key=lambda pair: pair[0], reverse=True)[:limit]]


def outbound_of(history: Transaction, row: tuple) -> OutboundMessage:
    """The OutboundMessage of a row read as OUTBOUND_COLUMNS."""
    moment = lambda value: None if value is None else history.moment(value)  # noqa: E731
    return OutboundMessage(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])) if row[4] else (), row[5],
                           row[6], history.moment(row[7]), moment(row[8]), moment(row[9]), row[10], row[11])


# -- Tokens and the routes: /api/messages --------------------------------------

def api_use(tx: Transaction, token: str, now: float) -> tuple[int, float | None]:
    """How many messages this token queued in the last hour, and when the oldest of them was queued."""
    count, oldest = tx.execute(
        "SELECT count(*), min(queued_at) FROM outbox WHERE sent_via = 'api' AND sent_by = ? AND queued_at >= ?",
        (token, tx.timestamp(now - API_WINDOW))).fetchone()
    return count, None if oldest is None else tx.moment(oldest).timestamp()


def check_api_limit(tx: Transaction, token: str, limit: int, now: float) -> None:
    """429 with Retry-After when this token has queued API_LIMIT messages in the last hour (its verification
    codes among them). Hold tx.lock(f"api {token}"), so that two requests racing count each other."""
    used, oldest = api_use(tx, token, now)
    if used >= limit:
        wait = math.ceil(oldest + API_WINDOW - now) if oldest else int(API_WINDOW)
        raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, f"API_LIMIT: {limit} messages an hour",
                       (("Retry-After", str(max(1, wait))),))


def first_answer(tx: Transaction, token: str, key: str, now: float) -> tuple[str, str, OutboundMessage] | None:
    """(body digest, status first answered, the message) of an Idempotency-Key used within 24 h."""
    row = tx.execute(
        f"SELECT r.body_digest, r.status, {', '.join('o.' + c for c in OUTBOUND_COLUMNS.split(', '))}"
        " FROM api_requests r JOIN outbox o ON o.id = r.outbox_id WHERE r.token = ? AND r.key = ?"
        " AND r.created_at >= ?", (token, key, tx.timestamp(now - IDEMPOTENCY_WINDOW))).fetchone()
    return None if row is None else (row[0], row[1], outbound_of(tx, row[2:]))


def remember_answer(tx: Transaction, token: str, key: str, digest: str, message: OutboundMessage,
                    now: float) -> None:
    """Keep a key's first answer (replacing one older than 24 h)."""
    tx.execute(
        "INSERT INTO api_requests (token, key, body_digest, outbox_id, status, created_at)"
        " SELECT ?, ?, ?, id, ?, ? FROM outbox WHERE public_id = ?"
        " ON CONFLICT (token, key) DO UPDATE SET body_digest = excluded.body_digest,"
        " outbox_id = excluded.outbox_id, status = excluded.status, created_at = excluded.created_at",
        (token, key, digest, message.status, tx.timestamp(now), message.id))


@dataclasses.dataclass(frozen=True)
class TokenHolder:
    """Who presented a valid token: its name, and its scopes."""

    name: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """403 naming the scope, unless this token has it."""
        if scope not in self.scopes:
            raise scope_missing(scope)


def scope_missing(scope: str) -> ApiError:
    """The 403 of a route outside a token's scopes: {"error": ..., "scope": the scope it needs}."""
    return ApiError(HTTPStatus.FORBIDDEN, f"this token's scopes do not include {scope}", scope=scope)


def parse_scopes(raw: str) -> tuple[str, ...]:
    """`send,read`: the scopes named, in SCOPES order; ValueError for an unknown one, or none."""
    named = [part.strip() for part in raw.split(",")]
    unknown = [part for part in named if part not in SCOPES]
    if unknown or not named:
        raise ValueError(f"{(unknown or [raw])[0]!r} is not a scope: send, read or verify, comma-separated")
    return tuple(scope for scope in SCOPES if scope in named)


def add_token(tx: Transaction, name: str, now: float, scopes: Iterable[str] = DEFAULT_SCOPES) -> str:
    """Make a token called `name` with these scopes; the token itself, which is shown once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    stored = ",".join(scope for scope in SCOPES if scope in set(scopes))
    inserted = tx.execute("INSERT INTO api_tokens (name, digest, scopes, created_at) VALUES (?, ?, ?, ?)"
                          " ON CONFLICT (name) DO NOTHING",
                          (name, token_digest(token), stored, tx.timestamp(now))).rowcount
    if not inserted:
        raise ConfigError([f"a token named {name} exists already; `tokens remove {name}` first"])
    return token


def token_list(history: Transaction) -> list[tuple[str, str, datetime, datetime | None]]:
    """(name, scopes, created, last used) of every token."""
    return [(name, scopes, history.moment(created), last_used and history.moment(last_used))
            for name, scopes, created, last_used in history.execute(
                "SELECT name, scopes, created_at, last_used_at FROM api_tokens ORDER BY name").fetchall()]


def remove_token(tx: Transaction, name: str) -> str | None:
    """Revoke a token; the scopes it had, None if there is no such token."""
    row = tx.execute("DELETE FROM api_tokens WHERE name = ? RETURNING scopes", (name,)).fetchone()
    return row and row[0]


def token_holder(tx: Transaction, token: str, now: float) -> TokenHolder | None:
    """Who holds the token presented, or None; its last use is written at most once a minute."""
    digest = token_digest(token)
    row = tx.execute("SELECT name, digest, last_used_at, scopes FROM api_tokens WHERE digest = ?",
                     (digest,)).fetchone()
    if row is None or not hmac.compare_digest(row[1], digest):
        return None
    if row[2] is None or tx.moment(row[2]).timestamp() < now - LAST_USE_EVERY:
        tx.execute("UPDATE api_tokens SET last_used_at = ? WHERE name = ?", (tx.timestamp(now), row[0]))
    return TokenHolder(row[0], frozenset(row[3].split(",")))


class OutboundApi:
    """The routes under /api: a token holder's outbound messages, queued through the outbox.

    Every route but the OpenAPI document needs `Authorization: Bearer TOKEN`, and the scope it
    serves (SCOPES): send for POST, and for GET and DELETE of the messages this token queued; read
    for GET of any message and of a conversation. Another token's message is not found (404) by a
    token that may not read it, as an unknown ID, so that its existence is not revealed. A POST is
    decided in one transaction, serialized per token (tx.lock): its Idempotency-Key's first
    answer, the token's API_LIMIT, the recipient's opt-out, then the queued row and the key,
    so that two copies racing on two workers or hosts queue one message.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def routes(self) -> Routes:
        return {API_MESSAGES_PATH: {"POST": self.create, "GET": self.conversation},
                API_MESSAGE_PREFIX: {"GET": self.show, "DELETE": self.cancel},
                OPENAPI_PATH: {"GET": self.openapi, "HEAD": self.openapi}}

    def create(self, environ: WSGIEnvironment) -> Response:
        """POST /api/messages: 202 with the queued (or scheduled) message, or the error the README names (Text first)."""
        holder = self.authenticate(environ)
        holder.require("send")
        token = holder.name
        if not self.settings.plivo_auth_id:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "sending needs PLIVO_AUTH_ID")
        document = parse_json(read_body(environ, self.settings.max_body_bytes, JSON_CONTENT_TYPE, ApiError))
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} characters",
                           field="Idempotency-Key")
        now = time.time()
        try:
            request = outbound_request(document, self.settings, now)
        except InvalidField as problem:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(problem), field=problem.field) from None
        environ["sms_responder.recipient"] = request.to
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
        message = self.store.run(lambda tx: self.queue(tx, token, key, digest, request, now))
        segments, encoding = segments_of(message.text or "")
        return json_response(HTTPStatus.ACCEPTED, {
            "id": message.id, "status": message.status, "to": message.to, "from": message.src,
            "segments": segments, "encoding": encoding}, (("Location", API_MESSAGE_PREFIX + message.id),))

    def queue(self, tx: Transaction, token: str, key: str | None, digest: str, request: OutboundRequest,
              now: float) -> OutboundMessage:
        tx.lock(f"api {token}")
        if key:
            first = first_answer(tx, token, key, now)
            if first and first[0] != digest:
                raise ApiError(HTTPStatus.CONFLICT, "idempotency key reused with another body")
            if first:
                return dataclasses.replace(first[2], status=first[1])  # the first answer, again
        check_api_limit(tx, token, self.settings.api_limit, now)
        try:
            message = queue_outbound(tx, request, token, "api", now)
        except OptedOut as refusal:
            raise ApiError(HTTPStatus.CONFLICT, "opted_out", to=refusal.recipient) from None
        if key:
            remember_answer(tx, token, key, digest, message, now)
        return message

    def show(self, environ: WSGIEnvironment) -> Response:
        """GET /api/messages/ID."""
        message = self.message_in_path(environ, any_with_read=True)
        return json_response(HTTPStatus.OK, message.document())

    def cancel(self, environ: WSGIEnvironment) -> Response:
        """DELETE /api/messages/ID: 204 once cancelled; 409 when it has left already."""
        message = self.message_in_path(environ, any_with_read=False)
        status = self.store.run(lambda tx: cancel_outbound(tx, message.id))
        if status != "cancelled":
            raise ApiError(HTTPStatus.CONFLICT, f"it is {status} already: too late to cancel", status=status)
        return Response(HTTPStatus.NO_CONTENT, b"", JSON_CONTENT_TYPE)

    def message_in_path(self, environ: WSGIEnvironment, any_with_read: bool) -> OutboundMessage:
        """The message /api/messages/ID names, if the request's token may see it here: any message with the
        read scope when `any_with_read` (GET), else only one this token queued (send). 403 naming the scope
        when the token has neither; 404 when there is no such message for this token."""
        holder = self.authenticate(environ)
        if any_with_read and "read" in holder.scopes:
            queued_by = None
        elif "send" in holder.scopes:
            queued_by = holder.name
        else:
            raise scope_missing("read" if any_with_read else "send")
        public_id = environ["PATH_INFO"][len(API_MESSAGE_PREFIX):]
        message = self.store.run(lambda tx: outbound_message(tx, public_id, queued_by))
        if message is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "no message with this id")
        environ["sms_responder.recipient"] = message.to or ""
        return message

    def conversation(self, environ: WSGIEnvironment) -> Response:
        """GET /api/messages?number=N&since=TIME&limit=L: both directions with one customer, newest first."""
        self.authenticate(environ).require("read")
        query = api_query(environ.get("QUERY_STRING", ""))
        environ["sms_responder.recipient"] = query["number"]
        items = self.store.run(lambda tx: conversation_with(tx, query["number"], query["since"], query["limit"]))
        return json_response(HTTPStatus.OK, {"messages": items})

    def openapi(self, environ: WSGIEnvironment) -> Response:
        """GET /api/openapi.json: the API described (no token needed)."""
        return Response(HTTPStatus.OK, openapi_document(), JSON_CONTENT_TYPE)

    def authenticate(self, environ: WSGIEnvironment) -> TokenHolder:
        """Who holds the valid token the request carries, else 401 with WWW-Authenticate: Bearer."""
        token = bearer_token(environ)
        if token is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, "an API token is needed: Authorization: Bearer TOKEN",
                           (("WWW-Authenticate", "Bearer"),))
        holder = self.store.run(lambda tx: token_holder(tx, token, time.time()))
        if holder is None:
            raise ApiError(HTTPStatus.UNAUTHORIZED, "invalid or revoked token",
                           (("WWW-Authenticate", 'Bearer error="invalid_token"'),))
        environ["sms_responder.token"] = holder.name
        return holder


def api_query(query_string: str) -> dict[str, Any]:
    """number, since and limit of GET /api/messages, checked (400 naming the parameter)."""
    try:
        query = urllib.parse.parse_qs(query_string, strict_parsing=bool(query_string), errors="strict")
    except (ValueError, UnicodeError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid query string", field="query") from None
    unknown = sorted(set(query) - {"number", "since", "limit"})
    if unknown or any(len(values) > 1 for values in query.values()):
        raise ApiError(HTTPStatus.BAD_REQUEST, "unknown or repeated parameter", field=(unknown or list(query))[0])
    value = {name: values[0] for name, values in query.items()}
    try:
        number = cli_number(value.get("number", ""), "number")
    except ValueError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(error) if "number" in value else "number is required",
                       field="number") from None
    try:
        since = iso_timestamp(value["since"], UTC) if "since" in value else None
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "since: not an ISO 8601 time", field="since") from None
    limit = value.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= 500:
        raise ApiError(HTTPStatus.BAD_REQUEST, "limit: a whole number from 1 to 500", field="limit")
    return {"number": number, "since": since, "limit": int(limit)}


@functools.cache
def openapi_document() -> bytes:
    return Path(__file__).with_name("openapi.json").read_bytes()


# -- Commands: text, tokens ---------------------------------------------------

def send_text(args: argparse.Namespace) -> int:
    """text: queue (or schedule) one message; exit 1 when the recipient has opted out."""
    settings = Settings.from_env(read_environment())
    require_auth_id(settings, "text")
    now = time.time()
    document = {"to": args.number, "text": args.text, "media_urls": args.media}
    if args.sender:
        document["from"] = args.sender
    if args.at:
        try:  # a person at the terminal: a time without an offset is local
            document["send_at"] = datetime.fromtimestamp(iso_timestamp(args.at, None)).astimezone().isoformat()
        except ValueError:
            raise ConfigError([f"--at: {args.at!r} is not an ISO 8601 time such as 2026-12-24T09:00"]) from None
    try:
        request = outbound_request(document, settings, now)
    except InvalidField as problem:
        raise ConfigError([{"to": "NUMBER", "text": "TEXT", "from": "--from", "media_urls": "--media",
                            "send_at": "--at"}.get(problem.field, problem.field) + ": " + problem.reason]) from None
    with command_store(settings) as store:
        try:
            with store.transaction() as tx:
                message = queue_outbound(tx, request, "cli", "cli", now)
        except OptedOut as refusal:
            print(f"not sent: {refusal}", file=sys.stderr)
            return 1
    if message.status == "scheduled":
        print(f"scheduled {message.id} at {message.send_at.astimezone().isoformat(timespec='seconds')}")
    else:
        print(f"queued {message.id}")
    return 0


def manage_tokens(args: argparse.Namespace) -> int:
    """tokens add NAME [--scope SCOPES] | list | remove NAME; each change logged (never the token)."""
    settings = Settings.from_env(read_environment())
    if args.action != "list" and not NAME_PATTERN.fullmatch(args.name):
        raise ConfigError([f"token name {args.name!r}: 1 to 64 letters, digits, '.', '_' or '-'"])
    try:
        scopes = parse_scopes(args.scope) if args.action == "add" else ()
    except ValueError as error:
        raise ConfigError([f"--scope: {error}"]) from None
    configure_logging(settings.log_level, settings.log_format)
    with command_store(settings) as store:
        if args.action == "list":
            with store.reading() as history:
                tokens = token_list(history)
            for name, token_scopes, created, last_used in tokens:
                last = last_used.astimezone().strftime("%Y-%m-%d %H:%M") if last_used else "never used"
                print(f"{name:<24} {token_scopes:<17} created {created.astimezone():%Y-%m-%d %H:%M},"
                      f" last used {last}")
            return 0
        with store.transaction() as tx:
            if args.action == "add":
                token = add_token(tx, args.name, time.time(), scopes)
            elif (removed := remove_token(tx, args.name)) is None:
                raise ConfigError([f"there is no token named {args.name}"])
    if args.action == "add":
        log.info("token added", extra={"fields": {"name": args.name, "scopes": ",".join(scopes)}})
        print(token)
        print(f"token {args.name}: keep it secret; it is shown only now (`tokens remove {args.name}` revokes it)",
              file=sys.stderr)
    else:
        log.info("token removed", extra={"fields": {"name": args.name, "scopes": removed}})
        print(f"removed token {args.name}: every request with it is refused from now on")
    return 0

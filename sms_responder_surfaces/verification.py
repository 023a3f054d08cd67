"""Verification codes: a one-time code texted to a phone, checked once (README: Verify a phone number).

Owns: the routes under /api/verifications (a code requested and resent, checked, shown, cancelled),
the table `verifications`, how a code is made (it is never stored), the country allow-list and the
prefix limit against SMS pumping, and the text maker the outbox worker calls to put the code into
the SMS as it leaves.

Uses of the core: the app's settings, store and text makers, the outbox (NotToBeSent, OutboxRow),
the HTTP plumbing (ApiError, read_body, parse_json, json_response), numbers and the log; and of
speaking first (api): tokens and their `verify` scope, API_LIMIT, and queue_outbound, through which
the code's SMS leaves like any outbound message (opt-outs, retries, lease, delivery reports, purge).

How, and why so:

- The code is made, never kept. code = HMAC-SHA256(key, ID, seed), its first 64 bits as a number,
  the last VERIFY_CODE_LENGTH decimal digits (HOTP's truncation, RFC 4226 5.3, on 64 bits: HOTP's
  31 would not fill 10 digits evenly). `seed` is 128 random bits stored with the verification;
  `key` is HKDF-SHA256 (RFC 5869) of PLIVO_AUTH_TOKEN under a fixed salt and label, so it is not
  the token itself and is the same on every host. The worker that sends the SMS may be another
  process, and the check may reach another host: each re-makes the code where it is needed, so the
  code is in no row, no log line, no listing; only the Plivo request carries it. A stolen database
  holds ID and seed, and without the key cannot test a single code offline (a plain hash of six
  digits is reversed in a second). No new secret setting: every host that serves or sends already
  holds PLIVO_AUTH_TOKEN (webhook signatures, the Plivo API), and a secret of our own would be one
  more to distribute and rotate. Rotating the token changes the key: codes sent before no longer
  match (the person asks for a new one); VERIFY_TTL, a day at most, bounds how many that touches.
  Codes are compared with hmac.compare_digest.
- The SMS leaves through the outbox. Its row holds VERIFY_TEXT with the code replaced by MASK
  (what `messages`, the API's listings and the inbox show) and text_source "verification:ID"; the
  worker calls sms_text (registered in attach as the app's text maker) to make the real text just
  before the Send Message call, and leaves the masked one stored. A row whose verification is no
  longer pending (approved, cancelled, expired) is cancelled instead of sent.
- The database decides every race. A check reads the verification, compares the code, then writes
  with a conditional UPDATE: approved only `WHERE status = 'pending' AND expires_at > now`, and a
  wrong code counted only `WHERE ... AND checks_left > 0`, so checks racing on several workers or
  hosts approve at most once and count each wrong code once, never past VERIFY_MAX_CHECKS. A
  request holds tx.lock on its token (API_LIMIT, as /api/messages does) and on the number's prefix
  (the prefix limit, one pending verification per number), and a unique partial index refuses a
  second pending row in any case.
- A resend is the same verification: the same seed, so the same code; sends + 1, while the checks
  left and the expiry stay as they were (a resend must not buy more guesses nor more time). Each
  send is an SMS queued by the token, so it counts toward API_LIMIT like any message.
- SMS pumping. VERIFY_COUNTRIES holds ITU-T E.164 calling codes (CALLING_CODES below: 1 to 3
  digits, prefix-free, so a number's code is its only prefix in the table; a table of our own
  rather than a dependency such as phonenumbers, whose metadata is ~40x this module for one
  lookup). A prefix is the calling code and the next 3 digits (for 1, the area code). When
  VERIFY_PREFIX_LIMIT verifications to one prefix, none approved, were made within one hour, new
  ones to it are refused for 12 hours from the last of them (429 fraud_suspected), decided from
  the stored rows through an index, so it holds across hosts; an approval lifts it (real people).
- A verification belongs to the token that asked for it: another token gets 404, as for an
  unknown ID (as /api/messages does with another token's message).
- Each request and check logs one INFO line (ID, the number's last four digits, result), and is
  counted in sms_verifications_total{result} when metrics are on; never the code.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from wsgiref.types import WSGIEnvironment

from sms_responder import (
    JSON_CONTENT_TYPE, API_PREFIX, ApiError, ConfigError, NotToBeSent, OutboxRow, Response, Routes, Settings,
    SmsResponder, Transaction, cli_number, json_response, log, mask_number, parse_json, read_body,
)
from sms_responder_surfaces.api import (
    InvalidField, OutboundApi, OutboundRequest, TokenHolder, check_api_limit, our_number, queue_outbound,
)

VERIFICATIONS_PATH = API_PREFIX + "verifications"
VERIFICATION_PREFIX = VERIFICATIONS_PATH + "/"  # /api/verifications/ID and /api/verifications/ID/check
TEXT_SOURCE = "verification"   # outbox.text_source "verification:ID": this module makes the text
MASK = "******"                # the code's place in every text that is stored or shown
SEED_BYTES = 16
KEY_SALT = b"sms_responder"
KEY_LABEL = b"verification codes v1"
CODE_PATTERN = re.compile("[0-9]{4,10}")
E164_DIGITS = 15               # ITU-T E.164: a number has at most 15 digits, its calling code included
MIN_NATIONAL_DIGITS = 4        # the shortest national numbers (Niue, Saint Helena) have 4
PREFIX_DIGITS = 3              # a prefix: the calling code and the next 3 digits (for 1, the area code)
PREFIX_WINDOW = 3600.0         # seconds: VERIFY_PREFIX_LIMIT unapproved verifications within an hour ...
PREFIX_BLOCK = 12 * 3600.0     # ... refuse new ones to that prefix for 12 hours
VERIFICATION_FIELDS = frozenset({"to", "from"})
#: Results of a request (sent ... max_sends) and of a check (approved ... already_approved): the log line's
#: `result` and the label of sms_verifications_total.
RESULTS = ("sent", "resent", "country_not_allowed", "opted_out", "fraud_suspected", "api_limit", "max_sends",
           "approved", "wrong_code", "max_attempts", "expired", "cancelled", "already_approved")

#: ITU-T E.164 country calling codes in service (ITU-T E.164 Annex to Operational Bulletin, Complement
#: "List of ITU-T Recommendation E.164 assigned country codes"), geographic and global services (800
#: freephone, 808 shared cost, 870 Inmarsat, 881-883 satellite and international networks, 888, 979
#: premium rate). Prefix-free: no code is the beginning of another.
CALLING_CODES = frozenset("""
    1 7
    20 211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 235 236 237 238 239
    240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255 256 257 258 260 261 262 263 264 265 266
    267 268 269 27 290 291 297 298 299
    30 31 32 33 34 350 351 352 353 354 355 356 357 358 359 36 370 371 372 373 374 375 376 377 378 379 380 381
    382 383 385 386 387 389 39
    40 41 420 421 423 43 44 45 46 47 48 49
    500 501 502 503 504 505 506 507 508 509 51 52 53 54 55 56 57 58 590 591 592 593 594 595 596 597 598 599
    60 61 62 63 64 65 66 670 672 673 674 675 676 677 678 679 680 681 682 683 685 686 687 688 689 690 691 692
    800 808 81 82 84 850 852 853 855 856 86 870 880 881 882 883 886 888
    90 91 92 93 94 95 960 961 962 963 964 965 966 967 968 970 971 972 973 974 975 976 977 979 98 992 993 994
    995 996 998
""".split())


def attach(app: SmsResponder) -> Routes:
    """The routes under /api/verifications; the worker learns from the app how to make a code's SMS."""
    verifications = Verifications(app)
    app.text_makers[TEXT_SOURCE] = verifications.sms_text
    return verifications.routes()


def add_commands(commands: Any) -> None:
    """Verification codes have no command of their own (`tokens add NAME --scope verify` makes their token)."""


# -- The code: made from a seed and a key, never stored -------------------------

def code_key(auth_token: str) -> bytes:
    """The key codes are made with: HKDF-SHA256 (RFC 5869, one block) of PLIVO_AUTH_TOKEN, salt and label
    fixed, so that every host derives the same key, and the key is not the token."""
    pseudorandom = hmac.digest(KEY_SALT, auth_token.encode("utf-8"), "sha256")   # extract
    return hmac.digest(pseudorandom, KEY_LABEL + b"\x01", "sha256")              # expand


def code_of(key: bytes, verification_id: str, seed: str, digits: int) -> str:
    """A verification's code: `digits` decimal digits of HMAC-SHA256(key, ID and seed)."""
    mac = hmac.digest(key, f"{verification_id}\0{seed}".encode(), "sha256")
    return str(int.from_bytes(mac[:8], "big") % 10**digits).zfill(digits)


def code_text(template: str, code: str, queued_at: float, expires_at: float) -> str:
    """VERIFY_TEXT with the code (or MASK) and the minutes left when the SMS was queued; the same minutes
    for the masked text stored and the real text the worker makes from the stored times."""
    minutes = max(1, math.ceil(round(expires_at - queued_at) / 60))
    return template.format_map({"code": code, "minutes": minutes})


# -- Countries and prefixes: against SMS pumping --------------------------------

def calling_code(number: str) -> str | None:
    """The E.164 country calling code a number (digits) begins with, None if it begins with none."""
    return next((number[:length] for length in (1, 2, 3) if number[:length] in CALLING_CODES), None)


def prefix_of(number: str, code: str) -> str:
    """The prefix the prefix limit counts by: the calling code and the next 3 digits (for 1, the area code)."""
    return number[:len(code) + PREFIX_DIGITS]


def allowed_countries(settings: Settings) -> frozenset[str] | None:
    """The calling codes codes may be sent to (VERIFY_COUNTRIES, by default PLIVO_NUMBER's); None: all.
    A code that is no country's stops start-up."""
    if settings.verify_countries == ("*",):
        return None
    unknown = [code for code in settings.verify_countries if code not in CALLING_CODES]
    if unknown:
        raise ConfigError([f"VERIFY_COUNTRIES: {unknown[0]} is not a country calling code (ITU-T E.164),"
                           " e.g. 1 or 44; * allows every country"])
    numbers = settings.verify_countries or settings.plivo_number
    return frozenset(code for code in map(calling_code, numbers) if code)


@dataclasses.dataclass(frozen=True)
class CodeRequest:
    """A code asked for: to whom (digits, with a calling code), from which number of ours, its prefix."""

    to: str
    src: str
    country: str
    prefix: str


def code_request(document: object, settings: Settings) -> CodeRequest:
    """POST /api/verifications' body, checked; InvalidField names the first field that is wrong."""
    if not isinstance(document, dict):
        raise InvalidField("body", "expected a JSON object")
    for key in document:
        if key not in VERIFICATION_FIELDS:
            raise InvalidField(key, "unknown field")
    to = _phone_number(document.get("to"), settings)
    country = calling_code(to)
    return CodeRequest(to, our_number(document.get("from"), settings), country, prefix_of(to, country))


def _phone_number(value: object, settings: Settings) -> str:
    if value is None:
        raise InvalidField("to", "required")
    try:
        number = cli_number(value, "to") if isinstance(value, str) else None
    except ValueError:
        number = None
    if number is None:
        raise InvalidField("to", "must be a phone number such as +14155550123")
    if number in settings.plivo_number:
        raise InvalidField("to", "is one of our own numbers")
    country = calling_code(number)
    if country is None or len(number) > E164_DIGITS or len(number) - len(country) < MIN_NATIONAL_DIGITS:
        raise InvalidField("to", "is not an international (E.164) number: a country calling code, then the"
                                 " national number, 15 digits at most")
    return number


def checked_code(document: object) -> str:
    """The code of POST /api/verifications/ID/check's body: 4 to 10 digits, else 400."""
    if not isinstance(document, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body is not a JSON object", field="body")
    for key in document:
        if key != "code":
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{key}: unknown field", field=key)
    code = document.get("code")
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        raise ApiError(HTTPStatus.BAD_REQUEST, "code: a string of 4 to 10 digits", field="code")
    return code


# -- A verification, and its statements -----------------------------------------

@dataclasses.dataclass(frozen=True)
class Verification:
    """A verification as stored; its code is not, and is made from `seed` when it is needed."""

    id: str
    to: str
    src: str
    seed: str
    digits: int
    stored_status: str
    sends: int
    checks_left: int
    created_at: datetime
    expires_at: datetime
    approved_at: datetime | None

    def status(self, now: float) -> str:
        """pending, approved, max_attempts, cancelled, or expired (pending past expires_at)."""
        if self.stored_status == "pending" and self.expires_at.timestamp() <= now:
            return "expired"
        return self.stored_status

    def answer(self, now: float) -> dict[str, object]:
        """The JSON object of POST /api/verifications."""
        return {"id": self.id, "to": self.to, "status": self.status(now), "expires_at": _iso(self.expires_at),
                "sends": self.sends, "checks_left": self.checks_left}

    def document(self, now: float) -> dict[str, object]:
        """The JSON object of GET /api/verifications/ID."""
        return {**self.answer(now), "created_at": _iso(self.created_at), "approved_at": _iso(self.approved_at)}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


#: The columns a Verification is made of (verification_of_row), in its order.
COLUMNS = ("id, to_number, from_number, seed, digits, status, sends, checks_left, created_at, expires_at,"
           " approved_at")


def verification_of_row(history: Transaction, row: tuple) -> Verification:
    """The Verification of a row read as COLUMNS."""
    return Verification(*row[:8], history.moment(row[8]), history.moment(row[9]),
                        row[10] and history.moment(row[10]))


def stored_verification(history: Transaction, verification_id: str, token: str) -> Verification | None:
    """The verification with this ID, if this token asked for it."""
    row = history.execute(f"SELECT {COLUMNS} FROM verifications WHERE id = ? AND token = ?",
                          (verification_id, token)).fetchone()
    return row and verification_of_row(history, row)


def pending_verification(tx: Transaction, token: str, to: str, src: str) -> Verification | None:
    """The verification stored as pending for this token, number and number of ours (it may have expired)."""
    row = tx.execute(f"SELECT {COLUMNS} FROM verifications WHERE token = ? AND to_number = ? AND from_number = ?"
                     " AND status = 'pending'", (token, to, src)).fetchone()
    return row and verification_of_row(tx, row)


def mark_expired(tx: Transaction, verification_id: str) -> None:
    """Write what its time says: it no longer holds the one pending place of its number."""
    tx.execute("UPDATE verifications SET status = 'expired' WHERE id = ? AND status = 'pending'", (verification_id,))


def add_verification(tx: Transaction, verification: Verification, token: str, prefix: str) -> None:
    """Store a new verification (the unique index verifications_pending refuses a second pending one)."""
    tx.execute(
        "INSERT INTO verifications (id, token, to_number, from_number, prefix, seed, digits, status, sends,"
        " checks_left, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 1, ?, ?, ?)",
        (verification.id, token, verification.to, verification.src, prefix, verification.seed,
         verification.digits, verification.checks_left, tx.timestamp(verification.created_at.timestamp()),
         tx.timestamp(verification.expires_at.timestamp())))


def add_send(tx: Transaction, verification_id: str, max_sends: int) -> Verification | None:
    """One more send of the same code (nothing else changes); the verification after, None once
    VERIFY_MAX_SENDS are done."""
    row = tx.execute(f"UPDATE verifications SET sends = sends + 1 WHERE id = ? AND sends < ? RETURNING {COLUMNS}",
                     (verification_id, max_sends)).fetchone()
    return row and verification_of_row(tx, row)


def approve(tx: Transaction, verification_id: str, now: float) -> bool:
    """Approve a pending verification in time: True for exactly one of any checks that race."""
    return tx.execute(
        "UPDATE verifications SET status = 'approved', approved_at = ? WHERE id = ? AND status = 'pending'"
        " AND expires_at > ? AND checks_left > 0",
        (tx.timestamp(now), verification_id, tx.timestamp(now))).rowcount == 1


def count_wrong_code(tx: Transaction, verification_id: str, now: float) -> bool:
    """Take one check from a pending verification in time (max_attempts at the last): False if it is not one."""
    return tx.execute(
        "UPDATE verifications SET checks_left = checks_left - 1,"
        " status = CASE WHEN checks_left = 1 THEN 'max_attempts' ELSE status END"
        " WHERE id = ? AND status = 'pending' AND expires_at > ? AND checks_left > 0",
        (verification_id, tx.timestamp(now))).rowcount == 1


def cancel_verification(tx: Transaction, verification_id: str, token: str) -> str | None:
    """Cancel a verification this token asked for, unless it is approved; its status afterwards, or None."""
    if tx.execute("UPDATE verifications SET status = 'cancelled' WHERE id = ? AND token = ?"
                  " AND status <> 'approved'", (verification_id, token)).rowcount:
        return "cancelled"
    row = tx.execute("SELECT status FROM verifications WHERE id = ? AND token = ?", (verification_id, token)).fetchone()
    return row and row[0]


def prefix_refused_for(history: Transaction, prefix: str, limit: int, now: float) -> float:
    """Seconds for which new verifications to this prefix are refused (0: they are not): 12 hours from
    the moment `limit` verifications to it, none approved now, had been made within one hour."""
    made = [history.moment(row[0]).timestamp() for row in history.execute(
        "SELECT created_at FROM verifications WHERE prefix = ? AND status <> 'approved' AND created_at >= ?"
        " ORDER BY created_at", (prefix, history.timestamp(now - PREFIX_BLOCK - PREFIX_WINDOW))).fetchall()]
    ends = [made[last] + PREFIX_BLOCK for last in range(limit - 1, len(made))
            if made[last] - made[last - limit + 1] <= PREFIX_WINDOW]
    return max(0.0, max(ends, default=now) - now)


# -- The routes: /api/verifications ---------------------------------------------

class Refused(ApiError):
    """A request refused (403, 409, 429): answered as any ApiError, logged and counted with its result."""

    def __init__(self, http_status: HTTPStatus, reason: str, result: str, headers: tuple[tuple[str, str], ...] = (),
                 **details: object) -> None:
        super().__init__(http_status, reason, headers, **details)
        self.result = result


class Verifications:
    """The routes under /api/verifications, and the text maker of a code's SMS.

    Every route needs `Authorization: Bearer TOKEN` with the verify scope, and sees only the
    verifications that token asked for. A request is decided in one transaction, serialized per
    token and per prefix (tx.lock): the opt-out, a pending verification to resend, API_LIMIT, the
    prefix limit, then the verification and its SMS queued in the outbox. A check is decided by
    conditional UPDATEs (see the module's docstring).
    """

    def __init__(self, app: SmsResponder) -> None:
        self.app = app
        self.settings = app.settings
        self.store = app.store
        self.tokens = OutboundApi(app.settings, app.store)
        self.key = code_key(app.settings.plivo_auth_token)
        self.countries = allowed_countries(app.settings)

    def routes(self) -> Routes:
        return {VERIFICATIONS_PATH: {"POST": self.request},
                VERIFICATION_PREFIX: {"GET": self.show, "DELETE": self.cancel, "POST": self.check}}

    def request(self, environ: WSGIEnvironment) -> Response:
        """POST /api/verifications: 201 with a new verification whose code is sent, 200 with the pending one
        whose code is sent again, or the error the README names (Verify a phone number)."""
        token = self.holder(environ).name
        if not self.settings.plivo_auth_id:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "sending needs PLIVO_AUTH_ID")
        document = parse_json(read_body(environ, self.settings.max_body_bytes, JSON_CONTENT_TYPE, ApiError))
        try:
            asked = code_request(document, self.settings)
        except InvalidField as problem:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(problem), field=problem.field) from None
        environ["sms_responder.recipient"] = asked.to
        now = time.time()
        try:
            if self.countries is not None and asked.country not in self.countries:
                raise Refused(HTTPStatus.FORBIDDEN, "country not allowed", "country_not_allowed", field="to")
            verification, created = self.store.run(lambda tx: self.send_code(tx, token, asked, now))
        except Refused as refusal:
            self.record("request", refusal.result, asked.to, refusal.document.get("id"))
            raise
        self.record("request", "sent" if created else "resent", asked.to, verification.id)
        if created:
            return json_response(HTTPStatus.CREATED, verification.answer(now),
                                 (("Location", VERIFICATION_PREFIX + verification.id),))
        return json_response(HTTPStatus.OK, verification.answer(now))

    def send_code(self, tx: Transaction, token: str, asked: CodeRequest, now: float) -> tuple[Verification, bool]:
        """Send the pending verification's code again, or a new one's; (the verification, whether it is new)."""
        tx.lock(f"api {token}")              # API_LIMIT: this token's messages and codes, counted together
        tx.lock(f"verify {asked.prefix}")    # the prefix limit, and one pending verification per number
        if tx.opted_out_of([asked.to], asked.src):
            raise Refused(HTTPStatus.CONFLICT, "opted_out", "opted_out", to=asked.to)
        current = pending_verification(tx, token, asked.to, asked.src)
        if current and current.status(now) == "expired":
            mark_expired(tx, current.id)
            current = None
        resent = current and add_send(tx, current.id, self.settings.verify_max_sends)
        if current and not resent:
            wait = max(1, math.ceil(current.expires_at.timestamp() - now))
            raise Refused(HTTPStatus.TOO_MANY_REQUESTS, "max sends reached", "max_sends",
                          (("Retry-After", str(wait)),), id=current.id)
        try:
            check_api_limit(tx, token, self.settings.api_limit, now)
        except ApiError as refusal:
            raise Refused(refusal.status, refusal.reason, "api_limit", refusal.headers) from None
        verification = resent or self.new_verification(tx, token, asked, now)
        masked = code_text(self.settings.verify_text, MASK, now, verification.expires_at.timestamp())
        queue_outbound(tx, OutboundRequest(asked.to, masked, asked.src), token, "api", now,
                       text_source=f"{TEXT_SOURCE}:{verification.id}")
        return verification, current is None

    def new_verification(self, tx: Transaction, token: str, asked: CodeRequest, now: float) -> Verification:
        """A new verification, stored; 429 fraud_suspected while the prefix limit holds for its number."""
        limit = self.settings.verify_prefix_limit
        refused_for = prefix_refused_for(tx, asked.prefix, limit, now) if limit else 0
        if refused_for:
            raise Refused(HTTPStatus.TOO_MANY_REQUESTS, "fraud_suspected", "fraud_suspected",
                          (("Retry-After", str(math.ceil(refused_for))),))
        verification = Verification(
            str(uuid.uuid4()), asked.to, asked.src, secrets.token_urlsafe(SEED_BYTES), self.settings.verify_code_length,
            "pending", 1, self.settings.verify_max_checks, datetime.fromtimestamp(now, UTC),
            datetime.fromtimestamp(now + self.settings.verify_ttl, UTC), None)
        add_verification(tx, verification, token, asked.prefix)
        return verification

    def check(self, environ: WSGIEnvironment) -> Response:
        """POST /api/verifications/ID/check: 200 with {id, status, valid, checks_left} for any code of 4 to 10
        digits; valid is true for the right code of a pending verification, once."""
        verification_id = self.verification_id(environ, "check")
        token = self.holder(environ).name
        code = checked_code(parse_json(read_body(environ, self.settings.max_body_bytes, JSON_CONTENT_TYPE,
                                                 ApiError)))
        now = time.time()
        verification, result = self.store.run(lambda tx: self.check_code(tx, token, verification_id, code, now))
        environ["sms_responder.recipient"] = verification.to
        self.record("check", result, verification.to, verification.id)
        return json_response(HTTPStatus.OK, {"id": verification.id, "status": verification.status(now),
                                             "valid": result == "approved", "checks_left": verification.checks_left})

    def check_code(self, tx: Transaction, token: str, verification_id: str, code: str, now: float
                   ) -> tuple[Verification, str]:
        """Check a code; the verification afterwards and the result (approved, wrong_code, max_attempts,
        expired, cancelled, already_approved). The UPDATEs decide: a check that loses a race to another
        finds the state that one left."""
        found = stored_verification(tx, verification_id, token)
        if found is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "no verification with this id")
        result = None
        if found.status(now) == "pending":
            right = hmac.compare_digest(code_of(self.key, found.id, found.seed, found.digits), code)
            if right and approve(tx, found.id, now):
                result = "approved"
            elif not right and count_wrong_code(tx, found.id, now):
                result = "wrong_code"
            found = stored_verification(tx, verification_id, token)
        status = found.status(now)
        if result is None or status == "max_attempts":  # not decided by this check, or its last wrong code
            result = "already_approved" if status == "approved" else status
        return found, result

    def show(self, environ: WSGIEnvironment) -> Response:
        """GET /api/verifications/ID: its state."""
        verification_id = self.verification_id(environ, "")
        token = self.holder(environ).name
        verification = self.store.run(lambda tx: stored_verification(tx, verification_id, token))
        if verification is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "no verification with this id")
        environ["sms_responder.recipient"] = verification.to
        return json_response(HTTPStatus.OK, verification.document(time.time()))

    def cancel(self, environ: WSGIEnvironment) -> Response:
        """DELETE /api/verifications/ID: 204 once cancelled (its code no longer checks, an SMS not yet sent
        stays unsent); 409 when it is approved already."""
        verification_id = self.verification_id(environ, "")
        token = self.holder(environ).name
        status = self.store.run(lambda tx: cancel_verification(tx, verification_id, token))
        if status is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "no verification with this id")
        if status != "cancelled":
            raise ApiError(HTTPStatus.CONFLICT, f"it is {status} already: nothing to cancel", status=status)
        return Response(HTTPStatus.NO_CONTENT, b"", JSON_CONTENT_TYPE)

    def sms_text(self, tx: Transaction, verification_id: str, row: OutboxRow) -> str:
        """The text of a verification's SMS, code included, made as the worker sends it (the app's text maker
        for text_source "verification:ID"); NotToBeSent when the verification is no longer pending."""
        found = tx.execute(f"SELECT {COLUMNS}, (SELECT queued_at FROM outbox WHERE id = ?) FROM verifications"
                           " WHERE id = ?", (row.id, verification_id)).fetchone()
        if found is None:
            raise NotToBeSent("no such verification")
        verification = verification_of_row(tx, found)
        status = verification.status(time.time())
        if status != "pending":
            raise NotToBeSent(f"verification {status}")
        code = code_of(self.key, verification.id, verification.seed, verification.digits)
        return code_text(self.settings.verify_text, code, tx.moment(found[11]).timestamp(),
                         verification.expires_at.timestamp())

    def holder(self, environ: WSGIEnvironment) -> TokenHolder:
        """Who holds the request's token (else 401), if it has the verify scope (else 403 naming it)."""
        holder = self.tokens.authenticate(environ)
        holder.require("verify")
        return holder

    @staticmethod
    def verification_id(environ: WSGIEnvironment, action: str) -> str:
        """The ID in /api/verifications/ID (action "") or /api/verifications/ID/check ("check"): 404 for another
        path below, 405 for the other of the two."""
        verification_id, _, found = environ["PATH_INFO"][len(VERIFICATION_PREFIX):].partition("/")
        if not verification_id or found not in ("", "check"):
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")
        if found != action:
            allow = "POST" if found == "check" else "GET, DELETE"
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", allow),))
        return verification_id

    def record(self, action: str, result: str, to: str, verification_id: str | None) -> None:
        """The one INFO line of a request or a check (never the code), and its count."""
        fields = {"action": action, "id": verification_id, "recipient": mask_number(to), "result": result}
        log.info("verification", extra={"fields": {key: value for key, value in fields.items() if value}})
        if self.app.metrics:
            self.app.metrics.verification(result)

"""The team inbox: every conversation in a browser, behind a login (README: The inbox).

Owns the pages under /inbox: logging in and out, the list (views All, Mine, Unassigned; search), a
conversation (its timeline, answering now or later, cancelling what waits, assignment, notes, opt-out
and opt-in by hand), saved replies, live updates and the unread count in the title. Its templates
are in templates/ (Jinja2, every value escaped), its style, script and icon in static/. Who may log
in and their sessions are people.py's (with the command `users`, which this surface adds); what the
pages read and write of conversations is team.py's.

Uses of the core: the app's settings and store, the HTTP plumbing (HTTPError, ApiError, Response,
forms), phone numbers, segments, iso_timestamp and the log; and of speaking first (api), the checks
and queue every outbound message goes through, so that an answer from the inbox is sent (or
scheduled) as POST /api/messages would send it, and cancelled as DELETE would cancel it.
"""

from __future__ import annotations

import functools
import hmac
import importlib
import re
import time
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from wsgiref.types import WSGIEnvironment

from sms_responder import (
    MAX_REPLY_CHARS, TEXT_CONTENT_TYPE, ApiError, HTTPError, Response, Routes, Settings, SmsResponder, Store,
    Transaction, cli_number, iso_timestamp, json_response, log, mask_number, number_key, parse_form, read_body,
    segments_of,
)
from sms_responder_surfaces import people, team
from sms_responder_surfaces.api import InvalidField, OptedOut, cancel_outbound, outbound_request, queue_outbound
from sms_responder_surfaces.people import LOGIN_LOCKOUT, SESSION_COOKIE, SESSION_LIMIT, LockedOut, Session

#: The pages' templates, and the files the pages load (style, script, icon), installed with the package.
TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def attach(app: SmsResponder) -> Routes:
    """The routes under /inbox."""
    return Inbox(app.settings, app.store).routes()


def add_commands(commands: Any) -> None:
    """users: who may log in (people.py)."""
    people.add_commands(commands)


# -- Pages: conversations in a browser ----------------------------------------

INBOX_PATH = "/inbox"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
#: Every page: scripts and styles only from our own files (no inline script can run), no framing. (The
#: application adds Cache-Control: no-store and X-Content-Type-Options: nosniff to every /inbox answer.)
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
                                " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("Referrer-Policy", "same-origin"))
STATIC_FILES = {"inbox.css": "text/css; charset=utf-8", "inbox.js": "text/javascript; charset=utf-8",
                "favicon.svg": "image/svg+xml"}
_CONVERSATION_PATH = re.compile(r"(\d{3,20})/(\d{3,20})(?:/(send|opt-out|opt-in|assign|note|cancel))?")
_SAVED_REPLY_PATH = re.compile(r"(\d{1,18})(/remove)?")
#: The names a person sees for the outbound path's fields.
INBOX_FIELD_NAMES = {"to": "Number", "text": "Message", "from": "From", "body": "the form", "send_at": "Send at"}


class Inbox:
    """The routes under /inbox: the list, a conversation, answering, the team's work, saved replies.

    Every page and data route needs a session (pages redirect to the login page, data routes
    answer 401), and every POST a CSRF token bound to it; every change a person makes writes one
    INFO log line (who, what, the customer's last four digits). Pages are rendered from templates/
    (Jinja2, autoescaped: a customer's text is always text); the page's one script polls
    /inbox/updates every second and, when what the page shows has changed, fetches it again and
    swaps the changed part, and keeps the title's unread count: short requests that any WSGI host
    serves, where a stream held open per browser would hold a thread (or a sync worker) each.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.words = team.words_index(store)
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
                f"{INBOX_PATH}/conversations/": {"GET": self.conversation_page, "POST": self.act_on_conversation},
                f"{INBOX_PATH}/replies": {"GET": self.replies_page, "POST": self.add_saved_reply},
                f"{INBOX_PATH}/replies/": {"GET": self.saved_reply_page, "POST": self.change_saved_reply}}

    def run(self, work: Callable[[Transaction], Any]) -> Any:
        """work(tx) in a transaction whose conversations and index of words hold every message stored
        before it began (on SQLite the inbox brings them up to date first, a batch per transaction)."""
        while True:
            caught_up, result = self.store.run(
                lambda tx: (True, work(tx)) if self.words.catch_up(tx) else (False, None))
            if caught_up:
                return result

    # Pages

    def list_page(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        query = self.list_query(session, environ)
        rows, more = self.run(lambda tx: self.list_rows(tx, query))
        more_link = more and f"{INBOX_PATH}?" + urllib.parse.urlencode(
            {"view": query.view, "q": query.search, "before": more})
        return self.page("list.html", session, conversations=rows, q=query.search, view=query.view, more=more_link,
                         version=team.version_of(rows), updates=f"{INBOX_PATH}/updates?{environ.get('QUERY_STRING', '')}")

    def list_rows(self, history: Transaction, query: team.ListQuery) -> tuple[list[team.Conversation], str | None]:
        """A page of the list, and where the next one begins (None: this is the last)."""
        rows = team.conversation_list(history, self.words, query, self.not_customers, team.LIST_PAGE + 1)
        return rows[:team.LIST_PAGE], rows[team.LIST_PAGE - 1].last_at.isoformat() if len(rows) > team.LIST_PAGE \
            else None

    def conversation_page(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        customer, ours, action = self.conversation_of(environ)
        if action in ("opt-out", "opt-in"):
            return self.page("confirm.html", session, customer=customer, ours=ours, action=action)
        if action:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", "POST"),))
        draft = ""
        chosen = self.query(environ)["reply"]
        if chosen.isdigit():  # a saved reply put into the Message box without the script (not sent)
            reply = self.store.run(lambda tx: team.saved_reply(tx, int(chosen)))
            draft = reply.text if reply else ""
        return self.show_conversation(session, customer, ours, draft=draft)

    def show_conversation(self, session: Session, customer: str, ours: str, status: HTTPStatus = HTTPStatus.OK,
                          problem: str = "", draft: str = "", note: str = "") -> Response:
        """A conversation, read by the person as it is shown (it is no longer unread for them)."""
        def read(tx: Transaction) -> dict[str, Any]:
            team.mark_read(tx, session.name, customer, ours)
            return {"entries": team.conversation_entries(tx, customer, ours),
                    "opted_out": bool(tx.opted_out_of([customer], ours)),
                    "assigned": team.assignee_of(tx, customer, ours), "people": team.people_names(tx),
                    "replies": team.saved_replies(tx)}
        shown = self.run(read)
        return self.page("conversation.html", session, status, customer=customer, ours=ours, problem=problem,
                         draft=draft, note=note, version=team.version_of(
                             shown["entries"], shown["opted_out"], shown["assigned"]), **shown)

    def new_page(self, environ: WSGIEnvironment) -> Response:
        return self.page("new.html", self.session(environ, page=True), problem="", number="", draft="")

    def replies_page(self, environ: WSGIEnvironment, status: HTTPStatus = HTTPStatus.OK, problem: str = "",
                     name: str = "", text: str = "") -> Response:
        session = self.session(environ, page=True)
        replies = self.store.run(team.saved_replies)
        return self.page("replies.html", session, status, replies=replies, problem=problem, name=name, text=text)

    def saved_reply_page(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        reply_id, remove = self.saved_reply_of(environ)
        if remove:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", "POST"),))
        reply = self.store.run(lambda tx: team.saved_reply(tx, reply_id))
        if reply is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
        return self.page("reply.html", session, reply=reply, problem="", name=reply.name, text=reply.text)

    def login_page(self, environ: WSGIEnvironment, status: HTTPStatus = HTTPStatus.OK, problem: str = "") -> Response:
        if self.session(environ, page=None):
            return redirect(INBOX_PATH)
        nobody = not self.store.run(people.anyone_may_log_in)
        return self.page("login.html", None, status, problem=problem, nobody=nobody)

    # Actions (POST: each needs the session's CSRF token)

    def log_in(self, environ: WSGIEnvironment) -> Response:
        form = self.form(environ)
        name, password = form.get("name", ""), form.get("password", "")
        token = None
        if people.may_be_a_login(name, password):  # else refused as a wrong password is, unhashed and unstored
            try:
                hashed = self.store.run(lambda tx: people.start_login(tx, name, time.time()))
            except LockedOut:
                people.log_login("locked", name, environ)
                wait = f"Too many failed tries for this name: wait {int(LOGIN_LOCKOUT // 60)} minutes."
                return self.login_page(environ, HTTPStatus.TOO_MANY_REQUESTS, wait)
            token = self.open_session_if(name, password, hashed)
        people.log_login("ok" if token else "failed", name, environ)
        if token is None:  # one message for an unknown name and a wrong password alike
            return self.login_page(environ, HTTPStatus.UNAUTHORIZED, "Wrong name or password.")
        cookie = (f"{SESSION_COOKIE}={token}; Path={INBOX_PATH}; Max-Age={int(SESSION_LIMIT)}; HttpOnly;"
                  f" SameSite=Strict{'; Secure' if self.secure_cookie else ''}")
        return redirect(INBOX_PATH, (("Set-Cookie", cookie),))

    def open_session_if(self, name: str, password: str, hashed: str | None) -> str | None:
        """A new session's token if the password matches the hash (re-hashed if it was made with older
        parameters), else None."""
        matches, new_hash = people.check_password(hashed, password)
        if not matches:
            return None

        def open_it(tx: Transaction) -> str | None:
            if new_hash:
                people.upgrade_hash(tx, name, hashed, new_hash)
            return people.open_session(tx, name, time.time())
        return self.store.run(open_it)

    def log_out(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        self.check_csrf(session, self.form(environ))
        self.store.run(lambda tx: people.end_session(tx, session.token))
        log.info("logout", extra={"fields": {"name": session.name}})
        cookie = f"{SESSION_COOKIE}=; Path={INBOX_PATH}; Max-Age=0; HttpOnly; SameSite=Strict"
        return redirect(f"{INBOX_PATH}/login", (("Set-Cookie", cookie),))

    def act_on_conversation(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        customer, ours, action = self.conversation_of(environ)
        form = self.form(environ)
        self.check_csrf(session, form)
        here = f"{INBOX_PATH}/conversations/{customer}/{ours}"
        if action in ("opt-out", "opt-in"):
            self.store.run(lambda tx: team.change_consent(tx, customer, ours, action == "opt-out", session.name,
                                                          time.time()))
            log.info(f"{action} by hand", extra={"fields": {"by": session.name, "customer": mask_number(customer),
                                                            "number": ours}})
            return redirect(here)
        act = {"send": self.answer, "assign": self.assign, "note": self.add_note, "cancel": self.cancel}.get(action)
        if act is None:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", "GET"),))
        return act(session, customer, ours, form) or redirect(here)

    def answer(self, session: Session, customer: str, ours: str, form: Mapping[str, str]) -> Response | None:
        """Send (or schedule) a person's answer; the page again with what went wrong, or None."""
        text = form.get("message", "")
        problem, status = self.send(session, customer, ours, text, form)
        return self.show_conversation(session, customer, ours, status, problem, text) if problem else None

    def assign(self, session: Session, customer: str, ours: str, form: Mapping[str, str]) -> Response | None:
        """Assign to me, Unassign, or the Assignee picked (an empty one: nobody)."""
        assignee = form.get("assignee", "").strip() or None
        try:
            changed = self.run(lambda tx: team.assign(tx, customer, ours, assignee, session.name, time.time()))
        except team.Problem as problem:
            return self.show_conversation(session, customer, ours, HTTPStatus.CONFLICT, str(problem))
        if changed:
            log.info("assigned" if assignee else "unassigned", extra={"fields": {
                "by": session.name, "customer": mask_number(customer), **({"to": assignee} if assignee else {})}})
        return None

    def add_note(self, session: Session, customer: str, ours: str, form: Mapping[str, str]) -> Response | None:
        text = form.get("note", "")
        try:
            self.store.run(lambda tx: team.add_note(tx, customer, ours, text, session.name, time.time()))
        except team.Problem as problem:
            return self.show_conversation(session, customer, ours, HTTPStatus.BAD_REQUEST, str(problem), note=text)
        log.info("note added", extra={"fields": {"by": session.name, "customer": mask_number(customer)}})
        return None

    def cancel(self, session: Session, customer: str, ours: str, form: Mapping[str, str]) -> Response | None:
        """Cancel a message of this conversation that waits to be sent (as DELETE /api/messages/ID would)."""
        public_id = form.get("id", "")
        status = self.store.run(lambda tx: _cancel_in(tx, public_id, customer, ours))
        if status != "cancelled":
            problem = "There is no such message here." if status is None else f"Too late to cancel: it is {status}."
            return self.show_conversation(session, customer, ours, HTTPStatus.CONFLICT, problem)
        log.info("cancelled", extra={"fields": {"by": session.name, "customer": mask_number(customer)}})
        return None

    def start_conversation(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        form = self.form(environ)
        self.check_csrf(session, form)
        number, ours, text = form.get("number", ""), form.get("from", self.settings.plivo_number[0]), form.get(
            "message", "")
        problem, status = self.send(session, number, ours, text, form)
        if problem:
            return self.page("new.html", session, status, problem=problem, number=number, draft=text)
        return redirect(f"{INBOX_PATH}/conversations/{cli_number(number)}/{number_key(ours)}")

    def send(self, session: Session, number: str, ours: str, text: str, form: Mapping[str, str]
             ) -> tuple[str, HTTPStatus]:
        """Queue (or with Send at, schedule) a person's message through the outbound path; a person who
        answers an unassigned conversation becomes its assignee. What went wrong (empty: nothing) and its
        status."""
        if not self.settings.plivo_auth_id:
            return "Sending is off: PLIVO_AUTH_ID is not set.", HTTPStatus.SERVICE_UNAVAILABLE
        now = time.time()
        try:
            document = {"to": number, "from": ours, "text": text}
            if form.get("send_at", "").strip():
                document["send_at"] = local_time(form["send_at"], form.get("time_zone", ""))
            request = outbound_request(document, self.settings, now)
            message, assigned = self.run(lambda tx: (
                queue_outbound(tx, request, session.name, "inbox", now),
                team.assign_on_answer(tx, request.to, request.src, session.name, now),
                team.mark_read(tx, session.name, request.to, request.src))[:2])  # who answers has read it
        except InvalidField as invalid:
            return f"Not sent: {INBOX_FIELD_NAMES.get(invalid.field, invalid.field)} {invalid.reason}.", \
                HTTPStatus.BAD_REQUEST
        except OptedOut as refusal:
            return f"Not sent: {refusal}.", HTTPStatus.CONFLICT
        log.info("scheduled" if message.status == "scheduled" else "answered", extra={"fields": {
            "by": session.name, "customer": mask_number(request.to), **({"assigned": "yes"} if assigned else {})}})
        return "", HTTPStatus.SEE_OTHER

    def add_saved_reply(self, environ: WSGIEnvironment) -> Response:
        session = self.session(environ, page=True)
        form = self.form(environ)
        self.check_csrf(session, form)
        name, text = form.get("name", ""), form.get("text", "")
        try:
            self.store.run(lambda tx: team.save_reply(tx, None, name, text, session.name, time.time()))
        except team.Problem as problem:
            return self.replies_page(environ, HTTPStatus.BAD_REQUEST, str(problem), name, text)
        log.info("saved reply added", extra={"fields": {"by": session.name, "name": " ".join(name.split())}})
        return redirect(f"{INBOX_PATH}/replies")

    def change_saved_reply(self, environ: WSGIEnvironment) -> Response:
        """Save a changed reply, or with /remove, remove it."""
        session = self.session(environ, page=True)
        reply_id, remove = self.saved_reply_of(environ)
        form = self.form(environ)
        self.check_csrf(session, form)
        if remove:
            name = self.store.run(lambda tx: team.remove_saved_reply(tx, reply_id))
            if name is not None:
                log.info("saved reply removed", extra={"fields": {"by": session.name, "name": name}})
            return redirect(f"{INBOX_PATH}/replies")
        name, text = form.get("name", ""), form.get("text", "")
        try:
            self.store.run(lambda tx: team.save_reply(tx, reply_id, name, text, session.name, time.time()))
        except team.Problem as problem:
            reply = team.SavedReply(reply_id, name, text, session.name, datetime.now(UTC))
            return self.page("reply.html", session, HTTPStatus.BAD_REQUEST, reply=reply, problem=str(problem),
                             name=name, text=text)
        log.info("saved reply changed", extra={"fields": {"by": session.name, "name": " ".join(name.split())}})
        return redirect(f"{INBOX_PATH}/replies")

    # Data routes (401 without a session)

    def updates(self, environ: WSGIEnvironment) -> Response:
        """The version of what a page shows now, and how many conversations are unread for the person:
        {"version": ..., "unread": N}; the page's script compares the version with its own."""
        session = self.session(environ, page=False)
        query = self.query(environ)

        def look(tx: Transaction) -> dict[str, object]:
            if query["with"]:
                customer, ours = query["with"]
                version = team.version_of(team.conversation_entries(tx, customer, ours),
                                          bool(tx.opted_out_of([customer], ours)), team.assignee_of(tx, customer, ours))
            elif query["unread_only"]:
                version = ""
            else:
                version = team.version_of(self.list_rows(tx, self.list_query(session, environ))[0])
            return {"version": version, "unread": team.unread_count(tx, session.name, self.not_customers)}
        return json_response(HTTPStatus.OK, self.run(look))

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
            lambda tx: people.session_of(tx, token, time.time(), self.settings.inbox_session_hours))
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
        """q, view, before (a time), with (a conversation), unread (the count alone), text and reply of a
        query string."""
        fields = parse_form(environ.get("QUERY_STRING", "").encode("latin-1")) or {}
        value = {name: values[0] for name, values in fields.items()}
        try:
            before = iso_timestamp(value["before"], UTC) if value.get("before") else None
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "before: not an ISO 8601 time") from None
        pair = _CONVERSATION_PATH.fullmatch(value.get("with", ""))
        return {"q": value.get("q", "")[:200], "before": before, "text": value.get("text", "")[:MAX_REPLY_CHARS * 2],
                "with": pair and pair.group(1, 2), "view": value.get("view", "all"), "reply": value.get("reply", ""),
                "unread_only": "unread" in value}

    def list_query(self, session: Session, environ: WSGIEnvironment) -> team.ListQuery:
        query = self.query(environ)
        return team.ListQuery(session.name, query["view"] if query["view"] in team.VIEWS else "all", query["q"],
                              query["before"])

    def conversation_of(self, environ: WSGIEnvironment) -> tuple[str, str, str | None]:
        """(customer, our number, action) of a conversation's path; 404 if there is none, or if it opts a
        customer out or in of a number that is not ours (a conversation with a number no longer ours can
        still be read)."""
        match = _CONVERSATION_PATH.fullmatch(environ["PATH_INFO"].removeprefix(f"{INBOX_PATH}/conversations/"))
        if not match or (match[3] in ("opt-out", "opt-in") and match[2] not in self.settings.plivo_number):
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
        return match[1], match[2], match[3]

    @staticmethod
    def saved_reply_of(environ: WSGIEnvironment) -> tuple[int, bool]:
        """(id, remove?) of a saved reply's path; 404 if it is not one."""
        match = _SAVED_REPLY_PATH.fullmatch(environ["PATH_INFO"].removeprefix(f"{INBOX_PATH}/replies/"))
        if not match:
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
        return int(match[1]), bool(match[2])

    def page(self, template: str, session: Session | None, status: HTTPStatus = HTTPStatus.OK,
             **context: object) -> Response:
        unread = session and self.run(lambda tx: team.unread_count(tx, session.name, self.not_customers))
        html = self.templates.get_template(template).render(
            session=session, read_only=not self.settings.plivo_auth_id, our_numbers=self.settings.plivo_number,
            inbox=INBOX_PATH, unread=unread or 0, **context)
        return Response(status, html.encode(), HTML_CONTENT_TYPE, PAGE_HEADERS)


def _cancel_in(tx: Transaction, public_id: str, customer: str, ours: str) -> str | None:
    """Cancel an outbound message of this conversation still waiting; its status after, None if it has none."""
    if not tx.execute("SELECT 1 FROM outbox WHERE public_id = ? AND kind = 'outbound' AND dst = ? AND src = ?",
                      (public_id, customer, ours)).fetchone():
        return None
    return cancel_outbound(tx, public_id)


def local_time(value: str, zone_name: str) -> str:
    """The Send at field (a date and time as the person reads their clock, e.g. 2026-12-24T09:00) as ISO 8601
    with its offset, in the person's time zone (the script sends its name), else the server's."""
    try:
        zone = zoneinfo.ZoneInfo(zone_name) if zone_name else None
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        zone = None
    try:
        return datetime.fromtimestamp(iso_timestamp(value, zone), UTC).isoformat()
    except ValueError:
        raise InvalidField("send_at", "must be a date and time, such as 2026-12-24 09:00") from None


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

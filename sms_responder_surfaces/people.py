"""People and their sessions: who may log in to the inbox, and how (README: The inbox).

Owns: the people (an Argon2id hash of each password, never the password), logins (at most
PASSWORD_CHECKS hash checks at once in a process, a name locked after LOGIN_TRIES failures, the
record of each login), sessions (only the digest of the cookie's token is stored; the CSRF token is
derived from it), and the command `users` (add, list, remove, password). The inbox (inbox.py) asks it
who a request is; removing a person also hands their conversations back (team.py's hand_back).

Uses of the core: the store's transactions, NAME_PATTERN, token_digest, the log, settings and the
command helpers (read_environment, command_store, configure_logging).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import getpass
import hmac
import importlib
import secrets
import sys
import threading
import time
from datetime import datetime
from typing import Any
from wsgiref.types import WSGIEnvironment

from sms_responder import (
    NAME_PATTERN, ConfigError, Settings, Transaction, command_store, configure_logging, log, read_environment,
    token_digest,
)
from sms_responder_surfaces.team import hand_back


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
    """Remove a person and end their sessions at once (every host reads sessions from the database); the
    conversations assigned to them become unassigned, and what they had read is forgotten."""
    tx.execute("DELETE FROM sessions WHERE name = ?", (name,))
    hand_back(tx, name)
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

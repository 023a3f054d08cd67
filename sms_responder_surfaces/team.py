"""What the team sees of the conversations, and what it keeps about them (README: The inbox).

Owns the statements of the inbox's pages (inbox.py renders them): the list of conversations (views
All, Mine, Unassigned; search by words or digits), a conversation's timeline, and what the team
adds: assignment (who owns a conversation, with its history), what each person has read (unread),
notes (never sent) and saved replies. The tables are the core's (MIGRATIONS, the team's step):
conversations, conversation_reads, assignments, notes, saved_replies, and the index of words.

The index of words and the conversations table are kept by the database on PostgreSQL (a GIN
index, triggers), and on SQLite by the inbox itself (SQLiteWords.catch_up), so that storing a
message costs the webhook nothing more (README: Performance).

Uses of the core: transactions and their dialects (SQLiteStore tells which), the opt-out list,
cancel_for_opt_out, phone numbers; and of speaking first (api), how an outbound message is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Iterable
from datetime import datetime

from sms_responder import SQLiteStore, Store, Transaction, cancel_for_opt_out, number_forms, number_key
from sms_responder_surfaces.api import OUTBOUND_COLUMNS, outbound_of

LIST_PAGE = 50                 # conversations a page of the list shows; "More" shows the next ones
CONVERSATION_PAGE = 200        # a conversation shows its newest messages, this many
LIST_WINDOW = 2_000            # the list looks at the newest messages first, then at four times more ...
LIST_WINDOW_MAX = 128_000      # ... up to this many, then reads the conversations table
SEARCH_WINDOW = 2_000          # a search reads the newest matches first, then eight times more, ...
CATCH_UP_BATCH = 50_000        # SQLite: messages indexed per transaction (0.9 s at 10M, README: Performance)
VIEWS = ("all", "mine", "unassigned")
MAX_NOTE = 4000                # characters
MAX_REPLY_NAME = 100
MAX_SAVED_REPLY = 1600         # characters: a saved reply is sent as a message
#: What a search treats as words: letters and digits (as SQLite's unicode61 and PostgreSQL's parser do).
_WORD = re.compile(r"[^\W_]+")

Pair = tuple[str, str]  # (customer, number of ours), digits


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A row of the list: one customer and one number of ours, what happened last, whose it is."""

    customer: str       # digits
    ours: str           # digits
    last_at: datetime
    last_text: str | None
    waiting: bool       # the customer wrote last, and no one has answered since
    opted_out: bool
    forwarded: bool     # the customer's last message was forwarded to an owner's phone
    assignee: str | None = None
    unread: bool = False  # for the person looking: a customer's message came after they last opened it


@dataclasses.dataclass(frozen=True)
class Entry:
    """One thing in a conversation, in time order: the customer's message (with its automatic answer
    and forwards), an outbound message, an owner's relay, an opt-out or opt-in made by hand, an
    assignment, or a note."""

    kind: str                          # "in", "out", "relay", "consent", "assignment" or "note"
    at: datetime
    text: str | None = None            # "assignment": the assignee (None: unassigned)
    media_urls: tuple[str, ...] = ()
    reply: str | None = None           # "in": the automatic answer ...
    rule: str | None = None            # ... the rule that chose it
    outcome: str | None = None
    forwarded_to: tuple[str, ...] = ()
    by: str | None = None              # "out": who sent it; "relay": the owner; the person, for the others
    status: str | None = None          # "out": where it is (scheduled, queued ... delivered, failed)
    error: str | None = None
    id: str | None = None              # "out": its ID (a scheduled one can be cancelled)
    send_at: datetime | None = None    # "out": when it is to leave


@dataclasses.dataclass(frozen=True)
class SavedReply:
    """A reply text the team shares, by name."""

    id: int
    name: str
    text: str
    changed_by: str
    changed_at: datetime


class Problem(ValueError):
    """What a person asked for cannot be done (the page says why, with the status to answer)."""


def words_of(search: str) -> list[str]:
    """The words a search looks for, each a whole word of a message (any case)."""
    return _WORD.findall(search.lower())


# -- The index of words, and the conversations table, on each database ------------

class SQLiteWords:
    """Search on SQLite: FTS5 tables of words (message_words, outbound_words), and the conversations
    table, brought up to date by the inbox from the rows stored since it last looked.

    FTS5 writes a segment of its index per transaction: at one message per transaction that cost
    45 us per message at 1,000,000 stored, a quarter of the webhook. Indexed in batches it costs
    about 2 us. So the webhook writes neither; before every read of them, the inbox indexes the
    messages and outbound messages after inbox_index's marks (rowids only grow: messages are never
    deleted, and an outbox id reused after purge is indexed by a trigger as it is stored), in
    transactions of CATCH_UP_BATCH, and so finds every message stored before it looked. A text
    erased by purge leaves the index by a trigger."""

    def catch_up(self, tx: Transaction) -> bool:
        """Index up to CATCH_UP_BATCH messages and outbound messages stored since the last look, and add
        them to their conversations; True when nothing is left."""
        messages_to, outbox_to = tx.execute("SELECT messages_to, outbox_to FROM inbox_index").fetchone()
        newest = tx.execute("SELECT (SELECT coalesce(max(rowid), 0) FROM messages),"
                            " (SELECT coalesce(max(id), 0) FROM outbox)").fetchone()
        if newest == (messages_to, outbox_to):
            return True
        until = (min(newest[0], messages_to + CATCH_UP_BATCH), min(newest[1], outbox_to + CATCH_UP_BATCH))
        tx.execute("INSERT INTO message_words (rowid, text) SELECT rowid, text FROM messages WHERE rowid > ?"
                   " AND rowid <= ? AND text IS NOT NULL", (messages_to, until[0]))
        tx.execute("INSERT INTO outbound_words (rowid, text) SELECT id, text FROM outbox WHERE id > ? AND id <= ?"
                   " AND kind = 'outbound' AND text IS NOT NULL", (outbox_to, until[1]))
        tx.execute(
            "INSERT INTO conversations (customer, ours, last_at, last_in_at) SELECT customer, ours, max(at), max(in_at)"
            " FROM (SELECT coalesce(relayed_to, ltrim(from_number, '+')) AS customer, ltrim(to_number, '+') AS ours,"
            " received_at AS at, CASE WHEN relayed_to IS NULL THEN received_at END AS in_at FROM messages"
            " WHERE rowid > ? AND rowid <= ? AND from_number IS NOT NULL UNION ALL SELECT dst, src, queued_at, NULL"
            " FROM outbox WHERE id > ? AND id <= ? AND kind = 'outbound' AND dst IS NOT NULL) AS activity"
            " WHERE true GROUP BY customer, ours ON CONFLICT (customer, ours) DO UPDATE"
            " SET last_at = max(last_at, excluded.last_at),"
            " last_in_at = coalesce(max(last_in_at, excluded.last_in_at), last_in_at, excluded.last_in_at)",
            (messages_to, until[0], outbox_to, until[1]))
        tx.execute("UPDATE inbox_index SET messages_to = ?, outbox_to = ?", until)
        return until == newest

    @staticmethod
    def messages_matching(history: Transaction, words: list[str], until: object, limit: int) -> list[tuple]:
        """(from, to, relayed_to, received_at) of the newest `limit` messages before `until` holding every word."""
        return history.execute(
            "SELECT m.from_number, m.to_number, m.relayed_to, m.received_at FROM message_words"
            " JOIN messages m ON m.rowid = message_words.rowid WHERE message_words MATCH ? AND m.received_at < ?"
            " AND m.from_number IS NOT NULL ORDER BY message_words.rowid DESC LIMIT ?",
            (_fts_query(words), until, limit)).fetchall()

    @staticmethod
    def outbound_matching(history: Transaction, words: list[str], until: object, limit: int) -> list[tuple]:
        """(dst, src, queued_at) of the newest `limit` outbound messages before `until` holding every word."""
        return history.execute(
            "SELECT o.dst, o.src, o.queued_at FROM outbound_words JOIN outbox o ON o.id = outbound_words.rowid"
            " WHERE outbound_words MATCH ? AND o.queued_at < ? AND o.dst IS NOT NULL"
            " ORDER BY outbound_words.rowid DESC LIMIT ?", (_fts_query(words), until, limit)).fetchall()


def _fts_query(words: list[str]) -> str:
    return " ".join(f'"{word}"' for word in words)  # each a phrase of one token; all of them must match


class PostgresWords:
    """Search on PostgreSQL: GIN indexes of to_tsvector('simple', text), which the database keeps in step,
    like the triggers that keep the conversations table (nothing to catch up)."""

    @staticmethod
    def catch_up(tx: Transaction) -> bool:
        return True

    @staticmethod
    def messages_matching(history: Transaction, words: list[str], until: object, limit: int) -> list[tuple]:
        return history.execute(
            "SELECT from_number, to_number, relayed_to, received_at FROM messages"
            " WHERE to_tsvector('simple', text) @@ to_tsquery('simple', ?) AND received_at < ?"
            " AND from_number IS NOT NULL ORDER BY received_at DESC LIMIT ?",
            (" & ".join(words), until, limit)).fetchall()

    @staticmethod
    def outbound_matching(history: Transaction, words: list[str], until: object, limit: int) -> list[tuple]:
        return history.execute(
            "SELECT dst, src, queued_at FROM outbox WHERE kind = 'outbound' AND to_tsvector('simple', text)"
            " @@ to_tsquery('simple', ?) AND queued_at < ? AND dst IS NOT NULL ORDER BY queued_at DESC LIMIT ?",
            (" & ".join(words), until, limit)).fetchall()


Words = SQLiteWords | PostgresWords


def words_index(store: Store) -> Words:
    """How the store's database searches words."""
    return SQLiteWords() if isinstance(store, SQLiteStore) else PostgresWords()


# -- The list -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ListQuery:
    """What a page of the list shows: a view (ignored while searching: a search looks everywhere)."""

    person: str
    view: str = "all"             # all, mine or unassigned
    search: str = ""
    before: float | None = None   # activity before this time (the next page); None: the newest


def conversation_list(history: Transaction, words: Words, query: ListQuery, not_customers: frozenset[str],
                      limit: int = LIST_PAGE) -> list[Conversation]:
    """The conversations of a view with activity before `before`, newest activity first, each with its
    assignee and whether it is unread for the person; with a search, those with a message holding every
    word of it, or whose number holds its digits."""
    until = history.timestamp(query.before if query.before is not None else time.time() + 86400)
    states = ConversationStates(history)
    digits = number_key(query.search.strip())
    if digits.isdigit():
        found = _pairs_by_number(history, until, digits, limit, not_customers)
    elif query.search:
        found = _pairs_by_words(history, words, until, words_of(query.search), limit, not_customers)
    elif query.view == "mine":
        found = _assigned_pairs(history, until, query.person, limit)
    elif query.before is not None:
        # a later page: the newest messages before it mostly belong to conversations shown already (their
        # activity is newer), each read to learn so; the conversations table knows each one's newest
        found = _pairs_by_activity(history, until, limit, not_customers, query.view == "unassigned")
    else:
        found = _recent_pairs(history, until, limit, not_customers, states if query.view == "unassigned" else None)
    rows = []
    ordered = sorted(found, key=found.get, reverse=True)  # by their newest activity found
    states.load(ordered[:limit + 10])  # most pages need these; the rest one by one, if ever
    for customer, ours in ordered:
        row = _summary(history, customer, ours, states.of((customer, ours))[1])
        if row and (query.before is None or row.last_at.timestamp() < query.before):  # else on an earlier page
            rows.append(row)
            if len(rows) == limit:
                break
    return _with_marks(history, states, rows, query.person)


def _with_marks(history: Transaction, states: ConversationStates, rows: list[Conversation], person: str
                ) -> list[Conversation]:
    """The rows with their opt-outs, assignees and what is unread for the person."""
    opted_out = {(number, ours) for ours in {row.ours for row in rows}
                 for number in history.opted_out_of([row.customer for row in rows if row.ours == ours], ours)}
    read = reads_of(history, person, [(row.customer, row.ours) for row in rows])
    states.load((row.customer, row.ours) for row in rows)
    marked = []
    for row in rows:
        pair = (row.customer, row.ours)
        assignee, last_in = states.of(pair)
        marked.append(dataclasses.replace(
            row, opted_out=pair in opted_out, waiting=row.waiting and pair not in opted_out, assignee=assignee,
            unread=last_in is not None and (pair not in read or history.moment(last_in) > history.moment(read[pair]))))
    return marked


class ConversationStates:
    """The assignee and the customer's newest message time of conversations, read in batches, each once."""

    BATCH = 500  # conversations a statement reads

    def __init__(self, history: Transaction) -> None:
        self.history = history
        self.known: dict[Pair, tuple[str | None, object]] = {}

    def of(self, pair: Pair) -> tuple[str | None, object]:
        self.load([pair])
        return self.known[pair]

    def load(self, pairs: Iterable[Pair]) -> None:
        """Read what is not known yet of these conversations, BATCH at a time (a round trip each)."""
        wanted = list(dict.fromkeys(pair for pair in pairs if pair not in self.known))
        for start in range(0, len(wanted), self.BATCH):
            batch = wanted[start:start + self.BATCH]
            self.known.update({pair: (None, None) for pair in batch})
            customers = sorted({customer for customer, _ in batch})
            for customer, ours, assignee, last_in in self.history.execute(
                    "SELECT customer, ours, assignee, last_in_at FROM conversations"
                    f" WHERE customer IN ({', '.join('?' * len(customers))})", tuple(customers)).fetchall():
                if (customer, ours) in self.known:
                    self.known[(customer, ours)] = (assignee, last_in)


def _recent_pairs(history: Transaction, until: object, limit: int, not_customers: frozenset[str],
                  unassigned: ConversationStates | None) -> dict[Pair, object]:
    """The newest activity before `until` of at least `limit` conversations (unless there are fewer;
    with `unassigned`, of those assigned to no one): outbound messages, and the newest messages, grouped,
    looking four times further back while they hold too few conversations; beyond LIST_WINDOW_MAX
    messages (one sender flooding the rest, or few unassigned), the conversations table, read whole."""
    def keep(pairs: dict[Pair, object]) -> dict[Pair, object]:
        if unassigned is None:
            return pairs
        unassigned.load(pairs)
        return {pair: at for pair, at in pairs.items() if unassigned.of(pair)[0] is None}
    found = keep(_outbound_pairs(history, until, limit))
    window = LIST_WINDOW
    while window <= LIST_WINDOW_MAX:
        grouped = history.execute(
            "SELECT from_number, to_number, relayed_to, max(received_at), count(*) FROM (SELECT from_number, to_number,"
            " relayed_to, received_at FROM messages WHERE received_at < ? AND from_number IS NOT NULL"
            " ORDER BY received_at DESC LIMIT ?) AS m GROUP BY from_number, to_number, relayed_to",
            (until, window)).fetchall()
        inbound = keep(_by_pair(grouped, not_customers))
        if len(inbound) >= limit or sum(row[4] for row in grouped) < window:
            return _newest(found, inbound)
        window *= 4
    return _pairs_by_activity(history, until, limit, not_customers, unassigned is not None)


def _pairs_by_activity(history: Transaction, until: object, limit: int, not_customers: frozenset[str],
                       unassigned: bool) -> dict[Pair, object]:
    """The newest conversations, from the conversations table read whole (one row per conversation)."""
    return {(customer, ours): at for customer, ours, at in history.execute(
        "SELECT customer, ours, last_at FROM conversations" + history.scan + " WHERE last_at < ?"
        + (" AND assignee IS NULL" if unassigned else "") + " ORDER BY last_at DESC LIMIT ?",
        (until, limit + len(not_customers))).fetchall() if customer not in not_customers}


def _assigned_pairs(history: Transaction, until: object, person: str, limit: int) -> dict[Pair, object]:
    """The person's conversations (few: those assigned to them) with activity before `until`, newest first."""
    return {(customer, ours): at for customer, ours, at in history.execute(
        "SELECT customer, ours, last_at FROM conversations WHERE assignee = ? AND last_at < ?"
        " ORDER BY last_at DESC LIMIT ?", (person, until, limit)).fetchall()}


def _pairs_by_number(history: Transaction, until: object, digits: str, limit: int, not_customers: frozenset[str]
                     ) -> dict[Pair, object]:
    """Conversations whose customer's number holds these digits: one row per conversation, read whole."""
    return {(customer, ours): at for customer, ours, at in history.execute(
        "SELECT customer, ours, last_at FROM conversations" + history.scan + " WHERE customer LIKE ? AND last_at < ?"
        " ORDER BY last_at DESC LIMIT ?", (f"%{digits}%", until, limit + len(not_customers))).fetchall()
        if customer not in not_customers}


def _pairs_by_words(history: Transaction, words: Words, until: object, search: list[str], limit: int,
                    not_customers: frozenset[str]) -> dict[Pair, object]:
    """The newest matching activity before `until` of conversations with a message holding every word (a
    customer's or an owner's text, an outbound message; not the automatic answers): the newest
    SEARCH_WINDOW matches, then eight times more, while they hold too few conversations."""
    if not search:
        return {}
    window = SEARCH_WINDOW
    while True:
        inbound = words.messages_matching(history, search, until, window)
        outbound = words.outbound_matching(history, search, until, window)
        found = _newest(_by_pair(inbound, not_customers), {
            (number_key(dst), number_key(src)): at for dst, src, at in outbound})
        if len(found) >= limit or (len(inbound) < window and len(outbound) < window):
            return found
        window *= 8


def _by_pair(rows: list[tuple], not_customers: frozenset[str]) -> dict[Pair, object]:
    """Grouped (from, to, relayed_to, newest) rows by conversation: the sender's, or for an owner's relay,
    the customer's; senders who are not customers (owners, our numbers) left out."""
    pairs: dict[Pair, object] = {}
    for sender, ours, relayed_to, newest in (row[:4] for row in rows):
        pair = (relayed_to or number_key(sender), number_key(ours))
        if pair[0] not in not_customers:
            pairs[pair] = max(newest, pairs.get(pair, newest))
    return pairs


def _outbound_pairs(history: Transaction, until: object, limit: int) -> dict[Pair, object]:
    return {(number_key(dst), number_key(src)): newest for dst, src, newest in history.execute(
        "SELECT dst, src, max(queued_at) FROM outbox WHERE kind = 'outbound' AND queued_at < ? AND dst IS NOT NULL"
        " GROUP BY dst, src ORDER BY max(queued_at) DESC LIMIT ?", (until, limit)).fetchall()}


def _newest(*found: dict[Pair, object]) -> dict[Pair, object]:
    newest: dict[Pair, object] = {}
    for pairs in found:
        for pair, at in pairs.items():
            newest[pair] = max(at, newest.get(pair, at))
    return newest


def _summary(history: Transaction, customer: str, ours: str, last_in: object) -> Conversation | None:
    """A conversation's newest message either way (an inbound one, an outbound one, an owner's relay);
    last_in: the time of the customer's newest message (the conversations table's), None if none."""
    latest = []
    # Found by its time: "the sender's newest" would walk the messages back in time from now, which the
    # planner may prefer to the sender's own index, far back for a customer quiet for long (0.7 s for 50
    # such conversations at 10,000,000 messages on PostgreSQL).
    inbound = None if last_in is None else history.execute(
        "SELECT received_at, text, forwarded_to FROM messages WHERE received_at = ? AND from_number IN (?, ?)"
        " AND to_number IN (?, ?) LIMIT 1", (last_in, *number_forms(customer), *number_forms(ours))).fetchone()
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


# -- A conversation -----------------------------------------------------------------

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
                      status=message.status, error=message.error, id=message.id, send_at=message.send_at)
                for message in (outbound_of(history, row) for row in history.execute(
                    f"SELECT {OUTBOUND_COLUMNS} FROM outbox WHERE kind = 'outbound' AND dst = ? AND src = ?"
                    " ORDER BY queued_at DESC LIMIT ?", (customer, ours, limit)).fetchall())]
    entries += [Entry("relay", history.moment(at), text, by=owner) for at, text, owner in history.execute(
        "SELECT received_at, reply, from_number FROM messages WHERE relayed_to = ? AND to_number IN (?, ?)"
        " ORDER BY received_at DESC LIMIT ?", (customer, *number_forms(ours), limit)).fetchall()]
    entries += [Entry("consent", history.moment(at), change, by=person) for change, person, at in history.execute(
        "SELECT change, changed_by, changed_at FROM consent_changes WHERE number = ? AND to_number = ?"
        " ORDER BY changed_at DESC LIMIT ?", (customer, ours, limit)).fetchall()]
    entries += [Entry("assignment", history.moment(at), assignee, by=person) for assignee, person, at in history.execute(
        "SELECT assignee, assigned_by, assigned_at FROM assignments WHERE customer = ? AND ours = ?"
        " ORDER BY assigned_at DESC LIMIT ?", (customer, ours, limit)).fetchall()]
    entries += [Entry("note", history.moment(at), text, by=person) for text, person, at in history.execute(
        "SELECT text, written_by, written_at FROM notes WHERE customer = ? AND ours = ?"
        " ORDER BY written_at DESC LIMIT ?", (customer, ours, limit)).fetchall()]
    # An answer that assigned its conversation reads in that order: the assignment, then the message.
    return sorted(entries, key=lambda entry: (entry.at, entry.kind != "assignment"))[-limit:]


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


# -- Assignment -----------------------------------------------------------------------

def assignee_of(history: Transaction, customer: str, ours: str) -> tuple[str | None, str | None, datetime | None]:
    """(assignee, by whom, when) of a conversation; (None, None, None) when it is unassigned."""
    row = history.execute("SELECT assignee, assigned_by, assigned_at FROM conversations WHERE customer = ? AND ours = ?",
                          (customer, ours)).fetchone()
    return (row[0], row[1], history.moment(row[2])) if row and row[0] else (None, None, None)


def assign(tx: Transaction, customer: str, ours: str, assignee: str | None, person: str, now: float) -> bool:
    """Give the conversation to `assignee` (None: nobody), as `person` asked; stored with who and when, and
    in its timeline. False if it was theirs already; Problem if there is no such conversation or person."""
    if assignee is not None and not tx.execute("SELECT 1 FROM users WHERE name = ?", (assignee,)).fetchone():
        raise Problem(f"There is no one called {assignee}.")
    row = tx.execute("SELECT assignee FROM conversations WHERE customer = ? AND ours = ?" + tx.for_update,
                     (customer, ours)).fetchone()
    if row is None:
        raise Problem("There is no conversation with this number yet.")
    if row[0] == assignee:
        return False
    _set_assignee(tx, customer, ours, assignee, person, now)
    return True


def assign_on_answer(tx: Transaction, customer: str, ours: str, person: str, now: float) -> bool:
    """A person who answers an unassigned conversation becomes its assignee; True if they did."""
    tx.execute("INSERT INTO conversations (customer, ours, last_at) VALUES (?, ?, ?) ON CONFLICT (customer, ours)"
               " DO NOTHING", (customer, ours, tx.timestamp(now)))  # the answer is its newest activity
    if not tx.execute("UPDATE conversations SET assignee = ?, assigned_by = ?, assigned_at = ? WHERE customer = ?"
                      " AND ours = ? AND assignee IS NULL",
                      (person, person, tx.timestamp(now), customer, ours)).rowcount:
        return False
    tx.execute("INSERT INTO assignments (customer, ours, assignee, assigned_by, assigned_at) VALUES (?, ?, ?, ?, ?)",
               (customer, ours, person, person, tx.timestamp(now)))
    return True


def _set_assignee(tx: Transaction, customer: str, ours: str, assignee: str | None, person: str, now: float) -> None:
    tx.execute("UPDATE conversations SET assignee = ?, assigned_by = ?, assigned_at = ? WHERE customer = ? AND ours = ?",
               (assignee, assignee and person, assignee and tx.timestamp(now), customer, ours))
    tx.execute("INSERT INTO assignments (customer, ours, assignee, assigned_by, assigned_at) VALUES (?, ?, ?, ?, ?)",
               (customer, ours, assignee, person, tx.timestamp(now)))


def hand_back(tx: Transaction, name: str) -> None:
    """A person removed: their conversations become unassigned, and what they read is forgotten."""
    tx.execute("UPDATE conversations SET assignee = NULL, assigned_by = NULL, assigned_at = NULL WHERE assignee = ?",
               (name,))
    tx.execute("DELETE FROM conversation_reads WHERE name = ?", (name,))


def people_names(history: Transaction) -> list[str]:
    """Everyone a conversation can be assigned to."""
    return [name for (name,) in history.execute("SELECT name FROM users ORDER BY name").fetchall()]


# -- Unread: what each person has read ------------------------------------------------

def mark_read(tx: Transaction, person: str, customer: str, ours: str) -> None:
    """The person has opened the conversation: read up to the customer's newest message (written only
    when that moved)."""
    tx.execute(
        "INSERT INTO conversation_reads (name, customer, ours, read_at) SELECT ?, customer, ours, last_in_at"
        " FROM conversations WHERE customer = ? AND ours = ? AND last_in_at IS NOT NULL"
        " ON CONFLICT (name, customer, ours) DO UPDATE SET read_at = excluded.read_at"
        " WHERE conversation_reads.read_at < excluded.read_at", (person, customer, ours))


def reads_of(history: Transaction, person: str, pairs: list[Pair]) -> dict[Pair, object]:
    """When the person last read each of these conversations (those they have opened)."""
    customers = sorted({customer for customer, _ in pairs})
    if not customers:
        return {}
    return {(customer, ours): read_at for customer, ours, read_at in history.execute(
        "SELECT customer, ours, read_at FROM conversation_reads WHERE name = ?"
        f" AND customer IN ({', '.join('?' * len(customers))})", (person, *customers)).fetchall()
        if (customer, ours) in pairs}


def unread_count(history: Transaction, person: str, not_customers: frozenset[str]) -> int:
    """How many conversations have a customer's message the person has not seen: every conversation with
    one, less those the person has read since (a count over the conversations table, one row each)."""
    others = f" AND c.customer NOT IN ({', '.join('?' * len(not_customers))})" if not_customers else ""
    with_messages = history.execute(
        "SELECT count(*) FROM conversations c" + history.scan + " WHERE c.last_in_at IS NOT NULL" + others, tuple(not_customers)
    ).fetchone()[0]
    read = history.execute(
        "SELECT count(*) FROM conversation_reads r JOIN conversations c ON c.customer = r.customer AND c.ours = r.ours"
        " WHERE r.name = ? AND r.read_at >= c.last_in_at" + others, (person, *not_customers)).fetchone()[0]
    return with_messages - read


# -- Notes and saved replies ---------------------------------------------------------

def add_note(tx: Transaction, customer: str, ours: str, text: str, person: str, now: float) -> None:
    """A note for the team in the conversation's timeline; never sent."""
    text = text.strip()
    if not text:
        raise Problem("Note: write something first.")
    if len(text) > MAX_NOTE:
        raise Problem(f"Note: at most {MAX_NOTE} characters ({len(text)}).")
    tx.execute("INSERT INTO notes (customer, ours, text, written_by, written_at) VALUES (?, ?, ?, ?, ?)",
               (customer, ours, text, person, tx.timestamp(now)))


def saved_replies(history: Transaction) -> list[SavedReply]:
    """Every saved reply, by name."""
    return [SavedReply(row[0], row[1], row[2], row[3], history.moment(row[4])) for row in history.execute(
        "SELECT id, name, text, changed_by, changed_at FROM saved_replies ORDER BY lower(name), name").fetchall()]


def saved_reply(history: Transaction, reply_id: int) -> SavedReply | None:
    row = history.execute("SELECT id, name, text, changed_by, changed_at FROM saved_replies WHERE id = ?",
                          (reply_id,)).fetchone()
    return row and SavedReply(row[0], row[1], row[2], row[3], history.moment(row[4]))


def save_reply(tx: Transaction, reply_id: int | None, name: str, text: str, person: str, now: float) -> int:
    """Add a saved reply (reply_id None) or change one; its id. Problem if the name or text will not do."""
    name, text = " ".join(name.split()), text.strip()
    if not 0 < len(name) <= MAX_REPLY_NAME:
        raise Problem(f"Name: 1 to {MAX_REPLY_NAME} characters.")
    if not 0 < len(text) <= MAX_SAVED_REPLY:
        raise Problem(f"Text: 1 to {MAX_SAVED_REPLY} characters, as a message.")
    if tx.execute("SELECT 1 FROM saved_replies WHERE name = ? AND id <> ?", (name, reply_id or 0)).fetchone():
        raise Problem(f"There is a saved reply called “{name}” already.")
    if reply_id is None:
        return tx.execute("INSERT INTO saved_replies (name, text, changed_by, changed_at) VALUES (?, ?, ?, ?)"
                          " RETURNING id", (name, text, person, tx.timestamp(now))).fetchone()[0]
    if not tx.execute("UPDATE saved_replies SET name = ?, text = ?, changed_by = ?, changed_at = ? WHERE id = ?",
                      (name, text, person, tx.timestamp(now), reply_id)).rowcount:
        raise Problem("That saved reply has been removed.")
    return reply_id


def remove_saved_reply(tx: Transaction, reply_id: int) -> str | None:
    """Remove a saved reply; its name, None if there was none."""
    row = tx.execute("DELETE FROM saved_replies WHERE id = ? RETURNING name", (reply_id,)).fetchone()
    return row and row[0]

"""Operating it: the commands an owner runs beside the service (README: Operating).

Owns: `messages` (both directions, --json, --follow), `stats`, and `opt-outs` (export, import, add,
remove), and the statements they read and write.

Uses of the core: the settings, the store (read-only views, and one transaction per change), the
opt-out cancellations of the outbox, phone numbers, times and the command helpers; and of speaking
first (api), how an outbound message is read and shown.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sms_responder import (
    ConfigError, SmsResponder, Settings, Store, StoreUnavailable, Routes, Transaction, argument,
    cancel_for_opt_out, cli_number, command_store, iso_timestamp, number_forms, number_key, period_seconds,
    positive, read_environment,
)
from sms_responder_surfaces.api import OUTBOUND_COLUMNS, OutboundMessage, outbound_of


def attach(app: SmsResponder) -> Routes:
    """The operating commands serve no route."""
    return {}


def add_commands(commands: Any) -> None:
    """messages, stats and opt-outs."""
    since_help = "a duration back from now (90s, 30m, 2h, 7d) or an ISO 8601 date or time (local)"
    messages_parser = commands.add_parser("messages", help="the stored messages, oldest first")
    messages_parser.add_argument("--from", dest="sender", metavar="N", help="only from this number")
    messages_parser.add_argument("--to", metavar="N", help="only to this number of ours")
    messages_parser.add_argument("--since", metavar="WHEN", help=f"only since: {since_help}")
    messages_parser.add_argument("--rule", metavar="NAME", help="only the messages this reply rule matched (the"
                                                                " answers to a question, say)")
    messages_parser.add_argument("--limit", type=positive, default=20, help="the last N (default: %(default)s)")
    messages_parser.add_argument("--json", action="store_true", help="one JSON object per line (times in UTC)")
    messages_parser.add_argument("-f", "--follow", action="store_true",
                                 help="then print each new message as it is stored, until Ctrl-C")
    messages_parser.set_defaults(run=list_messages)
    stats_parser = commands.add_parser("stats", help="counts since --since (default: the last 24 h)")
    stats_parser.add_argument("--since", metavar="WHEN", help=since_help)
    stats_parser.add_argument("--json", action="store_true", help="one JSON object")
    stats_parser.set_defaults(run=show_stats)
    opt_outs = commands.add_parser("opt-outs", help="export, import, add or remove opt-outs").add_subparsers(
        dest="action", required=True)
    export_parser = opt_outs.add_parser("export", help="CSV of every opt-out in force on standard output")
    export_parser.add_argument("--to", metavar="N", help="only those of this number of ours")
    export_parser.set_defaults(run=export_opt_outs)
    import_parser = opt_outs.add_parser("import", help="opt-outs from a CSV (all rows or none)")
    import_parser.add_argument("file", metavar="FILE", help="a CSV with a number column (- reads standard input)")
    import_parser.add_argument("--to", metavar="N", help="for rows without to_number (default: every number of ours)")
    import_parser.set_defaults(run=import_opt_outs)
    for action, what in (("add", "opt a number out (no SMS is sent)"), ("remove", "remove a number's opt-out")):
        change_parser = opt_outs.add_parser(action, help=what)
        change_parser.add_argument("number", help="the phone number")
        change_parser.add_argument("--to", metavar="N", help="of this number of ours (default: every one)")
        change_parser.set_defaults(run=change_opt_out)


# -- What the commands read and change ----------------------------------------

FOLLOW_POLL = 0.5    # seconds between looks for new messages: one is shown within 2 s of being stored
FOLLOW_MARGIN = 30.0  # seconds: a message stored late (a slow transaction) is still shown once
MAX_IMPORT_ERRORS = 20


@dataclasses.dataclass(frozen=True)
class MessageQuery:
    """Which stored messages a command wants: filters, and how many of the newest."""

    sender: str | None = None
    recipient: str | None = None
    since: float | None = None
    rule: str | None = None  # only the messages this reply rule matched (inbound only)
    limit: int = 20


@dataclasses.dataclass(frozen=True)
class StoredMessage:
    """A message as the commands show it (sender, recipient, text and media are None once purged)."""

    message_uuid: str
    received_at: datetime
    sender: str | None
    recipient: str | None
    type: str
    text: str | None
    media_urls: tuple[str, ...]
    outcome: str | None
    rule: str | None
    reply: str | None
    reply_status: str | None  # the outbox status in REPLY_MODE=api
    forwarded_to: tuple[str, ...]
    relayed_to: str | None

    @property
    def key(self) -> str:
        return self.message_uuid

    @property
    def at(self) -> datetime:
        return self.received_at

    def as_json(self) -> str:
        return json.dumps({
            "direction": "in", "message_uuid": self.message_uuid, "received_at": self.received_at.isoformat(), "from": self.sender,
            "to": self.recipient, "type": self.type, "text": self.text, "media_urls": list(self.media_urls),
            "outcome": self.outcome, "rule": self.rule, "reply": self.reply, "reply_status": self.reply_status,
            "forwarded_to": list(self.forwarded_to), "relayed_to": self.relayed_to,
        }, ensure_ascii=False)


def find_messages(history: Transaction, query: MessageQuery) -> list[StoredMessage | OutboundMessage]:
    """The last query.limit messages that match, both directions, newest first."""
    both = find_inbound(history, query) + find_outbound(history, query)
    return sorted(both, key=lambda message: (message.at, message.key), reverse=True)[:query.limit]


def find_inbound(history: Transaction, query: MessageQuery) -> list[StoredMessage]:
    """The last query.limit inbound messages that match (newest first), each with its reply's outbox status."""
    conditions, params = query_filters(history, query, "m.from_number", "m.to_number", "m.received_at")
    if query.rule is not None:
        conditions.append("m.rule = ?")
        params.append(query.rule)
    rows = history.execute(
        "SELECT m.message_uuid, m.received_at, m.from_number, m.to_number, m.type, m.text, m.media_urls,"
        " m.outcome, m.rule, m.reply, o.status, m.forwarded_to, m.relayed_to FROM messages m LEFT JOIN outbox o"
        " ON o.message_uuid = m.message_uuid AND o.kind = 'reply' WHERE " + " AND ".join(conditions) +
        " ORDER BY m.received_at DESC, m.message_uuid DESC LIMIT ?", (*params, query.limit)).fetchall()
    return [StoredMessage(row[0], history.moment(row[1]), *row[2:6], tuple(json.loads(row[6] or "[]")), *row[7:11],
                          tuple(row[11].split(",")) if row[11] else (), row[12]) for row in rows]


def query_filters(history: Transaction, query: MessageQuery, sender_column: str, recipient_column: str,
                  time_column: str) -> tuple[list[str], list[object]]:
    """The WHERE conditions (and their parameters) of a query's sender, recipient and since, on these columns."""
    conditions, params = ["1 = 1"], []
    for column, number in ((sender_column, query.sender), (recipient_column, query.recipient)):
        if number:
            conditions.append(f"{column} IN (?, ?)")
            params += number_forms(number)
    if query.since is not None:
        conditions.append(f"{time_column} >= ?")
        params.append(history.timestamp(query.since))
    return conditions, params


def find_outbound(history: Transaction, query: MessageQuery) -> list[OutboundMessage]:
    """The last query.limit outbound messages that match (newest first): from (src) and to (dst) as for inbound."""
    if query.rule is not None:  # rules answer inbound messages only
        return []
    conditions, params = query_filters(history, query, "src", "dst", "queued_at")
    conditions.append("kind = 'outbound'")
    rows = history.execute(f"SELECT {OUTBOUND_COLUMNS} FROM outbox WHERE " + " AND ".join(conditions) +
                           " ORDER BY queued_at DESC, public_id DESC LIMIT ?", (*params, query.limit)).fetchall()
    return [outbound_of(history, row) for row in rows]


def message_counts(history: Transaction, since: float) -> tuple[dict[str, int], int]:
    """Messages received since `since`, per outcome; and how many distinct senders sent them."""
    timestamp = history.timestamp(since)
    outcomes = dict(history.execute("SELECT coalesce(outcome, 'none'), count(*) FROM messages"
                                    " WHERE received_at >= ? GROUP BY 1 ORDER BY 2 DESC, 1", (timestamp,)).fetchall())
    senders = history.execute("SELECT count(DISTINCT from_number) FROM messages WHERE received_at >= ?",
                              (timestamp,)).fetchone()[0]
    return outcomes, senders


def opt_out_counts(history: Transaction, since: float) -> tuple[int, int]:
    """Opt-outs in force, and how many of them began since `since`."""
    return tuple(history.execute("SELECT count(*), count(CASE WHEN opted_out_at >= ? THEN 1 END) FROM opt_outs",
                                 (history.timestamp(since),)).fetchone())


def outbound_counts(history: Transaction, since: float) -> dict[str, int]:
    """Outbound messages created since `since`, per status."""
    return dict(history.execute("SELECT status, count(*) FROM outbox WHERE kind = 'outbound' AND queued_at >= ?"
                                " GROUP BY status ORDER BY 2 DESC, 1", (history.timestamp(since),)).fetchall())


def outbox_counts(history: Transaction) -> dict[str, int]:
    """Outbox rows per status, all of them."""
    return dict(history.execute("SELECT status, count(*) FROM outbox GROUP BY status ORDER BY 2 DESC, 1").fetchall())


def opt_outs_in_force(history: Transaction, recipient: str | None) -> Iterator[tuple[str, str, datetime]]:
    """(number, our number, since when) of each opt-out, optionally only those of one number of ours."""
    where, params = ("WHERE to_key = ?", (number_key(recipient),)) if recipient else ("", ())
    for number, to_number, opted_out_at in history.execute(
            f"SELECT number, to_number, opted_out_at FROM opt_outs {where} ORDER BY to_key, number_key", params):
        yield number, to_number, history.moment(opted_out_at)


def add_opt_outs(tx: Transaction, opt_outs: list[tuple[str, str, float]]) -> int:
    """Record (number, our number, unix time) opt-outs, which act as a STOP does (outbound messages
    still waiting for them are cancelled); how many were new (the others were in force)."""
    added = tx.execute_many(
        "INSERT INTO opt_outs (number, to_number, number_key, to_key, opted_out_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [(number, recipient, number, recipient, tx.timestamp(when)) for number, recipient, when in opt_outs])
    cancel_for_opt_out(tx, [(number, recipient) for number, recipient, _ in opt_outs])
    return added


def remove_opt_outs(tx: Transaction, number: str, recipients: Iterable[str]) -> int:
    """Remove a number's opt-outs of some numbers of ours; how many there were."""
    return sum(tx.execute("DELETE FROM opt_outs WHERE number_key = ? AND to_key = ?",
                          (number_key(number), number_key(recipient))).rowcount for recipient in recipients)


def parse_since(value: str, now: float) -> float:
    """--since: a duration back from now (90s, 30m, 2h, 7d) or an ISO 8601 date or time (local without an offset)."""
    try:
        return now - period_seconds(value.strip())
    except ValueError:
        pass
    try:
        return iso_timestamp(value, None)
    except ValueError:
        raise ConfigError([f"--since: {value!r} is neither a duration (90s, 30m, 2h, 7d) nor an ISO 8601 time"]) \
            from None


def our_numbers_given(settings: Settings, to: str | None, what: str = "--to") -> tuple[str, ...]:
    """A number of ours given as --to (or a CSV's to_number), or all of them when it is absent."""
    if to is None:
        return settings.plivo_number
    number = cli_number(to, what)
    if number not in settings.plivo_number:
        raise ValueError(f"{what} {to} is not one of PLIVO_NUMBER")
    return (number,)


# Terminal output: aligned columns cut to the width, colour on a terminal only (https://no-color.org).
OUTCOME_COLOURS = {"replied": "32", "helped": "32", "started": "36", "stopped": "31", "opted_out": "31",
                   "rate_limited": "33", "consent_check": "33", "no_reply": "2", "plivo_keyword": "35",
                   "own_number": "35", "relayed": "34", "not_relayed": "33", "delivered": "32", "sent": "34", "failed": "31",
                   "undelivered": "31", "cancelled": "2", "scheduled": "36", "queued": "36", "sending": "36"}
_UNPRINTABLE = {**{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
                ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


class MessageTable:
    """Stored messages as aligned lines: local time, sender, our number, outcome, then text -> reply."""

    COLUMNS = (("time", 19), ("from", 16), ("to", 16), ("outcome", 13))

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        is_terminal = stream.isatty()
        self.colour = is_terminal and not os.environ.get("NO_COLOR")
        self.width = shutil.get_terminal_size().columns if is_terminal else None

    def write_header(self) -> None:
        self.print_row([name.upper() for name, _ in self.COLUMNS], "TEXT -> REPLY", ["2"] * 4)

    def write(self, message: StoredMessage | OutboundMessage) -> None:
        if isinstance(message, OutboundMessage):
            self.write_outbound(message)
            return
        text = "(purged)" if message.sender is None else printable(message.text or "")
        if message.media_urls:
            text += f" [+{len(message.media_urls)} media]"
        if message.reply:
            text += f" -> {'@' + message.relayed_to + ': ' if message.relayed_to else ''}{printable(message.reply)}"
        if message.forwarded_to:
            text += f" [forwarded to {', '.join(message.forwarded_to)}]"
        outcome = message.outcome or "-"
        self.print_row([message.received_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"), message.sender or "-",
                        message.recipient or "-", outcome], text, ["2", "0", "0", OUTCOME_COLOURS.get(outcome, "0")])

    def write_outbound(self, message: OutboundMessage) -> None:
        """An outbound message: our number, the customer, its status as the outcome, then [out] and the text."""
        text = "(purged)" if message.to is None else printable(message.text or "")
        if message.media_urls:
            text += f" [+{len(message.media_urls)} media]"
        text = f"[out] {text} (by {message.sent_by})" + (f" ({message.error})" if message.error else "")
        self.print_row([message.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"), message.src or "-",
                        message.to or "-", message.status], text,
                       ["2", "0", "0", OUTCOME_COLOURS.get(message.status, "0")])

    def print_row(self, cells: list[str], text: str, colours: list[str]) -> None:
        cells = [fit(cell, width).ljust(width) for cell, (_, width) in zip(cells, self.COLUMNS)]
        if self.colour:
            cells = [f"\x1b[{colour}m{cell}\x1b[0m" for cell, colour in zip(cells, colours)]
        room = None if self.width is None else max(10, self.width - sum(width + 1 for _, width in self.COLUMNS))
        print(" ".join(cells), fit(text, room), file=self.stream, flush=True)


def printable(text: str) -> str:
    """Text from strangers made safe for a terminal: control characters (escape sequences) shown escaped."""
    return text.translate(_UNPRINTABLE)


def fit(line: str, width: int | None) -> str:
    """The line cut to at most `width` terminal cells (wide characters take two), with an ellipsis when cut."""
    cells = [2 if unicodedata.east_asian_width(character) in "WF" else 1 for character in line]
    if width is None or sum(cells) <= width:
        return line
    used = 0
    for index, cell in enumerate(cells):
        if used + cell > width - 1:
            return line[:index] + "…"
        used += cell
    return line


def list_messages(args: argparse.Namespace) -> int:
    """messages: the stored messages that match, oldest first; with --follow, then each new one as it comes."""
    settings = Settings.from_env(read_environment())
    query = MessageQuery(sender=args.sender and argument(cli_number, args.sender, "--from"),
                         recipient=args.to and argument(cli_number, args.to, "--to"),
                         since=args.since and parse_since(args.since, time.time()), rule=args.rule, limit=args.limit)
    with command_store(settings) as store:
        with store.reading() as history:
            shown = find_messages(history, query)[::-1]
        if args.json:
            def write(message: StoredMessage | OutboundMessage) -> None:
                print(message.as_json(), flush=True)
        else:
            table = MessageTable(sys.stdout)
            table.write_header()
            write = table.write
        for message in shown:
            write(message)
        if args.follow:
            follow(store, query, shown, write)
    return 0


def follow(store: Store, query: MessageQuery, shown: list[StoredMessage],
           write: Callable[[StoredMessage], None]) -> None:
    """Print each new message within 2 s of it being stored, until SIGINT or SIGTERM.

    Every FOLLOW_POLL seconds it reads the messages received since the newest one shown,
    less FOLLOW_MARGIN seconds, and prints those it has not printed: a message whose
    transaction committed after a later one's (their received_at is taken before the
    commit) is shown too, once.
    """
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stopping.set())
    seen = {message.key: message.at.timestamp() for message in shown}
    newest = max(seen.values(), default=time.time() - FOLLOW_MARGIN)
    while not stopping.wait(FOLLOW_POLL):
        window = dataclasses.replace(query, since=max(query.since or 0, newest - FOLLOW_MARGIN), limit=10_000)
        try:
            with store.reading() as history:
                new = [message for message in find_messages(history, window)[::-1] if message.key not in seen]
        except StoreUnavailable as error:
            print(f"sms_responder: {error}".splitlines()[0], file=sys.stderr, flush=True)
            continue
        for message in new:
            write(message)
            seen[message.key] = message.at.timestamp()
        newest = max(newest, *seen.values()) if seen else newest
        seen = {uuid_: at for uuid_, at in seen.items() if at >= newest - 2 * FOLLOW_MARGIN}


def show_stats(args: argparse.Namespace) -> int:
    """stats: messages, outcomes, senders, opt-outs and outbound messages since --since (default 24 h), and
    the outbox now."""
    settings = Settings.from_env(read_environment())
    since = parse_since(args.since or "24h", time.time())
    with command_store(settings) as store, store.reading() as history:
        outcomes, senders = message_counts(history, since)
        opt_outs, new_opt_outs = opt_out_counts(history, since)
        outbound = outbound_counts(history, since)
        outbox = outbox_counts(history)
    report = {"since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
              "messages": sum(outcomes.values()), "outcomes": outcomes, "senders": senders,
              "opt_outs": {"total": opt_outs, "new": new_opt_outs}, "outbound": outbound, "outbox": outbox}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'since':<16}{datetime.fromtimestamp(since).astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"{'messages':<16}{report['messages']:>7,}")
    for outcome, number in outcomes.items():
        print(f"  {outcome:<14}{number:>7,}")
    print(f"{'senders':<16}{senders:>7,}")
    print(f"{'opt-outs':<16}{opt_outs:>7,} in force, {new_opt_outs:,} new")
    print(f"{'outbound':<16}{sum(outbound.values()):>7,}")
    for status, number in outbound.items():
        print(f"  {status:<14}{number:>7,}")
    print(f"{'outbox':<16}" + (", ".join(f"{status} {number:,}" for status, number in outbox.items()) or "empty"))
    return 0


def export_opt_outs(args: argparse.Namespace) -> int:
    """opt-outs export: CSV (number,to_number,opted_out_at) of every opt-out in force."""
    settings = Settings.from_env(read_environment())
    recipient = args.to and argument(our_numbers_given, settings, args.to)[0]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    with command_store(settings) as store, store.reading() as history:
        writer.writerow(["number", "to_number", "opted_out_at"])
        for number, to_number, opted_out_at in opt_outs_in_force(history, recipient):
            writer.writerow([number, to_number, opted_out_at.isoformat(timespec="seconds")])
    return 0


def import_opt_outs(args: argparse.Namespace) -> int:
    """opt-outs import: all rows of a CSV or none; one line per bad row (at most 20), exit 2."""
    settings = Settings.from_env(read_environment())
    default_numbers = argument(our_numbers_given, settings, args.to)
    with command_store(settings) as store:
        try:
            source = (io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="") if args.file == "-"
                      else open(args.file, encoding="utf-8-sig", newline=""))  # noqa: SIM115 - closed below
        except OSError as error:
            raise ConfigError([f"{args.file}: {error.strerror}"]) from None
        with source:
            opt_outs, problems = read_opt_out_csv(source, args.file, settings, default_numbers, time.time())
        if problems:
            for problem in problems:
                print(problem, file=sys.stderr)
            return 2
        with store.transaction() as tx:  # validated first, so the writer is held only while writing
            imported = add_opt_outs(tx, opt_outs)
    print(f"imported {imported}, already opted out {len(opt_outs) - imported}")
    return 0


def read_opt_out_csv(source: Iterable[str], name: str, settings: Settings, default_numbers: tuple[str, ...],
                     now: float) -> tuple[list[tuple[str, str, float]], list[str]]:
    """The (number, our number, unix time) opt-outs of a CSV, read row by row, and its problems (`FILE:LINE: ...`)."""
    reader = csv.DictReader(source)
    problems: list[str] = []
    if reader.fieldnames is None or "number" not in reader.fieldnames:
        return [], [f"{name}:1: the header must have a number column (and may have to_number, opted_out_at)"]
    opt_outs = []
    for row in reader:
        try:
            number = cli_number(row["number"] or "")
            recipients = (our_numbers_given(settings, row["to_number"], "to_number") if row.get("to_number")
                          else default_numbers)
            when = imported_time(row.get("opted_out_at") or "", now)
        except ValueError as error:
            problems.append(f"{name}:{reader.line_num}: {error}")
            if len(problems) == MAX_IMPORT_ERRORS:
                break
            continue
        if not problems:
            opt_outs.extend((number, recipient, when) for recipient in recipients)
    return opt_outs, problems


def imported_time(value: str, now: float) -> float:
    """An opted_out_at of an imported row: empty means now; without an offset it is UTC."""
    if not value.strip():
        return now
    try:
        return iso_timestamp(value, UTC)
    except ValueError:
        raise ValueError(f"opted_out_at {value!r} is not an ISO 8601 time") from None


def change_opt_out(args: argparse.Namespace) -> int:
    """opt-outs add / remove: one number, for --to or every number of ours; no SMS is sent."""
    settings = Settings.from_env(read_environment())
    number = argument(cli_number, args.number)
    recipients = argument(our_numbers_given, settings, args.to)
    with command_store(settings) as store, store.transaction() as tx:
        if args.action == "add":
            changed = add_opt_outs(tx, [(number, recipient, time.time()) for recipient in recipients])
        else:
            changed = remove_opt_outs(tx, number, recipients)
    if args.action == "add":
        print(f"{number}: opted out of {', '.join(recipients)} ({changed} new, {len(recipients) - changed} already)")
    else:
        print(f"{number}: opt-out removed from {', '.join(recipients)} "
              f"({changed} removed, {len(recipients) - changed} were not opted out)")
    return 0

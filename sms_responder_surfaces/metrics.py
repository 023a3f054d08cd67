"""Metrics: GET /metrics for Prometheus, behind METRICS_TOKEN (README: Metrics).

Owns: the Prometheus counters and histogram (summed over every process of a host), the gauges read
from the database at a scrape, and the folder the processes count in. It gives the app (attach) the
counters the core calls back: webhook(), sent(), rules_reloaded(), api_request(); and the verification
surface: verification().

Uses of the core: the app's settings and store, the outcomes, the HTTP plumbing.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import stat
import tempfile
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any
from wsgiref.types import WSGIEnvironment

from sms_responder import (
    ConfigError, HTTPError, Outcome, Response, Routes, Settings, SmsResponder, Store, Transaction, bearer_token,
)
from sms_responder_surfaces.verification import RESULTS as VERIFICATION_RESULTS

METRICS_PATH = "/metrics"
#: seconds; Plivo waits 8 s for a webhook's answer
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0)


def attach(app: SmsResponder) -> Routes:
    """With METRICS_TOKEN set: the app counts through Metrics, and /metrics answers; else nothing."""
    if not app.settings.metrics_token:
        return {}
    app.metrics = Metrics(app.settings, app.store)
    return {METRICS_PATH: {"GET": app.metrics.handle}}


def add_commands(commands: Any) -> None:
    """Metrics has no command of its own."""


class Metrics:
    """Prometheus metrics: counters summed over every process of the host, gauges read from the database.

    prometheus_client's multiprocess mode: each process (gunicorn and uwsgi workers, the stdlib
    server, `worker`) counts in files of its own in one folder, and a scrape, whichever process
    answers it, sums the files of every process, those that have exited included, so a restarted
    worker loses none of the counts. The folder is PROMETHEUS_MULTIPROC_DIR when it is set, else
    one per deployment (working directory and DATABASE_URL) in the system's temporary folder,
    readable by its owner only (private_folder). The library chooses that mode when it is first
    imported, so it is imported here, after the folder is set, and only when METRICS_TOKEN is. Gauges
    that describe the database are read at each scrape through indexes (the waiting outbox rows, the
    opt-outs), never counted per process.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.token = settings.metrics_token.encode()
        self.folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or private_folder(metrics_folder(settings))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.folder  # for the library, and for processes forked later
        os.makedirs(self.folder, exist_ok=True)  # one the operator named is used as they made it
        prometheus = importlib.import_module("prometheus_client")
        multiprocess = importlib.import_module("prometheus_client.multiprocess")
        values = importlib.import_module("prometheus_client.values")
        if values.ValueClass is values.MutexValue:  # the single-process kind: its counts would be this process's
            raise ConfigError(["METRICS_TOKEN: prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was"
                               " set; set PROMETHEUS_MULTIPROC_DIR in the environment of every process"])
        self.prometheus, self.multiprocess, self.store = prometheus, multiprocess, store
        self.webhooks = prometheus.Counter("sms_webhooks", "Webhooks answered, by outcome", ["outcome"], registry=None)
        self.webhook_seconds = prometheus.Histogram("sms_webhook_duration_seconds", "Time to answer a webhook",
                                                    buckets=WEBHOOK_BUCKETS, registry=None)
        self.sends = prometheus.Counter("sms_outbound", "Outbox sends through the Plivo REST API, by result",
                                        ["status"], registry=None)
        self.reloads = prometheus.Counter("sms_rules_reloads", "Looks at a changed RULES_FILE, by result",
                                          ["result"], registry=None)
        self.api_requests = prometheus.Counter("sms_api_requests", "Requests to /api, by HTTP status",
                                               ["status"], registry=None)
        self.verifications = prometheus.Counter("sms_verifications", "Verification requests and checks, by result",
                                                ["result"], registry=None)
        # Every known label value starts at 0, so that each series exists (and alerts see it) from the start.
        self._outcomes = {outcome.value: self.webhooks.labels(outcome.value) for outcome in Outcome}
        for status in ("sent", "failed", "retried", "cancelled", "claim_lost"):
            self.sends.labels(status)
        for result in ("reloaded", "refused"):
            self.reloads.labels(result)
        for status in (HTTPStatus.ACCEPTED, HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN,
                       HTTPStatus.TOO_MANY_REQUESTS):
            self.api_requests.labels(str(status.value))
        for result in VERIFICATION_RESULTS:
            self.verifications.labels(result)

    def webhook(self, outcome: str, seconds: float) -> None:
        """Count one webhook (about 3 µs: a counter and a histogram, each a write to a mapped file)."""
        (self._outcomes.get(outcome) or self.webhooks.labels(outcome)).inc()
        self.webhook_seconds.observe(seconds)

    def sent(self, status: str) -> None:
        """Count one outbox send by its result (sent, failed, retried, cancelled, claim_lost)."""
        self.sends.labels(status).inc()

    def rules_reloaded(self, result: str) -> None:
        """Count one look at a changed RULES_FILE (reloaded, refused)."""
        self.reloads.labels(result).inc()

    def api_request(self, status: int) -> None:
        """Count one request to /api by its HTTP status."""
        self.api_requests.labels(str(status)).inc()

    def verification(self, result: str) -> None:
        """Count one verification request or check by its result (the verification surface's RESULTS)."""
        self.verifications.labels(result).inc()

    def exposition(self) -> bytes:
        """Every process's counters, summed, and the database's gauges, in Prometheus' text format."""
        registry = self.prometheus.CollectorRegistry()
        self.multiprocess.MultiProcessCollector(registry, path=self.folder)
        registry.register(DatabaseGauges(self.store, importlib.import_module("prometheus_client.core")))
        return self.prometheus.generate_latest(registry)

    def handle(self, environ: WSGIEnvironment) -> Response:
        """GET /metrics with Authorization: Bearer METRICS_TOKEN (else 401)."""
        token = bearer_token(environ)
        if token is None or not hmac.compare_digest(token.encode(), self.token):
            raise HTTPError(HTTPStatus.UNAUTHORIZED, "a token is needed: Authorization: Bearer METRICS_TOKEN",
                            (("WWW-Authenticate", "Bearer"),))
        return Response(HTTPStatus.OK, self.exposition(), self.prometheus.CONTENT_TYPE_LATEST)


class DatabaseGauges:
    """The gauges read from the database at a scrape (a prometheus_client collector)."""

    def __init__(self, store: Store, core: Any) -> None:
        self.store, self.core = store, core

    def collect(self) -> Iterator[Any]:
        waiting, opt_outs = self.store.run(lambda tx: (outbox_waiting(tx), opt_outs_total(tx)))
        outbox = self.core.GaugeMetricFamily("sms_outbox_messages", "Outbox rows waiting to be sent, by status",
                                             labels=["status"])
        for status in ("scheduled", "queued", "sending"):
            outbox.add_metric([status], waiting.get(status, 0))
        yield outbox
        yield self.core.GaugeMetricFamily("sms_opt_outs", "Opt-outs in force", value=opt_outs)


def outbox_waiting(history: Transaction) -> dict[str, int]:
    """Outbox rows not sent yet, by status (the partial index outbox_due holds exactly those)."""
    return dict(history.execute("SELECT status, count(*) FROM outbox WHERE status IN ('scheduled', 'queued',"
                                " 'sending') GROUP BY status").fetchall())


def opt_outs_total(history: Transaction) -> int:
    return history.execute("SELECT count(*) FROM opt_outs").fetchone()[0]


def metrics_folder(settings: Settings) -> str:
    """The folder the processes of one deployment share for their counts: the same working directory
    and DATABASE_URL give the same folder (gunicorn's workers, the `worker` beside them)."""
    deployment = hashlib.sha256(f"{os.getcwd()}\0{settings.database_url}".encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"sms_responder-metrics-{os.getuid()}-{deployment}")


def private_folder(path: str) -> str:
    """The folder at `path`, made readable by its owner only; ConfigError naming it if it is not ours.

    The folder the service picks itself sits in the shared temporary folder, under a name anyone can
    work out: a symbolic link or a folder planted there first by someone else would take in our
    counts, or feed in theirs. Such a folder, or one that others may write to, stops start-up. One of
    ours that others may only read (an earlier release made it so) becomes private. /tmp's sticky bit
    keeps others from replacing it afterwards.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    found = os.lstat(path)
    if stat.S_ISLNK(found.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(found.st_mode):
        problem = "is not a folder"
    elif found.st_uid != os.getuid():
        problem = f"belongs to another user (uid {found.st_uid})"
    elif found.st_mode & 0o022:
        problem = "may be written to by other users"
    else:
        if found.st_mode & 0o077:
            os.chmod(path, 0o700)
        return path
    raise ConfigError([f"METRICS_TOKEN: the metrics folder {path} {problem}; remove it, or set "
                       "PROMETHEUS_MULTIPROC_DIR to a folder of your own"])

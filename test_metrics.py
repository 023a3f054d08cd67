"""Metrics (the contract's section "Metrics"): GET /metrics behind METRICS_TOKEN, right across processes.

Every test runs real processes (gunicorn -w 3, the stdlib server, `worker`), on SQLite and
PostgreSQL, and scrapes them over HTTP: under several workers each scrape must show the sum over
all of them, whichever worker answers, and a worker killed and restarted must lose none of them.
The test process never imports prometheus_client (the library chooses its multiprocess mode when
first imported in a process); the text format is read by `scraped` below.
"""

import concurrent.futures
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import shutil
import urllib.error
import urllib.request

import pytest

from conftest import MODULE
from fake_plivo_api import FakePlivoAPI
from test_reliability import post_raw, signed_body
from test_sms_responder import AUTH_ID, AUTH_TOKEN, OUR_NUMBER, inbound

METRICS_TOKEN = "scrape-me-please"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


@pytest.fixture
def env(database_url, tmp_path):
    """The service's settings; its processes count in a folder of the test's own (the default folder,
    in the system's temporary folder, has a test of its own)."""
    return {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
            "METRICS_TOKEN": METRICS_TOKEN, "REPLY_LIMIT": "1000", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "counts")}


def scrape(service, token=METRICS_TOKEN):
    """(status, headers, body) of GET /metrics on a fresh connection (so any worker may answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    answer = connection.getresponse()
    return answer.status, dict(answer.getheaders()), answer.read().decode()


def scraped(service):
    """{(name, labels): value} of one scrape."""
    status, _, body = scrape(service)
    assert status == 200, body
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, labels, value = _SAMPLE.match(line).groups()
            samples[(name, labels or "")] = float(value)
    return samples


def send(service, text, **fields):
    status, body = post_raw(service.url, *signed_body(service.url, inbound(Text=text, **fields)))
    return status


def forged(service):
    body, headers = signed_body(service.url, inbound(Text="forged"))
    headers["X-Plivo-Signature-V3"] = "not-a-signature"
    return post_raw(service.url, body, headers)[0]


class TestEndpoint:
    def test_404_without_metrics_token(self, services, env):
        service = services({**env, "METRICS_TOKEN": ""})
        assert scrape(service)[0] == 404

    @pytest.mark.parametrize("token", [None, "wrong"], ids=["none", "wrong"])
    def test_401_without_the_token(self, services, env, token):
        status, headers, _ = scrape(services(env), token)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"

    def test_prometheus_text_format_with_every_metric(self, services, env):
        service = services(env)
        send(service, "hello")
        status, headers, body = scrape(service)
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")  # what the library writes
        for name, kind in (("sms_webhooks_total", "counter"), ("sms_webhook_duration_seconds", "histogram"),
                           ("sms_outbound_total", "counter"), ("sms_outbox_messages", "gauge"),
                           ("sms_opt_outs", "gauge"), ("sms_rules_reloads_total", "counter"),
                           ("sms_api_requests_total", "counter")):
            family = name.removesuffix("_total")
            assert f"# TYPE {family} {kind}" in body or f"# TYPE {name} {kind}" in body, name
        assert METRICS_TOKEN not in service.log()


    def test_without_prometheus_multiproc_dir_a_deployment_has_a_folder_of_its_own(self, services, env, tmp_path):
        del env["PROMETHEUS_MULTIPROC_DIR"]
        service = services(env, kind="gunicorn", workers=2)
        folder = metrics_folder(service)
        try:
            assert os.path.basename(folder).startswith(f"sms_responder-metrics-{os.getuid()}-")
            for i in range(4):
                send(service, f"hello {i}")
            assert all(scraped(service)[("sms_webhooks_total", '{outcome="replied"}')] == 4 for _ in range(4))
            assert any(name.startswith("counter_") for name in os.listdir(folder))
        finally:
            service.stop()
            shutil.rmtree(folder, ignore_errors=True)


class TestAcrossProcesses:
    def test_every_scrape_shows_the_sum_over_every_worker(self, services, env, backend, figures):
        service = services(env, kind="gunicorn", workers=3)
        folder = metrics_folder(service)
        sent = 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:  # bursts, until two workers or more have counted
            while len(counting_pids(folder)) < 2:
                assert sent < 400, "gunicorn kept every request on one worker"
                assert list(pool.map(lambda i: send(service, f"hello {i}"), range(sent, sent + 10))) == [200] * 10
                sent += 10
            assert list(pool.map(lambda _: forged(service), range(3))) == [403] * 3
        assert [send(service, "STOP", From="14155550777"), send(service, "hi", From="14155550777")] == [200, 200]
        counting = counting_pids(folder)
        assert sum(counting.values()) == sent + 5 and len(counting) >= 2  # each counted only its own share
        for _ in range(12):  # fresh connections: the scrapes land on any of the workers
            samples = scraped(service)
            assert samples[("sms_webhooks_total", '{outcome="replied"}')] == sent
            assert samples[("sms_webhooks_total", '{outcome="stopped"}')] == 1
            assert samples[("sms_webhooks_total", '{outcome="opted_out"}')] == 1
            assert samples[("sms_webhooks_total", '{outcome="rejected"}')] == 3
            assert samples[("sms_webhook_duration_seconds_count", "")] == sent + 5
            assert samples[("sms_opt_outs", "")] == 1
        figures[f"metrics, gunicorn -w 3, {backend}"] = {"webhooks": sent + 5, "scrapes": 12,
                                                         "counting_processes": len(counting)}

    def test_a_worker_killed_and_restarted_loses_none_of_the_counts(self, services, env):
        service = services(env, kind="gunicorn", workers=3)
        for i in range(15):
            send(service, f"before {i}")
        victims = worker_pids(service)
        os.kill(victims[0], signal.SIGKILL)  # gunicorn starts another
        deadline = time.monotonic() + 20
        while (set(worker_pids(service)) & {victims[0]}) or len(worker_pids(service)) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for _ in range(6):
            assert scraped(service)[("sms_webhooks_total", '{outcome="replied"}')] == 15
        for i in range(5):
            send(service, f"after {i}")
        assert scraped(service)[("sms_webhooks_total", '{outcome="replied"}')] == 20

    def test_the_outbox_workers_sends_and_the_apis_requests_are_counted(self, services, env, tmp_path):
        with FakePlivoAPI(AUTH_ID, AUTH_TOKEN) as fake_api:
            fake_api.answers = [500]  # the first send fails and is retried
            sending = {**env, "REPLY_MODE": "api", "PLIVO_AUTH_ID": AUTH_ID, "PLIVO_API_URL": fake_api.url}
            service = services(sending, kind="gunicorn", workers=2)
            token = subprocess.run([sys.executable, str(MODULE), "tokens", "add", "orders"], cwd=tmp_path,
                                   env={"PATH": os.environ["PATH"], **sending}, capture_output=True, text=True,
                                   timeout=60).stdout.strip()
            for i in range(4):
                send(service, f"question {i}")
            assert api_post(service, token, {"to": "14155550123", "text": "Your order is ready."}) == 202
            assert api_post(service, "smsr_wrong", {"to": "14155550123", "text": "x"}) == 401
            assert scraped(service)[("sms_outbox_messages", '{status="queued"}')] == 5
            worker = services(sending, kind="worker")  # another process: it counts in the same folder
            deadline = time.monotonic() + 20
            while scraped(service).get(("sms_outbound_total", '{status="sent"}'), 0) < 5:
                assert time.monotonic() < deadline, worker.log()
                time.sleep(0.2)
            samples = scraped(service)
            assert samples[("sms_outbound_total", '{status="retried"}')] == 1
            assert samples[("sms_outbox_messages", '{status="queued"}')] == 0
            assert samples[("sms_api_requests_total", '{status="202"}')] == 1
            assert samples[("sms_api_requests_total", '{status="401"}')] == 1

    def test_rules_reloads_are_counted_in_every_worker(self, services, env, tmp_path):
        rules = tmp_path / "rules.toml"
        rules.write_text('[[rule]]\nreply = "one"\n')
        service = services({**env, "RULES_FILE": str(rules)}, kind="gunicorn", workers=3,
                           app="sms_responder:create_app()")  # every worker builds its app (and watcher) at start
        time.sleep(1.5)
        rules.write_text('[[rule]]\nreply = "two"\n')
        deadline = time.monotonic() + 10
        while scraped(service).get(("sms_rules_reloads_total", '{result="reloaded"}'), 0) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        rules.write_text('[[rule]]\nreply = "broken\n')
        deadline = time.monotonic() + 10
        while scraped(service).get(("sms_rules_reloads_total", '{result="refused"}'), 0) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def metrics_folder(service):
    """The folder the service's processes count in (the same working directory and DATABASE_URL)."""
    probe = subprocess.run([sys.executable, "-c", "import sms_responder, os;"
                            "from sms_responder_surfaces import metrics;"
                            "s = sms_responder.Settings.from_env(sms_responder.read_environment());"
                            "print(os.environ.get('PROMETHEUS_MULTIPROC_DIR') or metrics.metrics_folder(s))"],
                           cwd=service.cwd, text=True,
                           env={"PATH": os.environ["PATH"], "PYTHONPATH": str(MODULE.parent), **service.env},
                           capture_output=True, timeout=60)
    return probe.stdout.strip()


def counting_pids(folder):
    """{pid: webhooks it counted} of the processes that have counted a webhook, read from their own files
    by a short program (prometheus_client's reader; this process never imports the library)."""
    program = ("import json, os, sys\nfrom prometheus_client.mmap_dict import MmapedDict\ncounts = {}\n"
               "for name in os.listdir(sys.argv[1]):\n"
               "    if name.startswith('counter_'):\n"
               "        values = MmapedDict(os.path.join(sys.argv[1], name), read_mode=True).read_all_values()\n"
               "        counts[name[8:-3]] = sum(value for key, value, _ in values"
               " if json.loads(key)[0] == 'sms_webhooks')\n"
               "print(json.dumps({pid: count for pid, count in counts.items() if count}))\n")
    if not os.path.isdir(folder):
        return {}
    return json.loads(subprocess.run([sys.executable, "-c", program, folder], capture_output=True, text=True,
                                     check=True, timeout=60).stdout)


def worker_pids(service):
    children = subprocess.run(["pgrep", "-P", str(service.process.pid)], capture_output=True, text=True)
    return [int(pid) for pid in children.stdout.split()]


def api_post(service, token, document):
    request = urllib.request.Request(f"{service.url}/api/messages", data=json.dumps(document).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code

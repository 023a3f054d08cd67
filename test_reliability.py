"""Reliability under real processes: races, load, crashes, hostile input, faults, memory.

Run with the rest of the suite (`make test`). These tests start the service as
users do (`python sms_responder.py`, `gunicorn -w 3`) on 127.0.0.1, sign every
request with the official plivo SDK, kill processes mid-stream, and read the
SQLite file directly. The figures they measure are printed at the end of the run.
"""

import concurrent.futures
import gc
import http.client
import itertools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import tracemalloc
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
import webtest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sms_responder
from conftest import query
from test_sms_responder import AUTH_TOKEN, OUR_NUMBER, WEBHOOK_PATH, inbound, sdk_v3_signature, signed, signed_v2

FORM = sms_responder.FORM_CONTENT_TYPE


# -- Helpers -----------------------------------------------------------------

def signed_body(base_url, form, nonce=None):
    """The body and headers of a V3-signed webhook for the service at base_url."""
    nonce = nonce or str(uuid.uuid4().int)[:20]
    signature = sdk_v3_signature(f"{base_url}{WEBHOOK_PATH}", form, nonce)
    headers = {"Content-Type": FORM, "X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
    return urllib.parse.urlencode(form).encode(), headers


def post_raw(base_url, body, headers, timeout=15):
    """POST over a fresh connection, as Plivo does; (status, body)."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", WEBHOOK_PATH, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def reply_text(body):
    """The reply in a Plivo XML answer (None if empty); asserts it is well-formed with one Message at most."""
    root = ET.fromstring(body)
    messages = root.findall("Message")
    assert root.tag == "Response" and len(messages) <= 1, body
    return messages[0].text if messages else None


def wait_until_accepted(port, timeout=10):
    """Wait until the server listening on `port` has accepted every connection made to it: its listening
    socket's accept queue (rx_queue in /proc/net/tcp) is empty. A connection still in the queue when the
    server stops is reset, not served."""
    deadline = time.monotonic() + timeout
    while True:
        sockets = (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        queued = [int(fields[4].split(":")[1], 16) for fields in sockets
                  if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port]  # 0A: listening
        if queued and queued[0] == 0:
            return
        assert time.monotonic() < deadline, f"port {port}: a connection is still waiting to be accepted"
        time.sleep(0.01)


def service_env(tmp_path, **extra):
    return {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'sms.db'}", **extra}


def read_db(path, query, *args):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute(query, args).fetchall()
    connection.close()
    return rows


def unique_sender(i):
    return f"1415{i:07d}"


@pytest.fixture(params=["gunicorn", "stdlib"])
def hosts(request, services, database_url, backend):
    """The service as deployed: on one SQLite file, gunicorn -w 3 (processes) or the threaded stdlib server
    (whose threads share transactions); on PostgreSQL, two hosts sharing the database."""
    env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url}
    if backend == "postgresql":
        return [services(env, kind=request.param, workers=2) for _ in range(2)]
    return [services(env, kind=request.param, workers=3)]


def host_label(hosts):
    return f"{len(hosts)} x {'gunicorn' if 'gunicorn' in hosts[0].argv else 'stdlib'}"


# -- 1. Duplicate race under gunicorn ----------------------------------------

class TestDuplicateRace:
    """Twenty copies at once, spread over every worker and host: one reply."""

    def race(self, requests_):
        """Send all (base_url, body, headers) at the same instant from threads; their (status, body)s."""
        barrier = threading.Barrier(len(requests_))

        def send(request):
            barrier.wait(timeout=30)
            return post_raw(request[0], *request[1:])

        with concurrent.futures.ThreadPoolExecutor(len(requests_)) as pool:
            return list(pool.map(send, requests_))

    def copies(self, hosts, form, count=20):
        """The same message, signed for each host in turn (each host has its own URL)."""
        return [(host.url, *signed_body(host.url, form)) for host in itertools.islice(itertools.cycle(hosts), count)]

    def test_same_message_uuid_twenty_times_gets_one_reply(self, hosts, database_url, backend, figures):
        for round_ in range(5):
            form = inbound(Text=f"race {round_}")
            answers = self.race(self.copies(hosts, form))
            assert [status for status, _ in answers] == [200] * 20
            replies = [reply_text(body) for _, body in answers]
            assert replies.count(f"You said: race {round_}") == 1
            assert replies.count(None) == 19
        assert query(database_url, "SELECT count(*) FROM messages") == [(5,)]
        figures[f"duplicate race, {backend}, {host_label(hosts)}"] = {"rounds": 5, "copies": 100, "replies": 5,
                                                                    "rows": 5}

    def test_twenty_stops_from_one_sender_get_one_confirmation(self, hosts, database_url):
        for round_ in range(5):
            sender = unique_sender(round_)
            stops = [(host.url, *signed_body(host.url, inbound(From=sender, Text="STOP")))
                     for host in itertools.islice(itertools.cycle(hosts), 20)]
            replies = [reply_text(body) for _, body in self.race(stops)]
            assert replies.count(sms_responder.DEFAULT_STOP_TEXT) == 1
            assert replies.count(None) == 19
            assert query(database_url, "SELECT count(*) FROM opt_outs WHERE number = ?", sender) == [(1,)]

    def test_reply_limit_holds_across_hosts(self, services, database_url, backend):
        env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url,
               "REPLY_LIMIT": "3"}
        spread = [services(env, kind="gunicorn", workers=2) for _ in range(1 if backend == "sqlite" else 2)]
        messages = [(host.url, *signed_body(host.url, inbound(Text=f"m{i}")))
                    for i, host in zip(range(20), itertools.cycle(spread), strict=False)]
        replies = [reply_text(body) for _, body in self.race(messages)]
        assert sum(reply is not None for reply in replies) == 3


# -- 2. Load ----------------------------------------------------------------

def test_two_thousand_messages_over_eight_threads(hosts, database_url, backend, figures):
    forms = [inbound(From=unique_sender(i), Text=f"load {i}") for i in range(2000)]
    targets = [hosts[i % len(hosts)].url for i in range(2000)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda url, form: post_raw(url, *signed_body(url, form)), targets, forms))
    elapsed = time.monotonic() - started
    assert [status for status, _ in answers] == [200] * 2000
    replies = [reply_text(body) for _, body in answers]
    assert replies == [f"You said: load {i}" for i in range(2000)]
    assert query(database_url, "SELECT count(*), count(reply) FROM messages") == [(2000, 2000)]
    for host in hosts:
        host.stop()
        assert "database is locked" not in host.log()
        assert "Traceback" not in host.log()
    figures[f"load, {backend}, {host_label(hosts)}"] = {
        "sent": 2000, "acknowledged": 2000, "stored": 2000, "replied": 2000, "seconds": round(elapsed, 1),
        "per_second": round(2000 / elapsed)}


# -- 3. Crash and graceful shutdown ------------------------------------------

@pytest.mark.parametrize("kind", ["gunicorn", "stdlib"])
def test_kill_9_mid_stream_loses_nothing_and_answers_nothing_twice(services, database_url, backend, figures, kind):
    env = {"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, "DATABASE_URL": database_url}
    service = services(env, kind=kind, workers=3)
    requests_ = [signed_body(service.url, inbound(From=unique_sender(i), Text=f"crash {i}")) for i in range(600)]
    first_answers = [None] * len(requests_)
    acknowledged = threading.Semaphore(0)

    def send(index):
        try:
            first_answers[index] = post_raw(service.url, *requests_[index], timeout=5)
            acknowledged.release()
        except (OSError, http.client.HTTPException):
            first_answers[index] = None  # refused, reset, cut off or timed out: not acknowledged

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(send, i) for i in range(len(requests_))]
        for _ in range(200):  # kill once 200 answers are in, with more in flight
            assert acknowledged.acquire(timeout=60)
        service.stop(signal.SIGKILL)
        concurrent.futures.wait(futures, timeout=120)

    acked = [i for i, answer in enumerate(first_answers) if answer and answer[0] == 200]
    unacked = [i for i, answer in enumerate(first_answers) if not answer or answer[0] != 200]
    # The kill can cut an answer after its status line: an HTTP/1.0 "200 OK" with no body. That
    # message was committed before the answer started; only its reply was lost.
    cut = [i for i in acked if not first_answers[i][1]]
    assert len(acked) >= 200 and unacked, "the kill must fall mid-stream"
    stored_before = {uuid_ for (uuid_,) in query(database_url, "SELECT message_uuid FROM messages")}

    service.start()  # same port, same database
    second_answers = [post_raw(service.url, *request) for request in requests_]
    assert all(status == 200 for status, _ in second_answers)
    uuids = [urllib.parse.parse_qs(body.decode())["MessageUUID"][0] for body, _ in requests_]
    for i in acked:  # stored before the kill, so now a duplicate: no second reply
        assert uuids[i] in stored_before
        assert reply_text(second_answers[i][1]) is None
    in_doubt = len(cut)
    for i in unacked:
        if uuids[i] in stored_before:  # committed, but the kill took the answer: Plivo's retry is a duplicate
            in_doubt += 1
            assert reply_text(second_answers[i][1]) is None
        else:
            assert reply_text(second_answers[i][1]) == f"You said: crash {i}"
    rows = query(database_url, "SELECT count(*), count(DISTINCT message_uuid) FROM messages")
    assert rows == [(600, 600)]
    if backend == "sqlite":
        assert query(database_url, "PRAGMA integrity_check") == [("ok",)]
    replies_sent = sum(1 for i in acked if i not in cut and reply_text(first_answers[i][1])) + sum(
        1 for _, body in second_answers if reply_text(body))
    assert replies_sent + in_doubt == 600  # every message answered once, or committed with its answer lost
    figures[f"kill -9 {kind}, {backend}"] = {
        "sent": 600, "acknowledged_before_kill": len(acked), "unacknowledged": len(unacked),
        "committed_answer_lost": in_doubt, "stored": 600, "lost": 0, "duplicated_replies": 0, "replies": replies_sent}


def test_sigterm_lets_a_request_in_flight_finish(services, tmp_path):
    service = services(service_env(tmp_path))
    body, headers = signed_body(service.url, inbound(Text="in flight"))
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as client:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        client.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n{head}"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        wait_until_accepted(service.port)  # in flight: taken from the listen queue, not waiting in it
        os.killpg(service.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while True:  # the listening socket closes within serve_forever's poll interval
            try:
                socket.create_connection(("127.0.0.1", service.port), timeout=2).close()
            except (ConnectionRefusedError, ConnectionResetError):  # reset: the listening socket closed under it
                break
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.1)
        client.sendall(body[10:])
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 200 OK")
    assert b"You said: in flight" in answer
    assert service.process.wait(timeout=15) == 0


# -- 4. Hostile input ---------------------------------------------------------

FIELD_NAMES = st.one_of(st.sampled_from(["From", "To", "Text", "MessageUUID", "Type", "Body", "MessageIntent",
                                         "Media0", "Media1", "MediaCount", "from", "TEXT", ""]), st.text(max_size=20))
FIELD_VALUES = st.one_of(st.text(max_size=40), st.text(max_size=3000),
                         st.text(st.characters(max_codepoint=0x9f), max_size=40),  # control characters
                         st.sampled_from(["STOP", " stop! ", "HELP", "optout", "mms", "\x00", "\r\nX-Injected: 1",
                                          "</Message><Message>", "{text}", "%ZZ", "+14155550100", "a" * 1700]))
MESSAGE_FIELDS = {"From", "To", "MessageUUID", "Text", "Type", "Body", "MessageIntent"}
fresh_sender = st.uuids().map(lambda u: str(u.int)[:11])  # a new sender each time: one STOP silences only itself
hostile_sender = st.one_of(st.text(min_size=1, max_size=20), st.builds("{}\x01{}".format, fresh_sender, fresh_sender))
senders = st.integers(0, 4).flatmap(lambda n: hostile_sender if n == 0 else fresh_sender)  # 1 in 5 hostile

# Mostly valid messages whose values are hostile (they reach the reply and the XML), some arbitrary pairs.
valid_messages = st.builds(
    lambda sender, text, kind, extra: [*inbound(From=sender, **({"Text": text} if kind == "sms" else
                                                                  {"Type": "mms", "Text": None, "Body": text})).items(),
                                       *extra],
    senders, FIELD_VALUES, st.sampled_from(["sms", "mms"]),
    st.lists(st.tuples(FIELD_NAMES.filter(lambda name: name not in MESSAGE_FIELDS), FIELD_VALUES), max_size=4))
arbitrary_pairs = st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=8)


def encode_form(pairs, style):
    """A form body in one of the encodings a client may use."""
    if style == "plus":
        return urllib.parse.urlencode(pairs).encode()
    if style == "percent":
        return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote).encode()
    if style == "lowercase":
        return urllib.parse.urlencode(pairs).encode().replace(b"%C3", b"%c3").replace(b"%E2", b"%e2")
    # raw UTF-8: only the characters the form syntax needs are escaped
    return "&".join(f"{urllib.parse.quote(k, safe=NON_ASCII)}={urllib.parse.quote(v, safe=NON_ASCII)}"
                    for k, v in pairs).encode()


NON_ASCII = "".join(chr(c) for c in range(0x80, 0x800))

hostile_forms = st.tuples(st.integers(0, 3).flatmap(lambda n: arbitrary_pairs if n == 0 else valid_messages),
                          st.sampled_from(["plus", "percent", "lowercase", "raw"]))  # 1 in 4 arbitrary

proxy_headers = st.sampled_from([{}, {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sms.example.com"},
                                 {"X-Forwarded-Host": "sms.example.com:443"}, {"X-Forwarded-Proto": "https, http"}])

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


def db_snapshot(db):
    """What a forged request must not change: the messages and opt-outs stored."""
    db.commit()  # on PostgreSQL, a fresh snapshot each time
    messages = sorted(row[0] for row in db.execute("SELECT message_uuid FROM messages").fetchall())
    return len(messages), db.execute("SELECT count(*) FROM opt_outs").fetchone()[0], messages


def url_for(proxy):
    """The URL the app rebuilds for a webtest request with these proxy headers."""
    scheme = proxy.get("X-Forwarded-Proto", "http").split(",")[0].strip()
    host = proxy.get("X-Forwarded-Host", "localhost:80")
    return f"{scheme}://{host}{WEBHOOK_PATH}"


# Module-level functions, not methods: Hypothesis wants one executor per test, and each backend's
# parametrization would get its own class instance.

@pytest.fixture
def app(make_app):
    return make_app(reply_limit=1000000)


@pytest.fixture
def fuzz_client(app):
    return webtest.TestApp(app)


@FUZZ
@given(form=hostile_forms, proxy=proxy_headers, header=st.sampled_from(["X-Plivo-Signature-V3",
                                                                         "X-Plivo-Signature-Ma-V3"]))
def test_signed_request_never_gets_500(fuzz_client, db, figures, form, proxy, header):
    pairs, style = form
    body = encode_form(pairs, style)
    params = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)  # what Plivo would have signed
    headers = {**proxy, **signed(params, url=url_for(proxy), header=header)}
    before = db_snapshot(db)[0]
    response = fuzz_client.post(WEBHOOK_PATH, body, headers=headers, content_type=FORM, status="*")
    assert response.status_int in (200, 400, 413), response.text
    if response.status_int == 200:
        reply_text(response.body)
        assert db_snapshot(db)[0] in (before, before + 1)  # stored once, or a duplicate
    else:
        assert db_snapshot(db)[0] == before
    fuzz = figures.setdefault("fuzz", {"signed_examples": 0, "signed_answered_200": 0, "forged_examples": 0})
    fuzz["signed_examples"] += 1
    fuzz["signed_answered_200"] += response.status_int == 200


@FUZZ
@given(form=hostile_forms, forgery=st.sampled_from(["none", "garbage", "other body", "other token", "other url",
                                                    "v2 other token", "no nonce", "bytes"]),
       content_type=st.sampled_from([FORM, FORM + "; charset=utf-8", "text/plain", "application/json", ""]))
def test_unsigned_or_mis_signed_request_never_changes_the_database(fuzz_client, db, figures, form, forgery,
                                                                    content_type):
    pairs, style = form
    body = encode_form(pairs, style)
    params = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
    headers = {
        "none": {},
        "garbage": {"X-Plivo-Signature-V3": "AAAA,=,", "X-Plivo-Signature-V3-Nonce": "1"},
        "other body": signed({**params, "Text": ["something else"]}),
        "other token": signed(params, token="not-the-token"),
        "other url": signed(params, url="https://elsewhere.example/webhooks/plivo/messaging"),
        "v2 other token": signed_v2(token="not-the-token"),
        "no nonce": {"X-Plivo-Signature-V3": signed(params)["X-Plivo-Signature-V3"]},
        "bytes": {"X-Plivo-Signature-V3": "\u00ff\u00fe", "X-Plivo-Signature-V3-Nonce": "\u00e9"},
    }[forgery]
    assume(not (forgery == "other body" and params.get("Text") == ["something else"]))
    before = db_snapshot(db)
    response = fuzz_client.post(WEBHOOK_PATH, body, headers=headers, content_type=content_type or None,
                                status="*")
    assert response.status_int in (403, 413, 415)
    assert db_snapshot(db) == before
    figures.setdefault("fuzz", {"signed_examples": 0, "signed_answered_200": 0, "forged_examples": 0})[
        "forged_examples"] += 1




@pytest.fixture(params=["stdlib", "gunicorn"])
def running(request, services, tmp_path):
    """The service under each host, with a 64 KiB body limit."""
    return services(service_env(tmp_path), kind=request.param, workers=2)


class TestHostileRequestsOverHttp:
    def test_ten_megabytes_with_content_length_is_413(self, running):
        answer = requests.post(f"{running.url}{WEBHOOK_PATH}", data=b"Text=" + b"x" * 10_000_000,
                               headers={"Content-Type": FORM}, timeout=30)
        assert answer.status_code == 413

    def test_ten_megabytes_chunked_is_refused(self, running):
        def chunks():
            yield b"Text="
            for _ in range(160):
                yield b"x" * 65536

        answer = requests.post(f"{running.url}{WEBHOOK_PATH}", data=chunks(), headers={"Content-Type": FORM},
                               timeout=30)
        # gunicorn de-chunks and the app stops reading at the limit; wsgiref cannot de-chunk, so it asks for a length.
        assert answer.status_code == (413 if "gunicorn" in running.argv else 411)

    def test_chunked_signed_message_under_gunicorn(self, services, tmp_path):
        service = services(service_env(tmp_path), kind="gunicorn", workers=2)
        body, headers = signed_body(service.url, inbound(Text="chunked"))
        answer = requests.post(f"{service.url}{WEBHOOK_PATH}", data=iter([body[:17], body[17:]]), headers=headers,
                               timeout=30)
        assert answer.status_code == 200 and reply_text(answer.content) == "You said: chunked"

    @pytest.mark.parametrize("text,expected", [
        ("line\r\nX-Injected: yes\r\n\r\n<Response>", "line\r\nX-Injected: yes\r\n\r\n<Response>"),
        ("</Message><Message src=\"1\" dst=\"2\">second", "</Message><Message src=\"1\" dst=\"2\">second"),
        ("nul\x00byte", "nulbyte"),
        ("é" * 1700, "é" * 1590),
    ], ids=["header injection", "element injection", "NUL", "1700 characters"])
    def test_text_cannot_break_the_answer(self, running, text, expected):
        status, body = post_raw(running.url, *signed_body(running.url, inbound(Text=text)))
        assert status == 200
        assert reply_text(body) == f"You said: {expected}"

    def test_lone_surrogate_is_400(self, running, tmp_path):
        form = urllib.parse.urlencode(inbound(Text=None)).encode() + b"&Text=%ED%A0%80"
        headers = {"Content-Type": FORM, **signed_v2(url=f"{running.url}{WEBHOOK_PATH}")}
        assert post_raw(running.url, form, headers)[0] == 400
        assert read_db(tmp_path / "sms.db", "SELECT count(*) FROM messages") == [(0,)]

    def test_to_in_another_format(self, running):
        status, body = post_raw(running.url, *signed_body(running.url, inbound(To="+1 415-555-0100")))
        assert status == 200
        assert ET.fromstring(body).find("Message").get("src") == "+1 415-555-0100"

    def test_slow_clients_do_not_hold_up_others(self, services, tmp_path):
        service = services(service_env(tmp_path))  # the threaded stdlib server
        slow = []
        try:
            for _ in range(20):
                client = socket.create_connection(("127.0.0.1", service.port), timeout=10)
                client.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n".encode())
                slow.append(client)  # headers never finished, body never sent
            started = time.monotonic()
            status, body = post_raw(service.url, *signed_body(service.url, inbound(Text="not stuck")), timeout=10)
            assert status == 200 and reply_text(body) == "You said: not stuck"
            assert time.monotonic() - started < 5
        finally:
            for client in slow:
                client.close()


# -- 5. Faults: the database's disk turns read-only, vanishes, fills up --------

def mount_tmpfs(path, size):
    """A small real filesystem for the database, or skip where this machine cannot mount one."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (CI runs as root)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "2m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def make_read_only(path, read_only):
    """chmod for a normal user; root ignores file modes, so for root the immutable flag (ext4, xfs, ...)."""
    if os.geteuid() != 0:
        path.chmod(0o444 if read_only else 0o644)
        return
    result = subprocess.run(["chattr", "+i" if read_only else "-i", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot make a file read-only for root here: {result.stderr.decode().strip()}")


def health(service):
    try:
        return requests.get(f"{service.url}/health", timeout=10).status_code
    except requests.RequestException:
        return None


class TestFaults:
    def serve_on(self, services, folder):
        folder.mkdir(exist_ok=True)
        return services({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
                         "DATABASE_URL": f"sqlite:///{folder / 'sms.db'}"})

    def send(self, service, text):
        return post_raw(service.url, *signed_body(service.url, inbound(Text=text)))

    def refused_while_faulty(self, service, why):
        """/health 503, a webhook 500 (so Plivo retries), a log line saying why; the refused request."""
        assert health(service) == 503
        pending = signed_body(service.url, inbound(Text="during"))
        assert post_raw(service.url, *pending)[0] == 500
        assert why in service.log()
        return pending

    def test_read_only_file(self, services, tmp_path):
        service = self.serve_on(services, tmp_path / "data")
        database = tmp_path / "data" / "sms.db"
        assert self.send(service, "before")[0] == 200
        make_read_only(database, True)
        try:
            pending = self.refused_while_faulty(service, "read-only")
        finally:
            make_read_only(database, False)
        assert health(service) == 200
        status, body = post_raw(service.url, *pending)  # Plivo's retry
        assert status == 200 and reply_text(body) == "You said: during"

    def test_folder_removed_and_put_back(self, services, tmp_path):
        folder = tmp_path / "data"
        service = self.serve_on(services, folder)
        assert self.send(service, "before")[0] == 200
        folder.rename(tmp_path / "elsewhere")
        try:
            pending = self.refused_while_faulty(service, "disappeared")
        finally:
            (tmp_path / "elsewhere").rename(folder)
        assert health(service) == 200
        assert post_raw(service.url, *pending)[0] == 200
        assert read_db(folder / "sms.db", "SELECT count(*) FROM messages") == [(2,)]

    def test_file_restored_from_a_copy(self, services, tmp_path):
        folder = tmp_path / "data"
        service = self.serve_on(services, folder)
        assert self.send(service, "before")[0] == 200
        backup = tmp_path / "backup.db"
        with sqlite3.connect(folder / "sms.db") as source, sqlite3.connect(backup) as target:
            source.backup(target)
        source.close(), target.close()
        shutil.rmtree(folder)
        assert health(service) == 503
        folder.mkdir()
        shutil.copy(backup, folder / "sms.db")  # a new file (new inode) where the old one was
        assert health(service) == 200
        assert self.send(service, "after")[0] == 200
        assert read_db(folder / "sms.db", "SELECT count(*) FROM messages") == [(2,)]

    def test_disk_full(self, services, small_disk, figures):
        service = self.serve_on(services, small_disk / "data")
        assert self.send(service, "before")[0] == 200
        filler = small_disk / "filler"
        with open(filler, "wb", buffering=0) as out:  # fill the disk to the last byte
            try:
                while True:
                    out.write(b"\0" * 4096)
            except OSError:
                pass
        requests_ = [signed_body(service.url, inbound(From=unique_sender(i), Text="x" * 1500)) for i in range(40)]
        first = [post_raw(service.url, *request)[0] for request in requests_]
        assert 500 in first, "the full disk must be felt"
        assert "database unavailable" in service.log() and "full" in service.log()
        assert "Traceback" not in service.log()
        filler.unlink()
        second = [post_raw(service.url, *request) for request in requests_]  # Plivo's retries
        assert all(status == 200 for status, _ in second)
        for status_first, (_, body) in zip(first, second, strict=True):
            # acknowledged while full: stored then, so a duplicate now; refused: processed now
            assert (reply_text(body) is None) == (status_first == 200)
        database = small_disk / "data" / "sms.db"
        assert read_db(database, "SELECT count(*) FROM messages") == [(41,)]
        assert read_db(database, "PRAGMA integrity_check") == [("ok",)]
        figures["disk full"] = {"sent": 40, "acknowledged_while_full": first.count(200),
                                "refused_with_500": first.count(500), "stored_after_retries": 40, "lost": 0}


# -- 6. Memory ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.sqlite_only  # the module's code is the same on both; 10,000 round trips to PostgreSQL only add time
def test_ten_thousand_senders_leave_no_state_behind(make_app, figures):
    """The reply limit is counted from the database: memory does not grow with the number of senders.

    Bounded caches (urllib.parse's, the pools) fill during the first 5,000 senders; anything kept per
    sender would keep growing through the next 5,000 (a dict entry per sender is about 100 bytes).
    """
    client = webtest.TestApp(make_app(sqlite_synchronous="normal"), lint=False)

    def send_from(first, last):
        for i in range(first, last):
            form = inbound(From=unique_sender(i))
            client.post(WEBHOOK_PATH, form, headers=signed(form), status=200)

    def snapshot():
        gc.collect()  # garbage not yet collected (cycles left by this or an earlier test) is not growth
        return tracemalloc.take_snapshot()

    send_from(0, 500)  # warm up
    tracemalloc.start()
    try:
        start = snapshot()
        send_from(500, 5500)
        middle = snapshot()
        send_from(5500, 10500)
        end = snapshot()
    finally:
        tracemalloc.stop()

    def growth(before, after, only=None):
        return sum(stat.size_diff for stat in after.compare_to(before, "filename")
                   if only is None or stat.traceback[0].filename == only)

    grew = sorted(end.compare_to(middle, "filename"), key=lambda stat: -stat.size_diff)[:5]
    assert growth(middle, end) < 64 * 1024, [str(stat) for stat in grew]
    assert growth(middle, end, only=sms_responder.__file__) < 32 * 1024
    figures["memory, 10,000 senders"] = {"first_5000_bytes": growth(start, middle),
                                         "next_5000_bytes": growth(middle, end),
                                         "next_5000_in_module_bytes": growth(middle, end, only=sms_responder.__file__)}

"""Tests for sms_responder: one class per step of the webhook (README: What the webhook does).

Run with `make test` (or `.venv/bin/python -m pytest`; `-n 0` in one process). Requests are signed with
the official plivo SDK; every app writes a real SQLite file under tmp_path.
"""

import base64
import concurrent.futures
import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st
from plivo import plivoxml
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3, validate_v3_signature

import sms_responder
from conftest import connect
from sms_responder import ConfigError, Settings, create_app

AUTH_TOKEN = "test-auth-token"
AUTH_ID = "MAFAKEAUTHID00000001"  # the fake Plivo API's account (fake_plivo_api)
OUR_NUMBER = "14155550100"
OTHER_NUMBER = "14155550199"
SENDER = "14155550123"
WEBHOOK_PATH = sms_responder.WEBHOOK_PATH
# webtest sends Host: localhost:80, so this is the URL the app rebuilds and checks.
WEBHOOK_URL = f"http://localhost:80{WEBHOOK_PATH}"
MODULE = Path(sms_responder.__file__)


# -- Helpers -----------------------------------------------------------------

def inbound(**fields):
    """A valid SMS webhook form as Plivo sends it, fresh MessageUUID; a None value drops the field."""
    form = {
        "From": SENDER, "To": OUR_NUMBER, "Text": "hello", "Type": "sms",
        "MessageUUID": str(uuid.uuid4()), "Units": "1", "TotalRate": "0.00000",
        "TotalAmount": "0.00000", "MessageIntent": "", "PowerpackUUID": "",
    }
    form.update(fields)
    return {name: value for name, value in form.items() if value is not None}


def sdk_v3_signature(url, form, nonce, token=AUTH_TOKEN):
    """V3 signature from the SDK's own string-to-sign and HMAC, checked by the SDK's own validator."""
    signature = get_signature_v3(token.encode(), construct_post_url(url, dict(form)).decode(), nonce).decode()
    assert validate_v3_signature("POST", url, nonce, token, signature, dict(form))
    return signature


def v2_signature(url, nonce, token=AUTH_TOKEN):
    """V2 signature (the SDK only validates V2, so compute it and let the SDK's validator confirm it)."""
    signature = base64.b64encode(hmac.new(token.encode(), (url + nonce).encode(), hashlib.sha256).digest()).decode()
    assert validate_signature(url, nonce, signature, token)
    return signature


def signed(form, url=WEBHOOK_URL, token=AUTH_TOKEN, nonce=None, header="X-Plivo-Signature-V3"):
    """Headers with a V3 signature of the form, as Plivo would send them."""
    nonce = nonce or str(uuid.uuid4().int)[:20]
    return {header: sdk_v3_signature(url, form, nonce, token), "X-Plivo-Signature-V3-Nonce": nonce}


def signed_v2(url=WEBHOOK_URL, nonce=None, token=AUTH_TOKEN):
    nonce = nonce or str(uuid.uuid4().int)[:20]
    return {"X-Plivo-Signature-V2": v2_signature(url, nonce, token), "X-Plivo-Signature-V2-Nonce": nonce}


def reply_of(response):
    """The text of the one <Message> in a Plivo XML answer, or None for an empty <Response>."""
    root = ET.fromstring(response.body)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    return messages[0].text if messages else None


def call_wsgi(app, environ):
    """Call the app directly (for environs webtest cannot build), under wsgiref's compliance validator."""
    environ = {"SCRIPT_NAME": "", "QUERY_STRING": "", **environ}
    setup_testing_defaults(environ)
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, dict(headers)

    result = validator(app)(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    return captured["status"], captured["headers"], body


# -- Fixtures ----------------------------------------------------------------

@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return webtest.TestApp(app)  # lint=True: every request is also a WSGI compliance check


def post(client, form, headers=None, status=200, **kwargs):
    """POST a form to the webhook, signed with V3 unless headers are given."""
    return client.post(WEBHOOK_PATH, form, headers=signed(form) if headers is None else headers,
                       status=status, **kwargs)


def count(db, table="messages"):
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- Routes ------------------------------------------------------------------

class TestHealth:
    def test_ok_when_database_answers(self, client):
        response = client.get("/health", status=200)
        assert response.content_type == "application/json"
        assert response.json == {"status": "ok"}

    def test_head_has_no_body(self, client):
        response = client.head("/health", status=200)
        assert response.body == b""

    @pytest.mark.sqlite_only
    def test_503_when_database_file_is_gone_and_200_when_it_is_back(self, client, database):
        client.get("/health", status=200)
        database.rename(database.with_suffix(".moved"))
        response = client.get("/health", status=503)
        assert response.json["status"] == "error"
        database.with_suffix(".moved").rename(database)
        client.get("/health", status=200)


class TestRouting:
    def test_unknown_path_is_404(self, client):
        client.get("/nope", status=404)

    @pytest.mark.parametrize("method,path,allow", [
        ("get", WEBHOOK_PATH, "POST"),
        ("post", "/health", "GET, HEAD"),
    ], ids=["GET webhook", "POST health"])
    def test_other_method_is_405_with_allow(self, client, method, path, allow):
        response = getattr(client, method)(path, status=405)
        assert response.headers["Allow"] == allow


# -- The messaging webhook, step by step ------------------------------------

class TestBodyLimits:
    """Step 1: 413 for a large body, 415 for another content type."""

    def test_body_over_limit_by_content_length_is_413(self, make_app, db):
        client = webtest.TestApp(make_app(max_body_bytes=1000))
        form = inbound(Text="x" * 2000)
        post(client, form, status=413)
        assert count(db) == 0

    def test_body_within_limit_is_accepted(self, make_app):
        client = webtest.TestApp(make_app(max_body_bytes=1000))
        post(client, inbound(Text="x" * 500), status=200)

    def test_declared_large_body_is_refused_without_reading_it(self, app, db):
        class Unreadable(io.RawIOBase):
            def read(self, size=-1):
                raise AssertionError("a body declared too large must not be read")

        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": WEBHOOK_PATH, "CONTENT_TYPE": sms_responder.FORM_CONTENT_TYPE,
                   "CONTENT_LENGTH": "10000000", "wsgi.input": Unreadable()}
        status, _, _ = call_wsgi(app, environ)
        assert status.startswith("413")

    def test_body_over_limit_while_reading_is_413(self, app, db):
        body = b"Text=" + b"x" * 70000
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": WEBHOOK_PATH, "CONTENT_TYPE": sms_responder.FORM_CONTENT_TYPE,
                   "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True}  # no CONTENT_LENGTH: chunked
        status, _, _ = call_wsgi(app, environ)
        assert status.startswith("413")
        assert count(db) == 0

    def test_chunked_body_without_a_dechunking_host_is_411(self, app):
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": WEBHOOK_PATH, "CONTENT_TYPE": sms_responder.FORM_CONTENT_TYPE,
                   "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b"5\r\nText=\r\n0\r\n\r\n")}
        status, _, _ = call_wsgi(app, environ)
        assert status.startswith("411")

    @pytest.mark.parametrize("content_type", ["application/json", "text/plain", "multipart/form-data; boundary=x"])
    def test_other_content_type_is_415(self, client, db, content_type):
        form = inbound()
        client.post(WEBHOOK_PATH, json.dumps(form), headers=signed(form), content_type=content_type, status=415)
        assert count(db) == 0

    def test_content_type_parameters_are_accepted(self, client):
        form = inbound()
        body = urllib.parse.urlencode(form)
        client.post(WEBHOOK_PATH, body, headers=signed(form),
                    content_type="application/x-www-form-urlencoded; charset=utf-8", status=200)


class TestSignature:
    """Step 2: V3 and V2 signatures, over the URL Plivo called."""

    def test_v3_signed_by_the_sdk_is_accepted(self, client):
        assert reply_of(post(client, inbound(Text="hi"))) == "You said: hi"

    def test_ma_v3_header_is_accepted(self, client):
        form = inbound()
        post(client, form, headers=signed(form, header="X-Plivo-Signature-Ma-V3"), status=200)

    def test_non_ascii_text_is_accepted(self, client):
        form = inbound(Text="नमस्ते café 😀")
        assert reply_of(post(client, form)) == "You said: नमस्ते café 😀"

    def test_blank_fields_are_part_of_the_signature(self, client):
        form = inbound(MessageIntent="", PowerpackUUID="")
        headers = signed({k: v for k, v in form.items() if v})  # signed without the blank fields
        post(client, form, headers=headers, status=403)

    def test_wrong_token_is_403_and_stores_nothing(self, client, db):
        form = inbound()
        post(client, form, headers=signed(form, token="another-token"), status=403)
        assert count(db) == 0

    def test_tampered_body_is_403(self, client, db):
        form = inbound(Text="hello")
        headers = signed(form)
        post(client, {**form, "Text": "STOP"}, headers=headers, status=403)
        assert count(db) == 0

    def test_missing_signature_is_403(self, client):
        post(client, inbound(), headers={}, status=403)

    def test_missing_nonce_is_403(self, client):
        form = inbound()
        headers = signed(form)
        del headers["X-Plivo-Signature-V3-Nonce"]
        post(client, form, headers=headers, status=403)

    def test_any_of_several_comma_separated_signatures_passes(self, client):
        form = inbound()
        headers = signed(form)
        headers["X-Plivo-Signature-V3"] = f"bm90IHRoaXMgb25l, {headers['X-Plivo-Signature-V3']}"
        post(client, form, headers=headers, status=200)

    def test_several_signatures_none_valid_is_403(self, client):
        form = inbound()
        headers = signed(form, token="old")
        headers["X-Plivo-Signature-V3"] += "," + signed(form, token="older")["X-Plivo-Signature-V3"]
        post(client, form, headers=headers, status=403)

    def test_query_string_is_signed(self, client):
        form = inbound()
        client.post(f"{WEBHOOK_PATH}?account=a%20b", form, headers=signed(form, url=f"{WEBHOOK_URL}?account=a%20b"),
                    status=200)
        other = inbound()
        client.post(f"{WEBHOOK_PATH}?account=other", other, headers=signed(other, url=f"{WEBHOOK_URL}?account=a%20b"),
                    status=403)

    def test_default_port_may_be_absent_from_the_signed_url(self, client):
        form = inbound()
        post(client, form, headers=signed(form, url=f"http://localhost{WEBHOOK_PATH}"), status=200)

    def test_default_port_may_be_present_in_the_signed_url(self, client):
        form = inbound()
        headers = {"Host": "example.com", **signed(form, url=f"http://example.com:80{WEBHOOK_PATH}")}
        client.post(WEBHOOK_PATH, form, headers=headers, status=200)

    def test_other_port_is_not_a_variant(self, client):
        form = inbound()
        post(client, form, headers=signed(form, url=f"http://localhost:8080{WEBHOOK_PATH}"), status=403)

    def test_forwarded_proto_and_host_are_used(self, client):
        form = inbound()
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "abc.ngrok-free.app",
                   **signed(form, url=f"https://abc.ngrok-free.app{WEBHOOK_PATH}")}
        post(client, form, headers=headers, status=200)

    def test_first_of_several_forwarded_values_is_used(self, client):
        form = inbound()
        headers = {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "public.example, internal:8000",
                   **signed(form, url=f"https://public.example{WEBHOOK_PATH}")}
        post(client, form, headers=headers, status=200)

    def test_public_url_wins_over_request_headers(self, make_app):
        client = webtest.TestApp(make_app(public_url="https://sms.example.com/"))
        form = inbound()
        post(client, form, headers=signed(form, url=f"https://sms.example.com{WEBHOOK_PATH}"), status=200)
        form = inbound()
        post(client, form, headers=signed(form), status=403)  # the URL the request itself shows

    def test_403_logs_the_url_that_was_checked(self, make_app, logs):
        client = webtest.TestApp(make_app(public_url="https://sms.example.com"))
        post(client, inbound(), headers={}, status=403)
        assert f"url=https://sms.example.com{WEBHOOK_PATH}" in logs()

    @pytest.mark.parametrize("query", ["a=\xe9\xff", "shop=caf%C3%A9", "x=%FF"], ids=["raw bytes", "UTF-8", "not UTF-8"])
    def test_a_query_the_sdk_cannot_sign_is_403_not_500(self, app, query):
        form = inbound()
        body = urllib.parse.urlencode(form).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": WEBHOOK_PATH, "QUERY_STRING": query,
                   "CONTENT_TYPE": sms_responder.FORM_CONTENT_TYPE, "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), **{f"HTTP_{name.upper().replace('-', '_')}": value
                                                      for name, value in signed(form).items()}}
        assert call_wsgi(app, environ)[0].startswith("403")

    def test_v2_is_accepted_by_default(self, client):
        post(client, inbound(), headers=signed_v2(), status=200)

    def test_v2_does_not_sign_the_query(self, client):
        client.post(f"{WEBHOOK_PATH}?tenant=a", inbound(), headers=signed_v2(url=WEBHOOK_URL), status=200)

    def test_ma_v2_header_is_accepted(self, client):
        headers = signed_v2()
        headers["X-Plivo-Signature-Ma-V2"] = headers.pop("X-Plivo-Signature-V2")
        post(client, inbound(), headers=headers, status=200)

    def test_v2_wrong_token_is_403(self, client):
        post(client, inbound(), headers=signed_v2(token="another-token"), status=403)

    def test_v2_nonce_with_another_message_uuid_is_403_and_stores_nothing(self, client, db):
        headers = signed_v2(nonce="12345678901234567890")
        post(client, inbound(Text="first"), headers=headers, status=200)
        post(client, inbound(Text="STOP"), headers=headers, status=403)
        assert count(db) == 1
        assert count(db, "opt_outs") == 0

    def test_v2_nonce_with_the_same_message_uuid_is_a_duplicate(self, client):
        headers = signed_v2()
        form = inbound()
        post(client, form, headers=headers, status=200)
        assert reply_of(post(client, form, headers=headers, status=200)) is None

    def test_v2_headers_of_a_v3_signed_message_cannot_be_replayed(self, client, db):
        form = inbound(Text="hello")
        v2 = signed_v2()
        post(client, form, headers={**signed(form), **v2}, status=200)  # accepted on V3
        post(client, inbound(Text="STOP"), headers=v2, status=403)      # its V2 headers, another message
        assert count(db, "opt_outs") == 0

    def test_v2_rejected_when_only_v3_is_accepted(self, make_app):
        client = webtest.TestApp(make_app(signature_versions="v3"))
        post(client, inbound(), headers=signed_v2(), status=403)
        form = inbound()
        post(client, form, status=200)

    def test_v3_rejected_when_only_v2_is_accepted(self, make_app):
        client = webtest.TestApp(make_app(signature_versions="v2"))
        post(client, inbound(), status=403)

    def test_validation_off_accepts_unsigned_requests_and_warns(self, make_app, capsys):
        client = webtest.TestApp(make_app(validate_signature=False))
        assert "VALIDATE_SIGNATURE=false" in capsys.readouterr().err
        post(client, inbound(), headers={}, status=200)

    def test_published_v3_vectors(self):
        """Plivo's own V3 test vectors (plivo-go utils_test.go; PLIVO.md 2.3) through our check."""
        token = b"Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
        uuid_ = "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"
        params = {"Direction": "outbound", "From": "19792014278", "ALegUUID": uuid_, "ALegRequestUUID": uuid_,
                  "CallUUID": uuid_, "RequestUUID": uuid_, "CallStatus": "in-progress", "BillRate": "0.002",
                  "ParentAuthID": "MANWVLYTK4ZWU1YTY4QA",
                  "To": "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
                  "SIP-H-To": "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
                  "SessionStart": "2020-04-08 11:34:33.238707", "Event": "StartApp"}
        url = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml"
        environ = {"HTTP_X_PLIVO_SIGNATURE_V3": "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=",
                   "HTTP_X_PLIVO_SIGNATURE_V3_NONCE": "31627761595286130198"}
        form = {name: [value] for name, value in params.items()}
        assert sms_responder.signature_is_valid(sms_responder.V3_HEADERS, environ, url, form, token)
        environ["HTTP_X_PLIVO_SIGNATURE_V3"] = "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="
        assert sms_responder.signature_is_valid(sms_responder.V3_HEADERS, environ, url + "/?a=b&c=d", form, token)
        assert not sms_responder.signature_is_valid(sms_responder.V3_HEADERS, environ, url, form, token)

    def test_published_v2_vector(self):
        """plivo-python's V2 test vector (tests/resources/test_signature.py; PLIVO.md 2.8)."""
        environ = {"HTTP_X_PLIVO_SIGNATURE_V2": "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=",
                   "HTTP_X_PLIVO_SIGNATURE_V2_NONCE": "12345"}
        assert sms_responder.signature_is_valid(sms_responder.V2_HEADERS, environ, "https://answer.url",
                                                None, b"my_auth_token")
        environ["HTTP_X_PLIVO_SIGNATURE_V2_NONCE"] = "12346"
        assert not sms_responder.signature_is_valid(sms_responder.V2_HEADERS, environ, "https://answer.url",
                                                    None, b"my_auth_token")


class TestFormParsing:
    """Step 3: a body that is not UTF-8 form data is 400."""

    @pytest.mark.parametrize("text", [b"\xff\xfe", b"%FF%FE", b"%ED%A0%80", b"caf%C3"],
                             ids=["raw bytes", "percent escape", "encoded surrogate", "truncated sequence"])
    def test_invalid_utf8_is_400(self, make_app, db, text):
        client = webtest.TestApp(make_app(validate_signature=False))
        valid = urllib.parse.urlencode(inbound(Text=None)).encode()
        client.post(WEBHOOK_PATH, valid + b"&Text=" + text, content_type=sms_responder.FORM_CONTENT_TYPE, status=400)
        client.post(WEBHOOK_PATH, valid + b"&Text=fine", content_type=sms_responder.FORM_CONTENT_TYPE, status=200)
        assert count(db) == 1

    def test_invalid_utf8_with_a_valid_v2_signature_is_400(self, client):
        # V2 signs only the URL, so the check passes and the body itself is judged.
        client.post(WEBHOOK_PATH, b"Text=%FF", headers=signed_v2(), content_type=sms_responder.FORM_CONTENT_TYPE,
                    status=400)

    def test_invalid_utf8_without_a_signature_is_403(self, client):
        client.post(WEBHOOK_PATH, b"Text=%FF", content_type=sms_responder.FORM_CONTENT_TYPE, status=403)


class TestRequiredFields:
    """Step 4: From, To, MessageUUID and (for SMS) Text are required; To must be ours."""

    @pytest.mark.parametrize("field", ["From", "To", "MessageUUID", "Text"])
    def test_missing_field_is_400_naming_it(self, client, db, field):
        response = post(client, inbound(**{field: None}), status=400)
        assert field in response.text
        assert count(db) == 0

    @pytest.mark.parametrize("field", ["From", "To", "MessageUUID"])
    def test_empty_field_is_400(self, client, field):
        assert field in post(client, inbound(**{field: ""}), status=400).text

    def test_empty_text_is_a_message(self, client):
        post(client, inbound(Text=""), status=200)

    def test_to_not_our_number_is_400(self, client, db):
        post(client, inbound(To=OTHER_NUMBER), status=400)
        assert count(db) == 0

    @pytest.mark.parametrize("to", ["+14155550100", "+1 415 555 0100", "1 (415) 555-0100"])
    def test_to_in_another_format_is_ours(self, client, to):
        response = post(client, inbound(To=to))
        assert ET.fromstring(response.body).find("Message").get("src") == to

    def test_any_of_several_numbers(self, make_app):
        client = webtest.TestApp(make_app(plivo_number=f"+{OUR_NUMBER}, {OTHER_NUMBER}"))
        post(client, inbound(To=OTHER_NUMBER), status=200)
        post(client, inbound(To=OUR_NUMBER), status=200)

    def test_field_given_twice_is_400(self, client):
        body = urllib.parse.urlencode([*inbound().items(), ("Text", "again")])
        form = urllib.parse.parse_qs(body, keep_blank_values=True)
        client.post(WEBHOOK_PATH, body, headers=signed(form), content_type=sms_responder.FORM_CONTENT_TYPE, status=400)

    @pytest.mark.parametrize("sender", ["1415\n5550123", "\x00", "1" * 200], ids=["newline", "NUL", "too long"])
    def test_unusable_sender_is_400(self, client, sender):
        post(client, inbound(From=sender), status=400)

    def test_mms_text_is_in_body_and_may_be_absent(self, client, db):
        form = inbound(Type="mms", Text=None, MediaCount="2", Media0="https://media.example/0.jpg",
                       Media1="https://media.example/1.jpg")
        post(client, form, status=200)
        row = db.execute("SELECT text, type, media_urls FROM messages").fetchone()
        assert (row["text"], row["type"]) == ("", "mms")
        assert json.loads(row["media_urls"]) == ["https://media.example/0.jpg", "https://media.example/1.jpg"]

    def test_mms_media_in_index_order_from_any_start(self, client, db):
        form = inbound(Type="mms", Body="look", Media10="https://m/10", Media2="https://m/2", Media1="https://m/1")
        assert reply_of(post(client, form)) == "You said: look"
        assert json.loads(db.execute("SELECT media_urls FROM messages").fetchone()[0]) == [
            "https://m/1", "https://m/2", "https://m/10"]


class TestDedupe:
    """Step 5: a MessageUUID already stored gets an empty Response and changes nothing."""

    def test_repeat_gets_empty_response_and_one_row(self, client, db):
        form = inbound()
        assert reply_of(post(client, form)) == "You said: hello"
        assert reply_of(post(client, form)) is None
        assert count(db) == 1

    def test_repeat_with_a_fresh_nonce_is_still_a_duplicate(self, client, db):
        form = inbound()
        post(client, form, headers=signed(form, nonce="1"))
        assert reply_of(post(client, form, headers=signed(form, nonce="2"))) is None

    def test_repeat_changes_no_state(self, client, db):
        stop = inbound(Text="STOP")
        post(client, stop)
        post(client, inbound(Text="START"))
        assert reply_of(post(client, stop)) is None
        assert count(db, "opt_outs") == 0

    def test_dedupe_holds_across_app_instances(self, make_app, db):
        form = inbound()
        first, second = webtest.TestApp(make_app()), webtest.TestApp(make_app())
        assert reply_of(post(first, form)) is not None
        assert reply_of(post(second, form)) is None


class TestStorage:
    """Step 6: what is stored, and the reply XML."""

    def test_message_is_stored_with_the_reply(self, client, db):
        form = inbound(Text="hi there", From="+14155550123")
        post(client, form)
        row = dict(db.execute("SELECT * FROM messages").fetchone())
        assert row["message_uuid"] == form["MessageUUID"]
        assert (row["from_number"], row["to_number"], row["text"], row["type"]) == (
            "+14155550123", OUR_NUMBER, "hi there", "sms")
        assert row["reply"] == "You said: hi there"
        assert row["outcome"] == "replied"
        received = row["received_at"]  # ISO 8601 text in SQLite, timestamptz in PostgreSQL
        if isinstance(received, str):
            received = sms_responder.datetime.fromisoformat(received)
        assert abs(received.timestamp() - time.time()) < 60

    def test_reply_goes_from_the_receiving_number_to_the_sender_as_sent(self, client):
        response = post(client, inbound(From="+14155550123", To="+14155550100"))
        assert response.content_type == "application/xml"
        assert response.body == (b'<Response><Message src="+14155550100" dst="+14155550123" type="sms">'
                                 b"You said: hello</Message></Response>")

    def test_no_reply_is_stored_as_null(self, client, db):
        post(client, inbound(Text="STOP"))
        post(client, inbound(Text="hello"))
        assert db.execute("SELECT reply FROM messages WHERE outcome = 'opted_out'").fetchone()[0] is None

    @pytest.mark.sqlite_only
    def test_schema_is_versioned_and_in_wal_mode(self, db):
        assert db.execute("PRAGMA user_version").fetchone()[0] == sms_responder.SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    @pytest.mark.sqlite_only
    def test_older_file_is_migrated_in_place(self, database, make_app):
        with sqlite3.connect(database) as old:
            old.execute("CREATE TABLE my_notes (x)")  # a version-0 file that already holds something
        client = webtest.TestApp(make_app())
        post(client, inbound())
        with sqlite3.connect(database) as migrated:
            assert migrated.execute("PRAGMA user_version").fetchone()[0] == sms_responder.SCHEMA_VERSION
            assert migrated.execute("SELECT count(*) FROM my_notes").fetchone()[0] == 0
        migrated.close()

    @pytest.mark.sqlite_only
    def test_newer_schema_is_refused_with_a_clear_error(self, database, make_app, logs):
        connection = sqlite3.connect(database)
        connection.execute(f"PRAGMA user_version = {sms_responder.SCHEMA_VERSION + 1}")
        connection.close()
        client = webtest.TestApp(make_app())
        post(client, inbound(), status=500)
        assert "schema version" in logs()

    @pytest.mark.sqlite_only
    @pytest.mark.parametrize("synchronous,expected", [("full", 2), ("normal", 1)])
    def test_sqlite_synchronous_is_applied(self, make_app, synchronous, expected):
        app = make_app(sqlite_synchronous=synchronous)
        with app.store.transaction() as tx:
            assert tx.connection.execute("PRAGMA synchronous").fetchone()[0] == expected


@pytest.mark.sqlite_only
class TestGroupCommit:
    """SQLite's GroupCommit: concurrent webhooks share transactions; each keeps its own outcome."""

    def run_together(self, store, works):
        """Run the works from threads, the first holding its batch open until all others have queued."""
        release = threading.Event()
        first, *others = works

        def held(tx):
            release.wait(timeout=30)
            return first(tx)

        with concurrent.futures.ThreadPoolExecutor(len(works)) as pool:
            futures = [pool.submit(store.run, held)]
            deadline = time.monotonic() + 30
            while not store._group_commit._leading:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            futures += [pool.submit(store.run, work) for work in others]
            while len(store._group_commit._queue) < len(others):  # all queued behind the held batch
                assert time.monotonic() < deadline
                time.sleep(0.001)
            release.set()
            return [future.exception() or future.result() for future in futures]

    def insert(self, name, fail=False):
        def work(tx):
            tx.execute("INSERT INTO messages (message_uuid, from_number, to_number, text, type, media_urls,"
                       " received_at) VALUES (?, '1', '2', '', 'sms', '[]', '')", (name,))
            if fail:
                raise RuntimeError(f"{name} failed")
            return name
        return work

    def test_queued_work_shares_one_commit(self, app, db, monkeypatch):
        store, transactions = app.store, []
        real = store.transaction
        monkeypatch.setattr(store, "transaction", lambda: transactions.append(1) or real())
        app.store.ping()
        transactions.clear()
        results = self.run_together(store, [self.insert(f"m{i}") for i in range(10)])
        assert results == [f"m{i}" for i in range(10)]
        assert len(transactions) == 2  # the held batch of one, then the nine that queued behind it
        assert count(db) == 10

    def test_a_failing_job_undoes_only_its_own_work(self, app, db):
        app.store.ping()
        works = [self.insert("held"), self.insert("a"), self.insert("b", fail=True), self.insert("c")]
        results = self.run_together(app.store, works)
        assert results[:2] == ["held", "a"] and str(results[2]) == "b failed" and results[3] == "c"
        assert sorted(row[0] for row in db.execute("SELECT message_uuid FROM messages")) == ["a", "c", "held"]

    def test_a_failed_commit_fails_every_job_of_the_batch(self, app, db, monkeypatch):
        app.store.ping()
        store = app.store
        real = store.transaction
        calls = []

        @contextlib.contextmanager
        def failing_second():
            calls.append(1)
            with real() as tx:
                yield tx
                if len(calls) == 2:
                    raise sms_responder.StoreUnavailable("disk gone")  # after the jobs, before COMMIT

        monkeypatch.setattr(store, "transaction", failing_second)
        results = self.run_together(store, [self.insert(f"m{i}") for i in range(4)])
        assert results[0] == "m0"
        assert all(isinstance(result, sms_responder.StoreUnavailable) for result in results[1:])
        assert [row[0] for row in db.execute("SELECT message_uuid FROM messages")] == ["m0"]


class TestKeywords:
    """Step 7: STOP, START and HELP families, opt-outs, MessageIntent, our own numbers."""

    @pytest.mark.parametrize("text", [
        "STOP", "stop", " Stop! ", "STOPALL", "stop all", "Stop  All", "UNSUBSCRIBE", "Unsubscribe.", "unsub",
        "CANCEL", "end", "Quit", "REVOKE", "optout", "opt out", "OPT OUT!!", "stop\n",
    ])
    def test_opt_out_family(self, client, db, text):
        assert reply_of(post(client, inbound(Text=text))) == sms_responder.DEFAULT_STOP_TEXT
        assert count(db, "opt_outs") == 1

    @pytest.mark.parametrize("text", ["START", "yes", "Unstop", "resume."])
    def test_opt_in_family(self, client, db, text):
        post(client, inbound(Text="STOP"))
        assert reply_of(post(client, inbound(Text=text))) == sms_responder.DEFAULT_START_TEXT
        assert count(db, "opt_outs") == 0

    @pytest.mark.parametrize("text", ["HELP", "info", "Help?"])
    def test_help_family(self, client, text):
        assert reply_of(post(client, inbound(Text=text))) == sms_responder.DEFAULT_HELP_TEXT

    @pytest.mark.parametrize("text", ["stop it", "please stop texting me", "STOP STOP", "stopp", "help me"])
    def test_not_a_keyword(self, make_app, database_url, text):
        """Step 7 alone (OPT_OUT_MATCH=exact): only the whole words; test_consent.py reads the others."""
        client = webtest.TestApp(make_app(opt_out_match="exact"))
        assert reply_of(post(client, inbound(Text=text))) == f"You said: {text}"
        with contextlib.closing(connect(database_url)) as db:
            assert count(db, "opt_outs") == 0

    def test_opt_out_is_recorded_as_sent(self, client, db):
        post(client, inbound(Text="STOP", From="+14155550123"))
        row = db.execute("SELECT number, to_number FROM opt_outs").fetchone()
        assert tuple(row) == ("+14155550123", OUR_NUMBER)

    def test_opted_out_sender_gets_nothing_but_is_stored(self, client, db):
        post(client, inbound(Text="STOP"))
        assert reply_of(post(client, inbound(Text="hello?"))) is None
        assert count(db) == 2

    def test_second_stop_gets_an_empty_response(self, client):
        post(client, inbound(Text="STOP"))
        assert reply_of(post(client, inbound(Text="stop"))) is None

    def test_opted_out_sender_still_gets_help(self, client):
        post(client, inbound(Text="STOP"))
        assert reply_of(post(client, inbound(Text="HELP"))) == sms_responder.DEFAULT_HELP_TEXT

    def test_opt_out_is_per_receiving_number(self, make_app):
        client = webtest.TestApp(make_app(plivo_number=[OUR_NUMBER, OTHER_NUMBER]))
        post(client, inbound(Text="STOP", To=OUR_NUMBER))
        assert reply_of(post(client, inbound(To=OTHER_NUMBER))) == "You said: hello"
        assert reply_of(post(client, inbound(To=OUR_NUMBER))) is None

    def test_opt_out_matches_the_sender_with_or_without_plus(self, client):
        post(client, inbound(Text="STOP", From="+14155550123"))
        assert reply_of(post(client, inbound(From="14155550123"))) is None

    def test_opt_out_survives_a_restart(self, make_app):
        post(webtest.TestApp(make_app()), inbound(Text="STOP"))
        assert reply_of(post(webtest.TestApp(make_app()), inbound())) is None

    def test_start_resumes_replies(self, client):
        post(client, inbound(Text="STOP"))
        post(client, inbound(Text="START"))
        assert reply_of(post(client, inbound())) == "You said: hello"

    @pytest.mark.parametrize("intent,text,opted_out", [
        ("optout", "STOP", 1), ("help", "HELP", 0), ("optin", "START", 0)])
    def test_plivo_intent_is_recorded_without_a_second_answer(self, client, db, intent, text, opted_out):
        assert reply_of(post(client, inbound(Text=text, MessageIntent=intent))) is None
        assert count(db, "opt_outs") == opted_out

    def test_plivo_optin_intent_removes_the_opt_out(self, client, db):
        post(client, inbound(Text="STOP"))
        post(client, inbound(Text="UNSTOP", MessageIntent="optin"))
        assert count(db, "opt_outs") == 0

    def test_no_auto_reply_to_our_own_number(self, make_app):
        client = webtest.TestApp(make_app(plivo_number=[OUR_NUMBER, OTHER_NUMBER]))
        assert reply_of(post(client, inbound(From=f"+{OTHER_NUMBER}"))) is None

    def test_configured_texts_are_used(self, make_app):
        client = webtest.TestApp(make_app(help_text="Acme: help@acme.example", stop_text="Bye", start_text="Hi again"))
        assert reply_of(post(client, inbound(Text="HELP"))) == "Acme: help@acme.example"
        assert reply_of(post(client, inbound(Text="STOP"))) == "Bye"
        assert reply_of(post(client, inbound(Text="START"))) == "Hi again"


class TestReplyLimit:
    """Step 8: at most REPLY_LIMIT auto-replies per sender per REPLY_WINDOW, counted from the database."""

    def test_over_the_limit_is_stored_with_an_empty_response(self, make_app, db, logs):
        client = webtest.TestApp(make_app(reply_limit=2))
        replies = [reply_of(post(client, inbound(Text=f"m{i}"))) for i in range(3)]
        assert replies == ["You said: m0", "You said: m1", None]
        assert count(db) == 3
        assert "outcome=rate_limited" in logs()

    def test_help_counts_towards_the_limit(self, make_app):
        client = webtest.TestApp(make_app(reply_limit=1))
        post(client, inbound(Text="HELP"))
        assert reply_of(post(client, inbound())) is None

    def test_stop_and_start_are_always_confirmed(self, make_app):
        client = webtest.TestApp(make_app(reply_limit=1))
        post(client, inbound())
        assert reply_of(post(client, inbound(Text="STOP"))) == sms_responder.DEFAULT_STOP_TEXT
        assert reply_of(post(client, inbound(Text="START"))) == sms_responder.DEFAULT_START_TEXT

    def test_limit_is_per_sender(self, make_app):
        client = webtest.TestApp(make_app(reply_limit=1))
        post(client, inbound())
        assert reply_of(post(client, inbound(From="14155550999"))) == "You said: hello"

    def test_replies_older_than_the_window_do_not_count(self, make_app, db):
        client = webtest.TestApp(make_app(reply_limit=1, reply_window=60))
        post(client, inbound())
        with db:
            db.execute("UPDATE messages SET received_at = ?", (sms_responder.iso_time(time.time() - 61),))
        assert reply_of(post(client, inbound())) == "You said: hello"

    def test_limit_is_shared_by_app_instances_on_one_database(self, make_app):
        first, second = webtest.TestApp(make_app(reply_limit=1)), webtest.TestApp(make_app(reply_limit=1))
        post(first, inbound())
        assert reply_of(post(second, inbound())) is None

    def test_zero_means_no_auto_replies_but_keywords_still_work(self, make_app):
        client = webtest.TestApp(make_app(reply_limit=0))
        assert reply_of(post(client, inbound())) is None
        assert reply_of(post(client, inbound(Text="STOP"))) == sms_responder.DEFAULT_STOP_TEXT


class TestReplyText:
    """Step 9: placeholders, XML-safe characters, 1600 characters at most; never a 500."""

    def test_placeholders_are_filled(self, make_app):
        client = webtest.TestApp(make_app(reply_text="{from} wrote {text!r} to {to} {{literal}}"))
        assert reply_of(post(client, inbound(Text="hi"))) == f"{SENDER} wrote 'hi' to {OUR_NUMBER} {{literal}}"

    def test_braces_in_the_text_are_not_placeholders(self, client):
        text = "{to} {0} {text.__class__}"
        assert reply_of(post(client, inbound(Text=text))) == f"You said: {text}"

    @pytest.mark.parametrize("text,expected", [
        ("a\x00b", "ab"), ("bell\x07", "bell"), ("tab\tok", "tab\tok"), ("\ufffe\uffff!", "!"),
        ("</Message><Message src='1' dst='2'>pwned", "</Message><Message src='1' dst='2'>pwned"),
        ("]]><!-- & \"quotes\"", "]]><!-- & \"quotes\""),
    ], ids=["NUL", "bell", "tab kept", "non-characters", "element injection", "markup"])
    def test_xml_stays_well_formed_with_one_message(self, client, text, expected):
        assert reply_of(post(client, inbound(Text=text))) == f"You said: {expected}"

    def test_xml_safe_removes_exactly_what_xml_1_0_cannot_carry(self):
        everything = "".join(map(chr, range(0x110000)))
        kept = sms_responder.xml_safe(everything)
        allowed = [c for c in everything if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd"
                   or c >= "\U00010000"]  # the Char production of XML 1.0
        assert kept == "".join(allowed)
        built = sms_responder.reply_xml("1", [("2", kept)])  # lxml, the SDK's builder, accepts all of it
        assert ET.fromstring(built).find("Message").text == kept  # lxml writes CR as &#13;, so it survives

    def test_long_reply_is_cut_to_1600_characters(self, client, db):
        reply = reply_of(post(client, inbound(Text="x" * 1700)))
        assert len(reply) == 1600
        assert tuple(db.execute("SELECT length(text), length(reply) FROM messages").fetchone()) == (1700, 1600)

    def test_reply_made_only_of_unsafe_characters_sends_nothing(self, make_app):
        client = webtest.TestApp(make_app(reply_text="{text}"))
        assert reply_of(post(client, inbound(Text="\x00\x01"))) is None


# What the hot path computes without the plivo SDK or urllib's parser, held equal to them.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # any code point but lone surrogates
FIELD_NAMES = st.one_of(st.sampled_from(["From", "To", "Text", "MessageUUID", "Type", "Media0", "PowerpackUUID"]),
                        TEXT)
FORMS = st.dictionaries(FIELD_NAMES, st.lists(TEXT, min_size=1, max_size=3), max_size=8)
QUERIES = st.lists(st.tuples(TEXT, TEXT), max_size=3).map(lambda pairs: urllib.parse.urlencode(pairs))
URLS = st.builds(lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else ""),
                 st.sampled_from(["http", "https"]), st.sampled_from(["localhost", "sms.example.com", "[::1]"]),
                 st.sampled_from(["", ":80", ":443", ":8080"]), st.sampled_from(["/", "/webhooks/plivo/messaging",
                                                                                   "/a%20b/%C3%BC"]),
                 QUERIES)


class TestSameAsTheReferences:
    """The form parser, the string to sign and the XML writer, each against what it replaces."""

    @settings(max_examples=400, deadline=None)
    @given(st.one_of(st.binary(max_size=200), FORMS.map(
        lambda form: urllib.parse.urlencode([(k, v) for k, vs in form.items() for v in vs]).encode()),
        st.lists(st.sampled_from(["a", "=", "&", "+", "%", "%4", "%41", "%C3%A9", "%FF", "é", "%ZZ", ""]),
                 max_size=20).map(lambda parts: "".join(parts).encode())))
    def test_the_form_parser_is_parse_qs(self, body):
        try:
            expected = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            expected = None
        assert sms_responder.parse_form(body) == expected

    @settings(max_examples=400, deadline=None)
    @given(URLS, FORMS, st.text("0123456789", min_size=1, max_size=20), st.sampled_from([AUTH_TOKEN, "tökén"]))
    def test_the_v3_signature_is_the_sdks(self, url, form, nonce, token):
        try:
            expected = get_signature_v3(token.encode(), construct_post_url(url, {k: list(v) for k, v in form.items()})
                                        .decode(), nonce)
        except UnicodeError:  # the SDK cannot sign a query with non-ASCII bytes; the service answers 403 (below)
            with pytest.raises(UnicodeError):
                sms_responder.v3_signature(token.encode(), url, form, nonce)
            return
        assert sms_responder.v3_signature(token.encode(), url, form, nonce) == expected

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=20),
           st.lists(st.tuples(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), min_size=1,
                                      max_size=20), TEXT), min_size=1, max_size=3))
    def test_the_xml_is_plivoxmls(self, src, messages):
        messages = [(dst, sms_responder.clean_reply(text)) for dst, text in messages]
        messages = [(dst, text) for dst, text in messages if text]
        if messages:
            assert sms_responder.reply_xml(src, messages) == self.sdk_xml(src, messages)

    def test_the_xml_is_plivoxmls_for_every_code_point(self):
        code_points = [*range(0xD800), *range(0xE000, 0x110000)]
        for start in range(0, len(code_points), 2000):  # a text of 2,000 code points at a time
            text = sms_responder.clean_reply("".join(map(chr, code_points[start:start + 2000])))
            src = "".join(character for character in text if character.isprintable())[:64] or "1"
            assert sms_responder.reply_xml(src, [(src, text)]) == self.sdk_xml(src, [(src, text)]), hex(start)

    @staticmethod
    def sdk_xml(src, messages):
        response = plivoxml.ResponseElement()
        for dst, text in messages:
            response.add_message(content=text, src=src, dst=dst, type="sms")
        return response.to_string(pretty=False).encode("utf-8")

    @settings(max_examples=2000, deadline=None)
    @given(st.one_of(st.floats(1.5e9, 4e9), st.integers(1_500_000_000_000_000, 4_000_000_000_000_000).map(
        lambda microseconds: microseconds / 1e6)))
    def test_stored_times_are_isoformats(self, timestamp):
        expected = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")
        assert sms_responder.iso_time(timestamp) == expected


class TestUnexpectedFailure:
    """Step 10: 500, a generic body, the traceback in the log, nothing kept, the retry processed afresh."""

    def test_failure_rolls_back_and_the_retry_succeeds(self, make_app, db, logs):
        failures = [RuntimeError("boom")]

        def flaky(message):
            if failures:
                raise failures.pop()
            return "fine now"

        client = webtest.TestApp(make_app(reply=flaky))
        form = inbound()
        response = post(client, form, status=500)
        assert "boom" not in response.text
        assert "Traceback" in logs() and "RuntimeError: boom" in logs()
        assert count(db) == 0
        assert reply_of(post(client, form)) == "fine now"

    @pytest.mark.sqlite_only
    def test_database_gone_is_500_so_plivo_retries(self, client, database, logs):
        post(client, inbound())
        database.unlink()
        post(client, inbound(), status=500)
        assert "disappeared" in logs()


class TestLogging:
    def test_one_info_line_per_webhook(self, client, logs):
        form = inbound(Text="secret words")
        post(client, form)
        lines = [line for line in logs().splitlines() if " webhook " in line]
        assert len(lines) == 1
        assert "INFO webhook outcome=replied" in lines[0]
        assert f"message_uuid={form['MessageUUID']}" in lines[0]
        assert "sender=***0123" in lines[0] and SENDER not in lines[0]
        assert " ms=" in lines[0]
        assert "secret words" not in logs()

    def test_rejections_are_logged(self, client, logs):
        post(client, inbound(To=OTHER_NUMBER), status=400)
        assert 'outcome=rejected status=400 reason="To is not one of PLIVO_NUMBER"' in logs()

    def test_text_only_at_debug(self, make_app, logs):
        client = webtest.TestApp(make_app(log_level="DEBUG"))
        post(client, inbound(Text="secret words"))
        assert "secret words" in logs()

    def test_token_is_never_logged(self, make_app, capsys):
        client = webtest.TestApp(make_app(log_level="DEBUG", reply=lambda message: f"{1 / (message.text == 'ok')}"))
        post(client, inbound(Text="ok"))
        post(client, inbound(), headers={}, status=403)
        post(client, inbound(Text="divide by zero"), status=500)
        assert AUTH_TOKEN not in capsys.readouterr().err
        assert AUTH_TOKEN not in repr(client.app.settings)

    def test_json_format_is_one_object_per_line(self, make_app, capsys):
        client = webtest.TestApp(make_app(log_format="json"))
        form = inbound()
        post(client, form)
        lines = capsys.readouterr().err.splitlines()
        entries = [json.loads(line) for line in lines]
        webhook = [entry for entry in entries if entry["message"] == "webhook"]
        assert webhook[0]["outcome"] == "replied" and webhook[0]["message_uuid"] == form["MessageUUID"]

    def test_control_characters_are_escaped(self, client, logs):
        post(client, inbound(), headers={"X-Forwarded-Host": "evil\x1b[2J\x07"}, status=403)
        line = [line for line in logs().splitlines() if "status=403" in line][0]
        assert "evil\\x1b[2J\\x07" in line and "\x1b" not in line


    @pytest.mark.parametrize("formatter", [sms_responder.TextFormatter, sms_responder.JsonFormatter])
    def test_the_webhooks_own_line_is_what_logging_writes(self, formatter, monkeypatch):
        # write_line skips logging's record for speed; it must write the very line logging would
        fields = {"outcome": "replied", "sender": "***0123", "reason": 'a "quoted" = value', "empty": "",
                  "text": "line\nbreak \x1b[2J \u2028"}
        monkeypatch.setattr(time, "time", lambda: 1765000000.25)
        logger = logging.getLogger("sms_responder")
        monkeypatch.setattr(logger, "propagate", False)
        monkeypatch.setattr(logger, "level", logger.level)  # restored after
        logger.setLevel(logging.INFO)  # also clears isEnabledFor's cache
        lines = {}
        for path in ["direct", "through logging"]:
            stream = io.StringIO()
            handler = logging.StreamHandler(stream)
            handler.setFormatter(formatter())
            monkeypatch.setattr(logger, "handlers", [handler])
            if path == "direct":
                with monkeypatch.context() as no_records:  # proves the line did not go through logging
                    no_records.setattr(logger, "makeRecord", None)
                    sms_responder.write_line(logging.INFO, "webhook", fields)
            else:
                logger.info("webhook", extra={"fields": fields})
            lines[path] = stream.getvalue()
        assert lines["direct"] == lines["through logging"]
        assert lines["direct"].count("\n") == 1 and "\x1b" not in lines["direct"]

    def test_a_handler_of_another_kind_gets_the_record_through_logging(self, client):
        class Kept(logging.Handler):
            def __init__(self):
                super().__init__()
                self.records = []

            def emit(self, record):
                self.records.append(record)

        kept = Kept()
        logger = logging.getLogger("sms_responder")
        logger.addHandler(kept)
        try:
            form = inbound()
            post(client, form)
        finally:
            logger.removeHandler(kept)
        webhook = [record for record in kept.records if record.getMessage() == "webhook"]
        assert len(webhook) == 1
        assert webhook[0].levelno == logging.INFO and webhook[0].fields["message_uuid"] == form["MessageUUID"]


class TestSettings:
    def test_missing_required_settings_are_named(self):
        with pytest.raises(ConfigError) as error:
            Settings.from_env({})
        assert [problem.split(" ")[0] for problem in error.value.problems] == ["PLIVO_AUTH_TOKEN", "PLIVO_NUMBER"]

    @pytest.mark.parametrize("name,value", [
        ("PLIVO_NUMBER", "call-me"), ("PORT", "http"), ("PORT", "70000"), ("DATABASE_URL", "sqlite://"),
        ("DATABASE_URL", "sqlite:///no/such/folder/x.db"), ("DATABASE_URL", ":memory:"),
        ("DATABASE_URL", "postgresql://u:secret@/sms"), ("SQLITE_SYNCHRONOUS", "off"),
        ("PUBLIC_URL", "abc.ngrok-free.app"), ("PUBLIC_URL", "https://x.example/?a=1"),
        ("VALIDATE_SIGNATURE", "maybe"), ("SIGNATURE_VERSIONS", "v1"), ("REPLY_TEXT", "Hi {name}"),
        ("REPLY_TEXT", "Hi {text.upper}"), ("REPLY_TEXT", "Hi {"), ("REPLY_TEXT", "{text:d}"),
        ("REPLY_LIMIT", "-1"), ("REPLY_WINDOW", "0"), ("MAX_BODY_BYTES", "lots"), ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
    ])
    def test_invalid_setting_is_named(self, name, value):
        with pytest.raises(ConfigError) as error:
            Settings.from_env({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER, name: value})
        assert len(error.value.problems) == 1
        assert error.value.problems[0].startswith(f"{name}: ")
        assert "secret" not in str(error.value)

    def test_defaults(self):
        settings = Settings.from_env({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": "+1 415 555 0100"})
        assert settings.plivo_number == (OUR_NUMBER,)
        assert (settings.host, settings.port, settings.database_url) == ("127.0.0.1", 3000, "sqlite:///sms_responder.db")
        assert (settings.sqlite_synchronous, settings.validate_signature) == ("full", True)
        assert settings.signature_versions == {"v3", "v2"}
        assert (settings.reply_limit, settings.reply_window, settings.max_body_bytes) == (10, 60, 65536)

    @pytest.mark.parametrize("url,path", [
        ("sqlite:///relative/sms.db", "relative/sms.db"), ("sqlite:////abs/sms.db", "/abs/sms.db"),
        ("plain/sms.db", "plain/sms.db")])
    def test_database_url_forms(self, url, path):
        assert sms_responder.sqlite_path(url) == path

    def test_env_file_is_read_and_the_environment_wins(self, tmp_path, monkeypatch):
        (tmp_path / ".env").write_text(
            "# comment\nPLIVO_AUTH_TOKEN='from-file'\nexport PLIVO_NUMBER=14155550100 # ours\nPORT=4000\n")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("PORT", "5000")
        environ = sms_responder.read_environment()
        assert (environ["PLIVO_AUTH_TOKEN"], environ["PLIVO_NUMBER"], environ["PORT"]) == (
            "from-file", "14155550100", "5000")

    def test_placeholder_token_warns(self, make_app, capsys):
        make_app(plivo_auth_token=sms_responder.PLACEHOLDER_AUTH_TOKEN)
        assert "placeholder" in capsys.readouterr().err

    def test_env_example_is_usable_as_is_and_lists_every_setting(self):
        example = sms_responder.read_dotenv(MODULE.parent / ".env.example")
        settings = Settings.from_env(example)
        assert settings.plivo_auth_token == sms_responder.PLACEHOLDER_AUTH_TOKEN
        text = (MODULE.parent / ".env.example").read_text()
        readme = (MODULE.parent / "README.md").read_text()
        for field in sms_responder.dataclasses.fields(Settings):
            assert f"{field.name.upper()}=" in text
            assert f"`{field.name.upper()}`" in readme

    def test_unknown_override_is_a_type_error(self):
        with pytest.raises(TypeError):
            create_app({}, plivo_auth_token=AUTH_TOKEN, plivo_number=OUR_NUMBER, colour="blue")

    def test_import_needs_no_settings_and_builds_lazily(self, tmp_path):
        result = subprocess.run([sys.executable, "-c", "import sms_responder; print(sms_responder._app)"],
                                cwd=tmp_path, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(MODULE.parent)},
                                capture_output=True, text=True, timeout=60)
        assert result.stdout.strip() == "None" and result.stderr == ""
        assert list(tmp_path.iterdir()) == []


# -- Command line: the real server over real HTTP ----------------------------

def run_cli(*args, env, cwd):
    return subprocess.run([sys.executable, str(MODULE), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def cli_env(tmp_path):
    return {"PATH": os.environ["PATH"], "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}


@pytest.fixture
def server(services, cli_env):
    """`python sms_responder.py` on a free port, with the cli_env settings."""
    service = services(cli_env)
    cli_env["PORT"] = str(service.port)  # so that `send` finds it by default
    return service


class TestCommandLine:
    def test_missing_settings_exit_2_with_one_line_each(self, tmp_path):
        result = run_cli(env={"PATH": os.environ["PATH"]}, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            "sms_responder: PLIVO_AUTH_TOKEN is required: the Auth Token from the Plivo console",
            "sms_responder: PLIVO_NUMBER is required: the Plivo number(s) this service answers for, e.g. 14155550100"]

    def test_invalid_setting_exits_2_without_traceback(self, cli_env, tmp_path):
        result = run_cli(env={**cli_env, "REPLY_TEXT": "{oops}"}, cwd=tmp_path)
        assert result.returncode == 2
        assert "REPLY_TEXT" in result.stderr and "Traceback" not in result.stderr

    def test_port_in_use_is_one_line_and_exit_1(self, server, cli_env, tmp_path):
        result = run_cli("--port", str(server.port), env=cli_env, cwd=tmp_path)
        assert result.returncode == 1
        assert "cannot start" in result.stderr and "Traceback" not in result.stderr

    def test_send_gets_a_reply_then_stop_then_silence(self, server, cli_env, tmp_path):
        hello = run_cli("send", "hello", env=cli_env, cwd=tmp_path)
        assert hello.returncode == 0, hello.stderr
        assert hello.stdout.splitlines() == ["200 OK", f'<Response><Message src="{OUR_NUMBER}" dst="14155550123"'
                                                       ' type="sms">You said: hello</Message></Response>']
        stop = run_cli("send", "STOP", env=cli_env, cwd=tmp_path)
        assert sms_responder.DEFAULT_STOP_TEXT in stop.stdout
        after = run_cli("send", "hello again", env=cli_env, cwd=tmp_path)
        assert after.stdout.splitlines() == ["200 OK", "<Response></Response>"]

    def test_send_with_the_wrong_token_gets_403(self, server, cli_env, tmp_path):
        result = run_cli("send", "hello", env={**cli_env, "PLIVO_AUTH_TOKEN": "wrong"}, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stdout.startswith("403 Forbidden")
        assert f"url=http://127.0.0.1:{server.port}{WEBHOOK_PATH}" in server.log()

    def test_send_to_an_explicit_url(self, server, cli_env, tmp_path):
        url = f"{server.url}{WEBHOOK_PATH}"
        result = run_cli("send", "--from", "+14155550777", "--url", url, "hi", env={**cli_env, "PORT": "1"},
                         cwd=tmp_path)
        assert 'dst="+14155550777"' in result.stdout

    def test_send_signs_public_url_by_default(self, services, cli_env, tmp_path):
        env = {**cli_env, "PUBLIC_URL": "https://sms.example.com"}
        service = services(env)
        result = run_cli("send", "--url", f"{service.url}{WEBHOOK_PATH}", "hi", env=env, cwd=tmp_path)
        assert result.stdout.startswith("403")  # signed for the local URL, checked against PUBLIC_URL
        assert f"url=https://sms.example.com{WEBHOOK_PATH}" in service.log()

    def test_banner_logs_the_webhook_url_and_sigterm_exits_0(self, server):
        assert server.stop() == 0
        log = server.log()
        assert f"Plivo message URL: http://127.0.0.1:{server.port}{WEBHOOK_PATH}" in log
        assert "ngrok http" in log

    def test_host_flag_overrides_the_environment_and_public_url_is_logged(self, services, cli_env):
        service = services({**cli_env, "HOST": "192.0.2.1", "PUBLIC_URL": "https://sms.example.com"},
                           "--host", "127.0.0.1")
        service.stop()
        assert f"serving on http://127.0.0.1:{service.port}" in service.log()
        assert f"Plivo message URL: https://sms.example.com{WEBHOOK_PATH}" in service.log()

    def test_access_log_is_json_in_json_mode(self, services, cli_env):
        service = services({**cli_env, "LOG_FORMAT": "json"})
        service.stop()
        entries = [json.loads(line) for line in service.log().splitlines()]
        assert any(entry["logger"] == "sms_responder.access" and "GET /health" in entry["message"]
                   for entry in entries)

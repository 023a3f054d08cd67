"""A stand-in for Plivo's Send Message API on 127.0.0.1, for the tests and the benchmark.

It checks what Plivo checks (POST /v1/Account/{auth_id}/Message/, Basic auth with the
auth id and token, a JSON body with src, dst, text and type "sms", or type "mms" with
media_urls and an optional text) and answers as Plivo
documents: 202 with "message_uuid" (a list) and "api_id". Tests script other answers:
500, 429, 400 or "hang" (no answer until released or closed), one per request in order.
"""

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakePlivoAPI:
    """The fake API server; use as a context manager or call start() and stop()."""

    def __init__(self, auth_id, auth_token):
        self.auth_id, self.auth_token = auth_id, auth_token
        self.answers = []   # scripted answers for the next requests; "ok" once they run out
        self.requests = []  # every request received: {"path", "authorization", "body"}
        self.accepted = []  # the message payloads answered 202, in order
        self.release = threading.Event()  # lets "hang" answers finish
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def answer_for(self, payload, authorization, path):
        """The status and JSON document Plivo would answer with (scripted failures first)."""
        expected_auth = "Basic " + base64.b64encode(f"{self.auth_id}:{self.auth_token}".encode()).decode()
        if path != f"/v1/Account/{self.auth_id}/Message/":
            return 404, {"error": "not found"}
        if authorization != expected_auth:
            return 401, {"error": "authentication failed"}
        if not self.valid_payload(payload):
            return 400, {"api_id": str(uuid.uuid4()), "error": "invalid request body"}
        with self.lock:
            scripted = self.answers.pop(0) if self.answers else "ok"
        if scripted == "ok":
            with self.lock:
                self.accepted.append(payload)
            return 202, {"api_id": str(uuid.uuid4()), "message": "message(s) queued",
                         "message_uuid": [str(uuid.uuid4())]}
        if scripted == "hang":
            self.release.wait(timeout=120)
            return None, None
        return scripted, {"api_id": str(uuid.uuid4()), "error": f"scripted {scripted}"}

    @staticmethod
    def valid_payload(payload):
        """An SMS (src, dst, text, type "sms") or an MMS (type "mms", media_urls a non-empty list, text optional)."""
        if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in ("src", "dst")):
            return False
        if payload.get("type") == "mms":
            media = payload.get("media_urls")
            return (isinstance(media, list) and 0 < len(media) <= 10 and all(isinstance(url, str) for url in media)
                    and isinstance(payload.get("text", ""), str)
                    and set(payload) <= {"src", "dst", "text", "type", "url", "media_urls"})
        return (payload.get("type") == "sms" and isinstance(payload.get("text"), str)
                and set(payload) <= {"src", "dst", "text", "type", "url"})

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body) if self.headers.get("Content-Type") == "application/json" else None
                except ValueError:
                    payload = None
                with fake.lock:
                    fake.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                          "body": payload})
                status, document = fake.answer_for(payload, self.headers.get("Authorization"), self.path)
                if status is None:  # hung: drop the connection without an answer
                    self.close_connection = True
                    return
                answer = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format, *args):
                pass

        return Handler

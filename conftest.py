"""Shared test helpers: real service processes on 127.0.0.1, always stopped by the test that starts them."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import urllib.request
from pathlib import Path

import pytest

MODULE = Path(__file__).with_name("sms_responder.py")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """A service process (python sms_responder.py, gunicorn, ...) with its output in a log file."""

    def __init__(self, argv, env, cwd, port):
        self.argv, self.env, self.cwd, self.port = argv, env, Path(cwd), port
        self.log_path = self.cwd / f"service-{port or uuid.uuid4().hex[:8]}.log"
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        """Start the process and wait until /health answers (any status): bounded by timeout."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        if self.port is None:  # a worker: nothing to wait for
            return self
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop(signal.SIGKILL)
                    raise RuntimeError(f"service did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signal the whole process group and wait; SIGKILL if it does not exit in time. The exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        try:
            os.killpg(self.process.pid, sig)
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=timeout)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- Apps on a real SQLite file ---------------------------------------------------------------

@pytest.fixture
def database(tmp_path):
    return tmp_path / "sms.db"


@pytest.fixture
def make_app(database):
    """Build apps on the test's database file from settings given by field name; closed after the test."""
    from sms_responder import create_app
    from test_sms_responder import AUTH_TOKEN, OUR_NUMBER  # the suite's test credentials

    apps = []

    def build(**overrides):
        settings = {"plivo_auth_token": AUTH_TOKEN, "plivo_number": OUR_NUMBER,
                    "database_url": f"sqlite:///{database}", **overrides}
        app = create_app({}, **settings)  # {}: never the developer's own environment or .env
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.store.close()


# -- Service processes --------------------------------------------------------------------------

@pytest.fixture
def services(tmp_path):
    """services(env, *args, kind="stdlib", "gunicorn" or "worker") starts one; all are stopped after the test."""
    started = []

    def start(env, *args, kind="stdlib", workers=3, port=None, program=MODULE):
        port = None if kind == "worker" else port or free_port()
        # cwd is tmp_path, so a developer's own .env never leaks into a test.
        full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(MODULE.parent), **env}
        if kind == "stdlib":
            argv = [sys.executable, str(MODULE), "--port", str(port), *args]
        elif kind == "worker":
            argv = [sys.executable, str(program), "worker", *args]
        else:
            argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                    *args, "sms_responder:application"]
        service = Service(argv, full_env, tmp_path, port)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


# -- Figures: numbers the reliability tests measured, printed at the end of every run ----------

FIGURES = {}


@pytest.fixture
def figures():
    """A dict a test fills with what it measured; printed in the terminal summary."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("measured")
        for name, values in FIGURES.items():
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{key}={value}" for key, value in values.items()))

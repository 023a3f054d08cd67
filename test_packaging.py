"""The core and the surfaces beside it, as users get them: copied alone, installed with pip, run as a script.

Each test makes a fresh virtual environment and installs into it offline, from the wheelhouse that
`make test` fills (.venv/wheelhouse), then runs the service as a program on 127.0.0.1.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import MODULE, Service
from test_reliability import post_raw, reply_text, signed_body
from test_sms_responder import AUTH_TOKEN, OUR_NUMBER, inbound
from throwaway_postgres import free_port

WHEELHOUSE = MODULE.parent / ".venv" / "wheelhouse"
PACKAGE = MODULE.parent / "sms_responder_surfaces"


@pytest.fixture
def fresh_venv(tmp_path):
    """install(*requirements): a new virtual environment with only these, installed offline; its bin folder."""
    if not WHEELHOUSE.is_dir():
        (pytest.fail if os.environ.get("SMS_RESPONDER_REQUIRE_POSTGRES") == "1" else pytest.skip)(
            "no .venv/wheelhouse: run `make test`, which fetches what `pip install` needs here")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)

    def install(*requirements):
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links",
                               str(WHEELHOUSE), *requirements], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return venv / "bin"

    return install


def environment(bin_folder, **settings):
    return {"PATH": f"{bin_folder}:{os.environ['PATH']}", "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
            "DATABASE_URL": "sqlite:///sms.db", **settings}


def status_of(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.slow
def test_the_core_copied_alone_with_only_plivo_serves_the_webhook(tmp_path, fresh_venv):
    """What a tutorial copies: sms_responder.py in an empty folder, plivo the only library installed."""
    bin_folder = fresh_venv("plivo")
    folder = tmp_path / "tutorial"
    folder.mkdir()
    shutil.copy(MODULE, folder / "sms_responder.py")
    port = free_port()
    env = environment(bin_folder)
    service = Service([str(bin_folder / "python"), "sms_responder.py", "--port", str(port)], env, folder,
                      port).start()
    try:
        status, body = post_raw(service.url, *signed_body(service.url, inbound(Text="hello")))
        assert (status, reply_text(body)) == (200, "You said: hello")
        assert status_of(f"{service.url}/health")[0] == 200
        assert status_of(f"{service.url}/api/messages")[0] == 404
        assert status_of(f"{service.url}/api/verifications/some-id")[0] == 404
        assert status_of(f"{service.url}/api/openapi.json")[0] == 404
        assert status_of(f"{service.url}/inbox")[0] == 404
        assert status_of(f"{service.url}/metrics")[0] == 404
        played = subprocess.run([str(bin_folder / "python"), "sms_responder.py", "send", "again"],
                                env={**env, "PORT": str(port)}, cwd=folder, capture_output=True, text=True,
                                timeout=60)
        assert played.returncode == 0, played.stderr
        assert "You said: again" in played.stdout
    finally:
        assert service.stop() == 0
    not_installed = [line for line in service.log().splitlines() if "not installed" in line]
    assert len(not_installed) == 1, service.log()
    assert all(name in not_installed[0] for name in ("api", "verification", "inbox", "operating", "metrics"))
    assert sorted(path.name for path in folder.iterdir() if not path.name.startswith("sms.db")) == [
        "service-" + str(port) + ".log", "sms_responder.py"]  # nothing else was needed, nothing else was made


@pytest.mark.slow
def test_pip_install_serves_every_surface_from_the_installed_package(tmp_path, fresh_venv):
    """`pip install .` installs the core and the package with its page files; the sources can then go."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "sms_responder.py", "README.md"):
        shutil.copy(MODULE.parent / name, project / name)
    shutil.copytree(PACKAGE, project / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    bin_folder = fresh_venv(f"{project}[postgres]")
    shutil.rmtree(project)  # what runs now is what pip installed
    command = bin_folder / "sms-responder"
    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    env = environment(bin_folder)
    service = Service([str(command), "serve", "--port", str(port)], env, work, port).start()
    try:
        answer = subprocess.run([str(command), "send", "hello"], env={**env, "PORT": str(port)}, cwd=work,
                                capture_output=True, text=True, timeout=60)
        assert answer.returncode == 0, answer.stderr
        assert "You said: hello" in answer.stdout
        listed = subprocess.run([str(command), "messages", "--json"], env=env, cwd=work, capture_output=True,
                                text=True, timeout=60)
        assert json.loads(listed.stdout)["reply"] == "You said: hello"
        status, document = status_of(f"{service.url}/api/openapi.json")
        assert status == 200 and json.loads(document)["openapi"] == "3.1.0"
        status, page = status_of(f"{service.url}/inbox/login")
        assert status == 200 and b"sms-responder users add NAME" in page  # a template of the package
        status, style = status_of(f"{service.url}/inbox/static/inbox.css")
        assert status == 200 and style
    finally:
        assert service.stop() == 0
    imports = subprocess.run([str(bin_folder / "python"), "-c", "import sms_responder, sms_responder_surfaces,"
                              " psycopg; print(sms_responder.__file__, sms_responder_surfaces.__file__)"],
                             cwd=work, capture_output=True, text=True, timeout=60)
    assert imports.returncode == 0, imports.stderr
    assert imports.stdout.count(str(tmp_path / "venv")) == 2  # both installed, neither the checkout's


def test_the_script_and_the_surfaces_share_one_module(services, tmp_path):
    """`python sms_responder.py` runs the file as __main__; the surfaces import sms_responder. Were that a
    second copy, an ApiError a surface raises would not be the HTTPError the app catches: a 500, not a 401."""
    service = services({"PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PLIVO_NUMBER": OUR_NUMBER,
                        "DATABASE_URL": f"sqlite:///{tmp_path / 'sms.db'}"})
    status, body = status_of(f"{service.url}/api/messages?number=14155550123")
    assert status == 401 and json.loads(body)["error"].startswith("an API token is needed")
    probe = subprocess.run([sys.executable, "-c", "import runpy, sys; sys.argv = ['sms_responder.py', '--help'];"
                            f"runpy.run_path({str(MODULE)!r}, run_name='__main__')"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path,
                           env={"PATH": os.environ["PATH"], "PYTHONPATH": str(MODULE.parent)})
    assert probe.returncode == 0 and "tokens" in probe.stdout  # the surfaces' commands, from the one module

"""A throwaway PostgreSQL server on 127.0.0.1, for the tests and the benchmark.

It uses the server binaries of Debian's postgresql package (or initdb on PATH), keeps its data
in a temporary folder, and runs as the unprivileged postgres user when started by root
(initdb refuses to run as root). Authentication is "trust": only local test clients connect.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin():
    """The folder holding initdb and pg_ctl (Debian keeps them out of PATH), or None."""
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL on 127.0.0.1 and a free port, in a temporary folder."""

    def __init__(self, bin_folder, durable=True, cpu=None):
        self.bin = bin_folder
        self.durable = durable
        self.pin = ["taskset", "-c", str(cpu)] if cpu is not None else []  # the benchmark's CPU budget
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="sms-responder-pg-"))  # not under pytest's 0700 tmp
        # initdb refuses to run as root: run the server as the unprivileged user Debian's package creates.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")

    def run(self, *argv):
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, timeout=120)

    def initialise(self):
        self.run(str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", "sms", "-A", "trust",
                 "-E", "UTF8", "--no-sync")
        return self

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=400"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self.run(*self.pin, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-o", options,
                 "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start")
        return self

    def pid(self):
        """The postmaster's pid (its first line of postmaster.pid)."""
        return int((self.folder / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self):
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, schema=None, password="not-the-password"):
        options = f"?options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql://sms:{password}@127.0.0.1:{self.port}/postgres{options}"

    def execute(self, sql):
        import psycopg
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql)

"""A throwaway PostgreSQL server for tests: initdb and pg_ctl in a temporary folder, on a
free loopback port, stopped and removed afterwards.

The server binaries come from PATH or Debian's layout (``/usr/lib/postgresql/<n>/bin``).
initdb refuses to run as root, so as root (CI) the server runs as the ``postgres`` user
through ``runuser``. With no binaries the tests using it are skipped -- unless
``REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_USER = "postgres"


def server_binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A running server: ``host``, ``port``, ``user`` (trust authentication, no password)."""

    host = "127.0.0.1"
    user = "postgres"
    database = "postgres"

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        # Under /tmp itself: pytest's own tmp folders are private to root, and the
        # server's user must reach its data folder.
        self.root = Path(tempfile.mkdtemp(prefix="tap-callcenter-pg-"))
        self.data = self.root / "data"
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                pytest.fail(f"running as root, and there is no {SERVER_USER!r} user for the server")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.run_as = ["runuser", "-u", SERVER_USER, "--"]

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [*self.run_as, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}\n{tail}")

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data),
            "-U", self.user,
            "-A", "trust",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses={self.host} -k {self.root} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.root / "server.log"),
            "-o", options,
            "-w",
            "-t", "60",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server, or a skip (a failure with ``REQUIRE_POSTGRES=1``)."""
    bin_dir = server_binaries()
    if bin_dir is None:
        reason = (
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under "
            "/usr/lib/postgresql/*/bin: install them (Debian: apt-get install postgresql)"
        )
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + "; REQUIRE_POSTGRES=1 makes this a failure")
        pytest.skip(reason)
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()

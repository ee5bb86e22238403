"""A real PostgreSQL for tests: Debian's `postgresql` package, a throwaway cluster on a free port.

`postgresql` (a session fixture: import it into a test module) starts one cluster with initdb and
postgres from /usr/lib/postgresql/*/bin (or PATH), listening on 127.0.0.1 only, with a password-checked
superuser; `PostgresServer.create_database()` gives each test a database of its own. PostgreSQL
refuses to run as root: as root (containers, CI), the cluster belongs to and runs as the unprivileged
`postgres` user the Debian package creates. `running_postgresql(tls=(cert, key))` starts a cluster that
speaks TLS and refuses TCP connections without it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import free_port

USER = "gridflow"
PASSWORD = "gridflow-test-password"
RUN_AS = "postgres"  # the system user Debian's package creates


@dataclass(frozen=True)
class PostgresServer:
    """A running test cluster: where it listens and how to log in."""

    port: int
    user: str = USER
    password: str = PASSWORD
    host: str = "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of a database, without the password (give it apart, as gridflow does)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A plain psycopg connection, autocommitting."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            autocommit=True,
        )

    def create_database(self) -> str:
        """A new empty database; returns its URL (without the password)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)


def binary(name: str) -> str:
    """A PostgreSQL server binary: the newest of /usr/lib/postgresql/*/bin, else PATH; a clear failure."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]), reverse=True
    )
    found = str(versions[0]) if versions else shutil.which(name)
    if found is None:
        pytest.fail(
            f"PostgreSQL's `{name}` is not installed: run `make deps` (installs Debian's `postgresql` "
            "package, whose server binaries are in /usr/lib/postgresql/VERSION/bin)",
            pytrace=False,
        )
    return found


def _as_unprivileged() -> tuple[Callable[[], None] | None, int | None, int | None]:
    """As root: a preexec that becomes the `postgres` user, and its uid and gid; else nothing."""
    if os.geteuid() != 0:
        return None, None, None
    try:
        user = pwd.getpwnam(RUN_AS)
    except KeyError:
        pytest.fail(
            f"the tests run as root and PostgreSQL refuses to: there is no `{RUN_AS}` user to run it as "
            "(Debian's `postgresql` package creates it: `make deps`)",
            pytrace=False,
        )
    uid, gid = user.pw_uid, user.pw_gid

    def become() -> None:
        os.setgid(gid)
        os.setuid(uid)

    return become, uid, gid


#: Who may log in with TLS: password-checked, on the Unix socket or over TLS on 127.0.0.1, never in
#: plaintext over TCP (no `host` line).
_TLS_ONLY_HBA = """\
local all all scram-sha-256
hostssl all all 127.0.0.1/32 scram-sha-256
"""


@contextlib.contextmanager
def running_postgresql(tls: tuple[Path, Path] | None = None) -> Iterator[PostgresServer]:
    """A fresh cluster on a free port of 127.0.0.1, stopped (and its files removed) afterwards.

    With `tls` (the server's certificate and key, PEM files) it serves TLS and refuses TCP connections
    that do not use it."""
    initdb, postgres = binary("initdb"), binary("postgres")
    become, uid, gid = _as_unprivileged()
    with tempfile.TemporaryDirectory(prefix="gridflow-postgres-") as tmp:
        root = Path(tmp)
        data, password_file, log_path = root / "data", root / "password", root / "postgres.log"
        password_file.write_text(PASSWORD)
        if uid is not None and gid is not None:
            os.chown(root, uid, gid)
            os.chown(password_file, uid, gid)
        environment = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        subprocess.run(
            [initdb, "-D", str(data), "-U", USER, f"--pwfile={password_file}", "--auth=scram-sha-256",
             "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, preexec_fn=become, env=environment, cwd=root,
        )  # fmt: skip
        options = _tls_options(root, data, tls, uid, gid) if tls is not None else []
        server = PostgresServer(port=free_port())
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [postgres, "-D", str(data), "-p", str(server.port), "-k", str(root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50",
                 *options],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=become, env=environment, cwd=root,
            )  # fmt: skip
        try:
            _wait_ready(server, process, log_path)
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown: sessions ended, nothing left running
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _tls_options(
    root: Path, data: Path, tls: tuple[Path, Path], uid: int | None, gid: int | None
) -> list[str]:
    """Copy the certificate and key into the cluster's directory, for the server's user (PostgreSQL
    refuses a key others may read), require TLS on TCP; the server's options for them."""
    cert, key = root / "server.pem", root / "server.key"
    shutil.copyfile(tls[0], cert)
    shutil.copyfile(tls[1], key)
    key.chmod(0o600)
    if uid is not None and gid is not None:
        os.chown(cert, uid, gid)
        os.chown(key, uid, gid)
    (data / "pg_hba.conf").write_text(_TLS_ONLY_HBA)  # rewritten in place: it stays the server's file
    return ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}"]


def _wait_ready(server: PostgresServer, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with server.connect():
                return
        except psycopg.OperationalError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"postgres did not become ready:\n{log_path.read_text()}", pytrace=False)
        time.sleep(0.1)


_shared: list[PostgresServer] = []
_users: list[object] = []
_stack = contextlib.ExitStack()


@pytest.fixture(scope="session", name="postgresql")
def postgresql_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session, however many modules import this fixture."""
    # Each importing module gets a fixture of its own from pytest; they share one server, stopped
    # when the last of them finishes.
    if not _shared:
        _shared.append(_stack.enter_context(running_postgresql()))
    token = object()
    _users.append(token)
    try:
        yield _shared[0]
    finally:
        _users.remove(token)
        if not _users:
            _shared.clear()
            _stack.close()


@dataclass(frozen=True)
class Database:
    """An empty archive database: its URL and password, as the settings give them."""

    url: str
    password: str | None


@pytest.fixture(params=["sqlite", "postgresql"], name="database")
def archive_database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty SQLite file (in a directory not made yet), or an empty database on the session's
    PostgreSQL; import it into a test module with `postgresql`."""
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path}/state/archive.db", None)
    server: PostgresServer = request.getfixturevalue("postgresql")
    return Database(server.create_database(), server.password)

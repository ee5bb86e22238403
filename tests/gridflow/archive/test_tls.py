"""The archive over TLS to a real PostgreSQL: the URL's `sslmode` and `sslrootcert` are all it takes.

The module's cluster serves a certificate for 127.0.0.1 and localhost, signed by a CA the test makes,
and refuses TCP connections without TLS. A URL with `sslmode=verify-full&sslrootcert=<the CA>` opens the
archive; another CA, another host name and plaintext are refused, each with one line saying why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

from gridflow.archive import migrate
from gridflow.archive.store import Archive, ArchiveError
from tests.certificates import certificates
from tests.gridflow.archive.cases import archived, reopened_and_closed
from tests.postgres import PostgresServer, running_postgresql


@dataclasses.dataclass(frozen=True)
class TlsPostgres:
    """The module's cluster and the CA that signed its certificate."""

    server: PostgresServer
    ca: Path

    def url(self, database: str, host: str = "127.0.0.1", **query: str) -> str:
        """The database's URL with `host` for a name and `query` (sslmode, sslrootcert, ...)."""
        return f"{dataclasses.replace(self.server, host=host).url(database)}?{urlencode(query)}"


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPostgres]:
    ca, cert, key = certificates(tmp_path_factory.mktemp("pg-tls"))
    with running_postgresql(tls=(cert, key)) as server:
        yield TlsPostgres(server, ca)


@pytest.fixture
def database(tls_postgres: TlsPostgres) -> str:
    """A new empty database's name."""
    return tls_postgres.server.create_database().rsplit("/", 1)[-1]


def refusal(url: str) -> str:
    """Why `Archive.open` refuses `url`: its error, checked to be one line without the password."""
    with pytest.raises(ArchiveError) as refused:
        Archive.open(url, PostgresServer.password)
    message = str(refused.value)
    assert "\n" not in message
    assert PostgresServer.password not in message
    return message


def test_the_archive_opens_over_verified_tls_and_keeps_and_reads_steps(
    tls_postgres: TlsPostgres, database: str
) -> None:
    url = tls_postgres.url(database, sslmode="verify-full", sslrootcert=str(tls_postgres.ca))
    steps = archived(reopened_and_closed("inc-tls"))
    with Archive.open(url, tls_postgres.server.password) as archive:
        assert (archive.migrated_from, archive.schema_version()) == (None, migrate.head())
        assert archive.write(steps) == len(steps)
        assert archive.timeline("inc-tls") == [step.model_copy(update={"note": None}) for step in steps]
        with archive.engine.connect() as connection:
            ssl, version = connection.execute(
                text("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).one()
    assert ssl is True  # the server's own word: this session is encrypted
    assert version.startswith("TLSv1.")


@pytest.mark.parametrize(
    ("ca_name", "said"),
    [
        # Another deployment's CA: OpenSSL finds no issuer for the server's certificate.
        ("another deployment's CA", "SSL error: certificate verify failed"),
        # A CA made again under the same name: the issuer is found, its signature does not match
        # (OpenSSL 3 says "provider signature failure").
        ("gridflow test CA", "SSL error: "),
    ],
    ids=["another-ca", "same-name-new-key"],
)
def test_a_server_certificate_another_ca_signed_is_refused(
    tls_postgres: TlsPostgres, database: str, tmp_path: Path, ca_name: str, said: str
) -> None:
    other_ca, _, _ = certificates(tmp_path, ca_name=ca_name)
    message = refusal(tls_postgres.url(database, sslmode="verify-full", sslrootcert=str(other_ca)))
    # The URL as written (the CA's path readable, no password shown), then what went wrong in plain words.
    assert message.startswith("cannot open the archive at postgresql+psycopg://gridflow@127.0.0.1:")
    assert f"sslrootcert={other_ca}" in message
    assert f"the server's certificate could not be verified with the CA in {other_ca} (" in message
    assert said in message
    assert "connection to server at" not in message  # psycopg's prefix: the URL already says where


def test_verify_full_refuses_a_server_whose_certificate_names_another_host(
    tls_postgres: TlsPostgres, database: str
) -> None:
    # The archive asks for db.example and reaches 127.0.0.1 (hostaddr: no DNS), whose certificate
    # names 127.0.0.1 and localhost only: as if db.example's address led to another server.
    elsewhere = {"hostaddr": "127.0.0.1", "sslrootcert": str(tls_postgres.ca)}
    message = refusal(tls_postgres.url(database, host="db.example", sslmode="verify-full", **elsewhere))
    names = 'server certificate for "127.0.0.1" (and 1 other name) does not match host name "db.example"'
    assert names in message
    # The name was the only thing wrong: verify-ca, which checks the CA and not the name, lets it in.
    with Archive.open(
        tls_postgres.url(database, host="db.example", sslmode="verify-ca", **elsewhere),
        tls_postgres.server.password,
    ) as archive:
        assert archive.schema_version() == migrate.head()


def test_a_connection_without_tls_is_refused(tls_postgres: TlsPostgres, database: str) -> None:
    message = refusal(tls_postgres.url(database, sslmode="disable"))
    entry = f'host "127.0.0.1", user "gridflow", database "{database}", no encryption'
    assert f"no pg_hba.conf entry for {entry}" in message


def test_a_missing_ca_file_is_named(tls_postgres: TlsPostgres, database: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    message = refusal(tls_postgres.url(database, sslmode="verify-full", sslrootcert=str(missing)))
    assert f'root certificate file "{missing}" does not exist' in message

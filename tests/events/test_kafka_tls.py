"""gridflow's Kafka TLS settings against a broker that speaks only TLS, end to end.

The Tansu broker shipped here serves no TLS, so a TLS-terminating proxy (tests/proxy.py) stands in front
of it, with a certificate from a CA the test makes; the broker advertises the proxy as its listener, so
every connection of every client (bootstrap, metadata, produce, fetch, the group's coordinator) goes
through TLS, verified against that CA. No client is given the broker's own port.

- `gridflow publish`, a `gridflow bridge`, a `gridflow worker`, `gridflow dlq list` and a `gridflow
  archiver` do their real job with GRIDFLOW_KAFKA_SECURITY_PROTOCOL=SSL and GRIDFLOW_KAFKA_SSL_CAFILE;
  a plaintext client is turned away by the same listener;
- another CA, or a certificate for another host name: a one-shot command ends with exit code 1 and one
  line naming the setting to check; a bridge and a worker exit with that line in their log;
- mutual TLS: with GRIDFLOW_KAFKA_SSL_CERTFILE and _KEYFILE the commands work where the listener
  requires a client certificate, and without them they are refused in one line naming those settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from events import contract
from events.kafka import client_config, ensure_topics
from events.lifecycle import read_step_event
from gridflow.app.broker import local_broker
from gridflow.app.cli import main, shared
from gridflow.app.cli.shared import EXIT_ERROR, EXIT_OK, CommandError, reach_kafka
from gridflow.app.codec import generate_key
from gridflow.app.settings import Settings, env_name
from gridflow.archive.store import Archive
from gridflow.domain.incident import Status, workflow_id_for
from gridflow.domain.lifecycle.timeline import StepKind
from tests.certificates import certificates
from tests.conftest import free_port, isolated_settings
from tests.deploy.test_scale_out import Process, Scenario
from tests.events.samples import sample_data
from tests.proxy import Proxy, server_tls

WAIT_SECONDS = 40.0

#: What a command reads from the environment to reach the test's topics over TLS.
KAFKA_FIELDS = (
    "kafka_bootstrap_servers",
    "kafka_api_version",
    "kafka_security_protocol",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "incidents_topic",
    "events_topic",
    "dlq_topic",
)


@dataclass(frozen=True)
class TlsKafka:
    """A Tansu broker that clients reach only through a TLS proxy, and the files of the proxy's TLS."""

    proxy: Proxy
    broker_port: int
    ca: Path
    cert: Path
    key: Path

    @property
    def address(self) -> str:
        return self.proxy.address


@contextlib.contextmanager
def tls_kafka(directory: Path, *, client_certificates: bool = False) -> Iterator[TlsKafka]:
    """A broker behind a TLS proxy with a certificate for 127.0.0.1 and localhost; with
    `client_certificates`, the proxy requires a client certificate signed by the same CA."""
    ca, cert, key = certificates(directory)
    context = server_tls(cert, key)
    if client_certificates:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(ca)
    port = free_port()
    with Proxy(f"127.0.0.1:{port}", tls=context) as proxy, local_broker(port, advertised=proxy.address):
        yield TlsKafka(proxy, port, ca, cert, key)


@pytest.fixture(scope="module")
def kafka_over_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    with tls_kafka(tmp_path_factory.mktemp("kafka-tls")) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def misnamed(kafka_over_tls: TlsKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """A second TLS proxy to the same broker whose certificate is for kafka.invalid only (its CA is
    trusted: only the name is wrong)."""
    ca, cert, key = certificates(tmp_path_factory.mktemp("kafka-misnamed"), hosts=("kafka.invalid",))
    with Proxy(f"127.0.0.1:{kafka_over_tls.broker_port}", tls=server_tls(cert, key)) as proxy:
        yield TlsKafka(proxy, kafka_over_tls.broker_port, ca, cert, key)


def tls_settings(kafka: TlsKafka, **overrides: Any) -> Settings:
    """A test's own topics and group on the broker, over TLS trusting the test's CA."""
    tls = {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": str(kafka.ca)}
    return isolated_settings(kafka.address, **{**tls, **overrides})


def kafka_env(settings: Settings) -> dict[str, str]:
    """The settings' Kafka connection and topics as GRIDFLOW_* variables."""
    values = {env_name(field): getattr(settings, field) for field in KAFKA_FIELDS}
    return {name: str(value) for name, value in values.items() if value is not None}


async def gridflow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, settings: Settings, *argv: str
) -> tuple[int, str, str]:
    """`gridflow ARGV` in-process, as a user runs it with the settings in the environment."""
    with monkeypatch.context() as env:
        for field in KAFKA_FIELDS:
            env.delenv(env_name(field), raising=False)
        for name, value in kafka_env(settings).items():
            env.setenv(name, value)
        code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def envelope(event_type: str, incident_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": "tls-test",
        "id": str(uuid.uuid4()),
        "data": sample_data(event_type, incident_id),
    }


def lifecycle_steps(settings: Settings, incident_id: str) -> list[StepKind]:
    """The kinds of the incident's steps on the events topic, read from the start over TLS."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = [
            TopicPartition(settings.events_topic, p)
            for p in consumer.partitions_for_topic(settings.events_topic) or set()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        steps = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    step = read_step_event(
                        record.key, record.value, record.headers, settings.max_message_bytes
                    )
                    if step.incident_id == incident_id:
                        steps.append(step.kind)
        return steps
    finally:
        consumer.close()


def case_file_status(url: str, incident_id: str) -> tuple[Status, int] | None:
    """The archived incident's status and last step, or None while it is not archived."""
    with Archive.open(url) as archive:
        case = archive.incident(incident_id)
    return None if case is None else (case.status, case.last_seq)


def one_line(err: str) -> str:
    """The single line a refused command writes, checked to be single and no traceback."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.rstrip("\n")


def refusal_in_log(process: Process) -> str:
    """The `cannot connect to Kafka` line of a process that exited, checked to be its only error."""
    text = process.log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text, process.tail()
    lines = [line for line in text.splitlines() if line.startswith("cannot connect to Kafka at ")]
    assert len(lines) == 1, process.tail()
    return lines[0]


# ---------------------------------------------------------------------- the work, over TLS


@pytest.mark.timeout(150)
async def test_publish_bridge_worker_dlq_and_archiver_do_their_work_through_verified_tls(
    dev_server_env: WorkflowEnvironment,
    kafka_over_tls: TlsKafka,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    settings = tls_settings(kafka_over_tls)
    await asyncio.to_thread(ensure_topics, settings)
    connections_before = kafka_over_tls.proxy.accepted
    client = dev_server_env.client
    scenario = Scenario(settings, client.service_client.config.target_host, client.namespace, tmp_path)
    archive_url = f"sqlite:///{tmp_path / 'archive.db'}"
    scenario.env.update(
        {
            **kafka_env(settings),
            "GRIDFLOW_CODEC_KEYS": "k1:" + generate_key(),
            "GRIDFLOW_ARCHIVE_URL": archive_url,
            "GRIDFLOW_ARCHIVER_GROUP": f"a-{settings.consumer_group}",
        }
    )
    incident_id, stray_id = f"inc-tls-{uuid.uuid4().hex[:8]}", f"inc-tls-stray-{uuid.uuid4().hex[:8]}"
    try:
        worker = scenario.start("worker", "worker")
        bridge = scenario.start("bridge", "bridge")
        archiver = scenario.start("archiver", "archiver")

        # A report, and an acceptance of an incident never reported: valid, but the bridge cannot apply it.
        events = tmp_path / "events.json"
        events.write_text(
            json.dumps([envelope(contract.REPORTED, incident_id), envelope(contract.ACCEPTED, stray_id)])
        )
        code, out, err = await gridflow(capsys, monkeypatch, settings, "publish", str(events))
        assert (code, err) == (EXIT_OK, f"published 2 event(s) to {settings.incidents_topic}\n"), out
        assert f"{contract.REPORTED} {incident_id} -> {settings.incidents_topic}/" in out

        # The bridge started the workflow and the worker ran it: its steps are on the events topic.
        steps: list[StepKind] = []

        def reported_and_dispatched() -> bool:
            steps[:] = lifecycle_steps(settings, incident_id)
            return steps[:2] == [StepKind.REPORTED, StepKind.DISPATCHED]

        await scenario.until(
            "the reported and dispatched events", reported_and_dispatched, within=WAIT_SECONDS
        )
        described = await client.get_workflow_handle(workflow_id_for(incident_id)).describe()
        assert described.status is WorkflowExecutionStatus.RUNNING

        # The bridge dead-lettered the stray acceptance; `gridflow dlq list` reads it over TLS.
        listed: list[str] = []

        async def dead_lettered() -> bool:
            code, out, err = await gridflow(capsys, monkeypatch, settings, "dlq", "list")
            assert code == EXIT_OK, err
            listed[:] = out.splitlines()
            return bool(listed)

        for _ in range(int(WAIT_SECONDS / 0.5)):
            if await dead_lettered():
                break
            await asyncio.sleep(0.5)
        assert len(listed) == 1, scenario.diagnostics()
        assert "unknown_incident" in listed[0] and f"key={stray_id}" in listed[0]

        # The archiver consumed the events over TLS and keeps the case file.
        await scenario.until(
            "the archiver to join its group",
            lambda: archiver.logged("archiver partitions assigned"),
            within=WAIT_SECONDS,
        )
        await scenario.until(
            "the case file in the archive",
            lambda: (case_file_status(archive_url, incident_id) or (None, 0))[1] >= 2,
            within=WAIT_SECONDS,
        )
        assert case_file_status(archive_url, incident_id) == (Status.DISPATCHED, 2)
        assert all(process.alive() for process in (worker, bridge, archiver)), scenario.diagnostics()
    finally:
        scenario.stop_all()

    # Every client came in through the TLS listener (each process and command opens at least one
    # connection there) ...
    assert kafka_over_tls.proxy.accepted >= connections_before + 5
    # ... which turns a plaintext client away.
    monkeypatch.setattr(shared, "KAFKA_CONNECT_TIMEOUT_S", 1.0)
    plaintext = settings.with_overrides(kafka_security_protocol="PLAINTEXT")
    with pytest.raises(CommandError) as refused:
        await asyncio.to_thread(reach_kafka, plaintext)
    assert str(refused.value) == (
        f"cannot connect to Kafka at {kafka_over_tls.address}: socket disconnected (if the brokers speak "
        "TLS: set GRIDFLOW_KAFKA_SECURITY_PROTOCOL=SSL; else set GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS or "
        "--kafka-bootstrap-servers)"
    )


# ---------------------------------------------------------------------- refusals


async def test_another_ca_or_another_host_name_ends_a_command_with_one_line_naming_the_setting(
    kafka_over_tls: TlsKafka,
    misnamed: TlsKafka,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    monkeypatch.setattr(shared, "KAFKA_CONNECT_TIMEOUT_S", 1.0)  # the wording is the point here
    other_ca, _, _ = certificates(tmp_path)  # another CA, by the same name: its key differs

    untrusted = tls_settings(kafka_over_tls, kafka_ssl_cafile=str(other_ca))
    code, out, err = await gridflow(capsys, monkeypatch, untrusted, "dlq", "list")
    assert (code, out) == (EXIT_ERROR, "")
    assert one_line(err) == (
        f"cannot connect to Kafka at {kafka_over_tls.address}: certificate verification failed: the "
        f"broker's certificate is not signed by the CA in {other_ca} (certificate signature failure) "
        "(set GRIDFLOW_KAFKA_SSL_CAFILE to the CA that signed it)"
    )

    # The CA that signed it is trusted; the certificate is for kafka.invalid, not 127.0.0.1.
    elsewhere = tls_settings(misnamed)
    incident = tmp_path / "incident.json"
    incident.write_text(json.dumps(sample_data(contract.REPORTED, "inc-tls-misnamed")))
    code, out, err = await gridflow(capsys, monkeypatch, elsewhere, "publish", str(incident))
    assert (code, out) == (EXIT_ERROR, "")
    assert one_line(err) == (
        f"cannot connect to Kafka at {misnamed.address}: certificate verification failed: the broker's "
        "certificate is not for host name 127.0.0.1 (connect by a name it is for: set "
        "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS or --kafka-bootstrap-servers, and the brokers' advertised "
        "listeners)"
    )

    # Without a CA, the system's CAs do not know the test's.
    system_cas = tls_settings(kafka_over_tls).model_copy(update={"kafka_ssl_cafile": None})
    code, out, err = await gridflow(capsys, monkeypatch, system_cas, "dlq", "list")
    assert code == EXIT_ERROR
    assert "not signed by a CA this system trusts (unable to get local issuer certificate)" in one_line(err)


@pytest.mark.timeout(90)
async def test_a_bridge_and_a_worker_refused_by_tls_exit_with_the_reason_in_their_log(
    dev_server_env: WorkflowEnvironment, kafka_over_tls: TlsKafka, misnamed: TlsKafka, tmp_path: Path
) -> None:
    other_ca, _, _ = certificates(tmp_path)
    client = dev_server_env.client
    target, namespace = client.service_client.config.target_host, client.namespace

    def scenario(settings: Settings, name: str) -> Scenario:
        started = Scenario(settings, target, namespace, tmp_path / name)
        started.logs.mkdir()
        started.env.update({**kafka_env(settings), "GRIDFLOW_CODEC_KEYS": "k1:" + generate_key()})
        return started

    untrusted = scenario(tls_settings(kafka_over_tls, kafka_ssl_cafile=str(other_ca)), "untrusted")
    elsewhere = scenario(tls_settings(misnamed), "elsewhere")
    try:
        bridge = untrusted.start("bridge", "bridge")
        worker = elsewhere.start("worker", "worker")
        await untrusted.until("the bridge to exit", lambda: not bridge.alive(), WAIT_SECONDS)
        await elsewhere.until("the worker to exit", lambda: not worker.alive(), WAIT_SECONDS)
    finally:
        untrusted.stop_all()
        elsewhere.stop_all()

    assert (bridge.popen.returncode, worker.popen.returncode) == (EXIT_ERROR, EXIT_ERROR)
    assert refusal_in_log(bridge) == (
        f"cannot connect to Kafka at {kafka_over_tls.address}: certificate verification failed: the "
        f"broker's certificate is not signed by the CA in {other_ca} (certificate signature failure) "
        "(set GRIDFLOW_KAFKA_SSL_CAFILE to the CA that signed it)"
    )
    assert "certificate is not for host name 127.0.0.1" in refusal_in_log(worker)
    assert not bridge.logged("partitions assigned") and not worker.logged("worker started")


def test_a_tls_client_at_a_plaintext_port_is_told_so_instead_of_waiting_for_ever(
    kafka_over_tls: TlsKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kafka-python 3 bounds no TLS handshake: against the broker's own (plaintext) port it would wait
    # for the broker's half of the handshake for ever. reach_kafka stops waiting and says why.
    monkeypatch.setattr(shared, "KAFKA_CONNECT_TIMEOUT_S", 1.0)
    plaintext_port = f"127.0.0.1:{kafka_over_tls.broker_port}"
    with pytest.raises(CommandError) as refused:
        reach_kafka(tls_settings(kafka_over_tls, kafka_bootstrap_servers=plaintext_port))
    assert str(refused.value) == (
        f"cannot connect to Kafka at {plaintext_port}: no TLS handshake within 1 s: does the broker speak "
        "TLS on this port? (check GRIDFLOW_KAFKA_SECURITY_PROTOCOL, and set GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS "
        "or --kafka-bootstrap-servers)"
    )


# ---------------------------------------------------------------------- mutual TLS


async def test_mutual_tls_works_with_a_client_certificate_and_refuses_a_client_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    monkeypatch.setattr(shared, "KAFKA_CONNECT_TIMEOUT_S", 1.0)
    with tls_kafka(tmp_path, client_certificates=True) as kafka:
        # The CA's one certificate doubles as the client's: it has no extended key usage, so it is
        # good for a client as for a server.
        settings = tls_settings(kafka, kafka_ssl_certfile=str(kafka.cert), kafka_ssl_keyfile=str(kafka.key))
        await asyncio.to_thread(ensure_topics, settings)
        incident = tmp_path / "incident.json"
        incident.write_text(json.dumps(sample_data(contract.REPORTED, "inc-tls-mutual")))
        code, out, err = await gridflow(capsys, monkeypatch, settings, "publish", str(incident))
        assert code == EXIT_OK, err
        assert f"{contract.REPORTED} inc-tls-mutual -> {settings.incidents_topic}/" in out
        code, out, err = await gridflow(capsys, monkeypatch, settings, "dlq", "list")
        assert (code, out, err) == (EXIT_OK, "", f"0 dead letter(s) in {settings.dlq_topic}\n")

        anonymous = settings.model_copy(update={"kafka_ssl_certfile": None, "kafka_ssl_keyfile": None})
        code, out, err = await gridflow(capsys, monkeypatch, anonymous, "dlq", "list")
    assert code == EXIT_ERROR
    assert one_line(err) == (
        f"cannot connect to Kafka at {kafka.address}: socket disconnected (if the brokers require a client "
        "certificate: set GRIDFLOW_KAFKA_SSL_CERTFILE and GRIDFLOW_KAFKA_SSL_KEYFILE; else set "
        "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS or --kafka-bootstrap-servers)"
    )


def test_a_tls_file_that_cannot_be_used_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    ca, cert, _ = certificates(tmp_path / "one")
    _, _, other_key = certificates(tmp_path / "two")
    missing = tmp_path / "no-such-ca.pem"
    cases = {
        str(missing): f"cannot use the CA file {missing} for Kafka TLS: no such file or directory "
        "(set GRIDFLOW_KAFKA_SSL_CAFILE)",
        str(other_key): f"cannot use the CA file {other_key} for Kafka TLS: no certificate or crl found "
        "(set GRIDFLOW_KAFKA_SSL_CAFILE)",
    }
    for cafile, said in cases.items():
        with pytest.raises(CommandError) as refused:
            reach_kafka(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=cafile))
        assert str(refused.value) == said
    # A client certificate with another certificate's key.
    mismatched = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(ca),
        kafka_ssl_certfile=str(cert),
        kafka_ssl_keyfile=str(other_key),
    )
    with pytest.raises(CommandError) as refused:
        reach_kafka(mismatched)
    assert str(refused.value) == (
        f"cannot use the client certificate {cert} and {other_key} for Kafka TLS: key values mismatch "
        "(set GRIDFLOW_KAFKA_SSL_CERTFILE and GRIDFLOW_KAFKA_SSL_KEYFILE)"
    )

"""Payload encryption: the codec, the keyring and its rotation, and a real incident's history on a server."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.testing import WorkflowEnvironment

from gridflow.app.codec import (
    ENCODING,
    KEY_ID_METADATA,
    KEYS_ENV,
    CodecError,
    EncryptionCodec,
    Keyring,
    KeyringError,
    UnknownKeyError,
    data_converter,
    generate_key,
)
from gridflow.app.compose import build_worker
from gridflow.domain.incident import Reporter
from gridflow.domain.lifecycle import Accept
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import make_incident
from workflows.client import incident_state, report_incident, send_command
from workflows.input import IncidentInput

NAME = "Li Wei"
PHONE = "+86 138 0000 0000"


def _key() -> bytes:
    return os.urandom(32)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _payloads() -> list[Payload]:
    """Real payloads as gridflow writes them: a pydantic model carrying personal data, and a string."""
    return pydantic_data_converter.payload_converter.to_payloads(
        [Reporter(name=NAME, phone=PHONE, channel="app"), "plain text"]
    )


def _assert_no_key_material(text: str, *keys: bytes) -> None:
    """Neither a key nor any 8-character run of its base64 forms appears in `text`."""
    for key in keys:
        assert key.hex() not in text
        for form in (_b64(key), base64.urlsafe_b64encode(key).decode()):
            for start in range(len(form) - 8):
                assert form[start : start + 8] not in text, "the message quotes key material"


# ---------------------------------------------------------------------- the codec


async def test_round_trip_restores_every_payload_exactly() -> None:
    codec = EncryptionCodec(Keyring({"k1": _key()}))
    originals = _payloads()

    encoded = await codec.encode(originals)

    assert len(encoded) == len(originals)
    assert await codec.decode(encoded) == originals
    restored = pydantic_data_converter.payload_converter.from_payloads(
        await codec.decode(encoded), [Reporter, str]
    )
    assert restored == [Reporter(name=NAME, phone=PHONE, channel="app"), "plain text"]


async def test_encrypted_payload_names_its_encoding_and_key() -> None:
    codec = EncryptionCodec(Keyring({"k2026a": _key()}))

    encoded = await codec.encode(_payloads())

    for payload in encoded:
        assert dict(payload.metadata) == {"encoding": ENCODING, KEY_ID_METADATA: b"k2026a"}


async def test_ciphertext_does_not_contain_the_plaintext_and_nonces_differ() -> None:
    codec = EncryptionCodec(Keyring({"k1": _key()}))
    original = _payloads()[0]

    first, second = await codec.encode([original, original])

    for payload in (first, second):
        raw = payload.SerializeToString()
        assert NAME.encode() not in raw
        assert PHONE.encode() not in raw
        assert b"json/plain" not in raw  # the inner metadata is encrypted too
    # A fresh random nonce per payload: the same plaintext never gives the same ciphertext.
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


async def test_unencrypted_payloads_pass_through_decode_unchanged() -> None:
    codec = EncryptionCodec(Keyring({"k1": _key()}))
    plain = _payloads()

    assert await codec.decode(plain) == plain


async def test_rotation_keeps_old_payloads_readable_and_encrypts_with_the_new_key() -> None:
    key_a, key_b = _key(), _key()
    old = await EncryptionCodec(Keyring({"a": key_a})).encode(_payloads())

    rotated = Keyring.parse(f"b:{_b64(key_b)},a:{_b64(key_a)}")
    codec = EncryptionCodec(rotated)
    new = await codec.encode(_payloads())

    assert rotated.current_id == "b"
    assert rotated.key_ids == ("b", "a")
    assert await codec.decode(old) == _payloads()
    assert {p.metadata[KEY_ID_METADATA] for p in new} == {b"b"}
    assert await codec.decode(new) == _payloads()
    # Without the old key its payloads are out of reach, while the new ones still read.
    only_b = EncryptionCodec(Keyring({"b": key_b}))
    assert await only_b.decode(new) == _payloads()
    with pytest.raises(UnknownKeyError):
        await only_b.decode(old)


async def test_rotated_and_named_current_key() -> None:
    key_a, key_b = _key(), _key()
    keyring = Keyring({"a": key_a}).rotated("b", key_b)
    assert (keyring.current_id, keyring.key_ids) == ("b", ("b", "a"))

    named = Keyring({"a": key_a, "b": key_b}, current="b")
    encoded = await EncryptionCodec(named).encode(_payloads())
    assert encoded[0].metadata[KEY_ID_METADATA] == b"b"
    assert await EncryptionCodec(keyring).decode(encoded) == _payloads()

    with pytest.raises(KeyringError, match="already in the keyring"):
        keyring.rotated("a", _key())
    with pytest.raises(KeyringError, match="current key id 'c'"):
        Keyring({"a": key_a}, current="c")


async def test_unknown_key_id_is_named_and_the_keys_are_not() -> None:
    key_a, key_b = _key(), _key()
    encoded = await EncryptionCodec(Keyring({"retired-2025": key_a})).encode(_payloads())

    with pytest.raises(UnknownKeyError) as raised:
        await EncryptionCodec(Keyring({"k2026": key_b})).decode(encoded)

    assert raised.value.key_id == "retired-2025"
    assert "'retired-2025'" in str(raised.value)
    _assert_no_key_material(str(raised.value), key_a, key_b)


async def test_wrong_key_under_a_known_id_or_altered_data_fails_authentication() -> None:
    encoded = await EncryptionCodec(Keyring({"k1": _key()})).encode(_payloads()[:1])

    with pytest.raises(CodecError, match="failed authentication"):
        await EncryptionCodec(Keyring({"k1": _key()})).decode(encoded)

    codec = EncryptionCodec(Keyring({"k1": _key()}))
    tampered = (await codec.encode(_payloads()[:1]))[0]
    tampered.data = tampered.data[:-1] + bytes([tampered.data[-1] ^ 1])
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([tampered])

    truncated = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"k1"}, data=b"short")
    with pytest.raises(CodecError, match="too short"):
        await codec.decode([truncated])
    no_id = Payload(metadata={"encoding": ENCODING}, data=tampered.data)
    with pytest.raises(CodecError, match=KEY_ID_METADATA):
        await codec.decode([no_id])


# ---------------------------------------------------------------------- keys from the environment


def test_parse_reads_entries_in_order_with_either_base64_alphabet() -> None:
    key_a, key_b = _key(), _key()
    text = f" k2:{base64.urlsafe_b64encode(key_b).decode().rstrip('=')} , k1:{_b64(key_a)} "

    keyring = Keyring.parse(text)

    assert keyring.key_ids == ("k2", "k1")
    assert keyring.current_id == "k2"
    key_id, data = keyring.encrypt(b"x")
    assert Keyring({"k2": key_b}).decrypt(key_id, data) == b"x"


def test_from_env_is_none_when_unset_and_a_keyring_when_set() -> None:
    key = generate_key()

    assert Keyring.from_env({}) is None
    assert Keyring.from_env({KEYS_ENV: "  "}) is None
    keyring = Keyring.from_env({KEYS_ENV: f"k1:{key}"})
    assert keyring is not None
    assert keyring.key_ids == ("k1",)


def test_generate_key_gives_32_fresh_random_bytes() -> None:
    first, second = generate_key(), generate_key()

    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != second
    Keyring.parse(f"k1:{first}")  # usable as is


BAD_KEY = os.urandom(32)
SHORT_KEY = os.urandom(16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            f"k1:{_b64(BAD_KEY)[:20]}!{_b64(BAD_KEY)[21:]}", "key 'k1' is not valid base64", id="bad"
        ),
        pytest.param(f"k1:{_b64(BAD_KEY)[:41]}", "key 'k1' is not valid base64", id="truncated"),
        pytest.param(f"k1:{_b64(SHORT_KEY)}", "key 'k1' is 16 bytes; AES-256 needs 32", id="short"),
        pytest.param(f"k1:{_b64(BAD_KEY)},k1:{_b64(BAD_KEY)}", "key id 'k1' appears more", id="duplicate"),
        pytest.param(_b64(BAD_KEY), "entry 1 is not in the form id:base64key", id="no-id"),
        pytest.param(f"{_b64(BAD_KEY)}:k1", "entry 1 has an invalid key id", id="reversed"),
        pytest.param(f"k1:{_b64(BAD_KEY)},,k2:{_b64(SHORT_KEY)}", "entry 2 is empty", id="empty-entry"),
        pytest.param(",", "holds no keys", id="nothing"),
    ],
)
def test_parse_errors_are_clear_and_never_quote_key_material(text: str, message: str) -> None:
    with pytest.raises(KeyringError) as raised:
        Keyring.parse(text)

    assert message in str(raised.value)
    assert str(raised.value).startswith(f"{KEYS_ENV}")
    _assert_no_key_material(str(raised.value), BAD_KEY, SHORT_KEY)
    # No chained exception carries the input along into a traceback either.
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__ or raised.value.__context__ is None


def test_constructor_errors_never_quote_key_material() -> None:
    key = _key()
    with pytest.raises(KeyringError) as short:
        Keyring({"k1": key[:31]})
    with pytest.raises(KeyringError) as bad_id:
        Keyring({_b64(key): key})  # a key passed where its id belongs

    assert "31 bytes" in str(short.value)
    _assert_no_key_material(str(short.value) + str(bad_id.value), key)
    with pytest.raises(KeyringError, match="at least one key"):
        Keyring({})


def test_repr_shows_key_ids_only() -> None:
    key_a, key_b = _key(), _key()
    keyring = Keyring({"a": key_a, "b": key_b})

    assert repr(keyring) == "Keyring(current='a', key_ids=['a', 'b'])"
    assert str(keyring) == repr(keyring)
    _assert_no_key_material(repr(keyring) + repr(EncryptionCodec(keyring).__dict__), key_a, key_b)
    assert repr(key_a)[2:20] not in repr(EncryptionCodec(keyring).__dict__)


# ---------------------------------------------------------------------- the data converter


async def test_data_converter_is_plain_without_keys_and_encrypts_with_them() -> None:
    assert data_converter(None) is pydantic_data_converter

    converter = data_converter(Keyring({"k1": _key()}))
    encoded = await converter.encode([Reporter(name=NAME, phone=PHONE)])

    assert encoded[0].metadata["encoding"] == ENCODING
    assert await converter.decode(encoded, [Reporter]) == [Reporter(name=NAME, phone=PHONE)]
    # The pydantic converter underneath is untouched for everyone else.
    assert pydantic_data_converter.payload_codec is None


async def test_failure_messages_are_encrypted_too() -> None:
    converter = data_converter(Keyring({"k1": _key()}))
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    failure = Failure()

    await converter.encode_failure(ValueError(f"no such phone: {PHONE}"), failure)

    assert PHONE.encode() not in failure.SerializeToString()
    assert PHONE in str(await converter.decode_failure(failure))


# ---------------------------------------------------------------------- a real incident on a real server


async def test_personal_data_never_reaches_the_server_in_plaintext(
    dev_server_env: WorkflowEnvironment,
) -> None:
    keyring = Keyring({"k-test": _key()})
    client = await Client.connect(
        dev_server_env.client.service_client.config.target_host,
        namespace=dev_server_env.client.namespace,
        data_converter=data_converter(keyring),
    )
    task_queue = f"q-codec-{uuid.uuid4().hex[:8]}"
    incident = make_incident()
    assert incident.reporter is not None
    assert (incident.reporter.name, incident.reporter.phone) == (NAME, PHONE)

    async with build_worker(client, task_queue, RulesSource(), sinks=[MemorySink()]):
        reported = await report_incident(client, task_queue, incident)
        await send_command(client, incident.incident_id, Accept(unit_id=incident.location.grid_id))
        state = await incident_state(client, incident.incident_id)

    assert state.status == "accepted"
    assert state.holder_unit == incident.location.grid_id

    # The history as the server stores it, read by a client that has no keys.
    history = await dev_server_env.client.get_workflow_handle(
        incident.workflow_id, run_id=reported.run_id
    ).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    for secret in (NAME, PHONE):
        assert secret.encode() not in raw
        assert secret.encode("utf-16-le") not in raw
    assert incident.title.encode() not in raw  # the whole input is encrypted, not just the reporter

    started = history.events[0].workflow_execution_started_event_attributes
    (payload,) = started.input.payloads
    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID_METADATA] == b"k-test"
    updates = [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args.payloads
        for event in history.events
        if event.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert updates
    assert all(p.metadata["encoding"] == ENCODING for payloads in updates for p in payloads)

    # With the key, the same history gives the reporter back.
    (decoded,) = await client.data_converter.decode([payload], [IncidentInput])
    assert decoded.incident.reporter == incident.reporter
    # Without it, the plain converter cannot make an incident of the ciphertext.
    with pytest.raises(Exception):  # noqa: B017 - any failure will do; what matters is no plaintext
        await dev_server_env.client.data_converter.decode([payload], [IncidentInput])

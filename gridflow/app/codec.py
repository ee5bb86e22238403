"""Payload encryption: AES-256-GCM over every Temporal payload, with a keyring for rotation.

Incident workflows carry residents' personal data (reporter name and phone). Temporal stores every
workflow input, update, result and activity argument in its history, so gridflow encrypts the payloads
before they leave the process: the Temporal service, its database and anyone reading history without a
key see only ciphertext. The Web UI and CLI read it through the codec server (gridflow.app.codec_server).

An encrypted payload keeps the shape of the Temporal samples' encryption codec, so any tooling that
knows that shape can read it:

    metadata: encoding = binary/encrypted, encryption-key-id = <key id>
    data:     12-byte nonce + AES-GCM ciphertext (with its 16-byte tag) of the serialized inner Payload

Keys come from GRIDFLOW_CODEC_KEYS, `id:base64key` entries separated by commas, the current key first:

    GRIDFLOW_CODEC_KEYS="k2026b:<new key>,k2026a:<old key>"

The current key encrypts; every key decrypts, so adding a key never strands old histories. Retire a key
only once no open incident (and no history you still need to read) was written with it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

#: The environment variable holding the keyring.
KEYS_ENV = "GRIDFLOW_CODEC_KEYS"

#: The `encoding` metadata of an encrypted payload.
ENCODING = b"binary/encrypted"

#: The metadata entry naming the key that encrypted a payload.
KEY_ID_METADATA = "encryption-key-id"

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce; random per payload, so a key must not encrypt ~2**32 payloads
_TAG_BYTES = 16

# Key ids go into every payload's metadata and into error messages and logs, so they are kept to a
# short, printable alphabet that cannot be confused with key material's separators.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_BASE64_URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class KeyringError(ValueError):
    """The keyring configuration is unusable. The message never contains key material."""


class CodecError(Exception):
    """A payload could not be decrypted. The message never contains key material."""


class UnknownKeyError(CodecError):
    """A payload was encrypted with a key this keyring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"payload was encrypted with key id {key_id!r}, which is not in the keyring "
            f"({KEYS_ENV}); add that key (it need not be the current one) to read it"
        )
        self.key_id = key_id


class Keyring:
    """An ordered set of named AES-256 keys: the current one encrypts, all of them decrypt.

    `repr()` shows the key ids only; the key bytes are held inside the ciphers and never shown.
    """

    __slots__ = ("_ciphers", "_current")

    def __init__(self, keys: Mapping[str, bytes], current: str | None = None) -> None:
        """Keys by id, in order; `current` (default: the first) encrypts new payloads."""
        if not keys:
            raise KeyringError("a keyring needs at least one key")
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            _check_key_id(key_id)
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
            ciphers[key_id] = AESGCM(bytes(key))
        chosen = current if current is not None else next(iter(ciphers))
        if chosen not in ciphers:
            raise KeyringError(f"current key id {chosen!r} is not one of the keyring's keys")
        self._ciphers = ciphers
        self._current = chosen

    @classmethod
    def parse(cls, text: str, *, source: str = KEYS_ENV) -> Keyring:
        """A keyring from `id:base64key` entries separated by commas, the current key first.

        Errors name the entry's position (and its id once that is known to be a valid id), never the
        key or anything else from a malformed entry, which might be a key pasted in the wrong place.
        """
        keys: dict[str, bytes] = {}
        entries = [entry.strip() for entry in text.split(",")]
        if all(not entry for entry in entries):
            raise KeyringError(f"{source} holds no keys; expected id:base64key[,id:base64key...]")
        for position, entry in enumerate(entries, start=1):
            if not entry:
                raise KeyringError(f"{source}: entry {position} is empty")
            key_id, sep, encoded = (part.strip() for part in entry.partition(":"))
            if not sep:
                raise KeyringError(f"{source}: entry {position} is not in the form id:base64key")
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(
                    f"{source}: entry {position} has an invalid key id (1-64 of A-Z a-z 0-9 . _ -, "
                    "starting with a letter or digit)"
                )
            if key_id in keys:
                raise KeyringError(f"{source}: key id {key_id!r} appears more than once")
            key = _decode_base64(encoded)
            if key is None:
                raise KeyringError(f"{source}: key {key_id!r} is not valid base64")
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"{source}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES} "
                    "(make one with `gridflow codec keygen`)"
                )
            keys[key_id] = key
        return cls(keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring | None:
        """The keyring in GRIDFLOW_CODEC_KEYS, or None when it is unset or empty (no encryption)."""
        text = (os.environ if environ is None else environ).get(KEYS_ENV, "")
        return cls.parse(text) if text.strip() else None

    def rotated(self, key_id: str, key: bytes) -> Keyring:
        """A new keyring with `key` added as the current key; the others stay for decryption."""
        if key_id in self._ciphers:
            raise KeyringError(f"key id {key_id!r} is already in the keyring")
        rotated = Keyring({key_id: key})
        rotated._ciphers.update(self._ciphers)
        return rotated

    @property
    def current_id(self) -> str:
        """The id of the key that encrypts new payloads."""
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, in order."""
        return tuple(self._ciphers)

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """Encrypt with the current key: (key id, nonce + ciphertext)."""
        nonce = os.urandom(NONCE_BYTES)
        return self._current, nonce + self._ciphers[self._current].encrypt(nonce, plaintext, None)

    def decrypt(self, key_id: str, data: bytes) -> bytes:
        """Decrypt nonce + ciphertext written with the key `key_id`."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(key_id)
        if len(data) < NONCE_BYTES + _TAG_BYTES:
            raise CodecError(f"payload encrypted with key id {key_id!r} is too short to be ciphertext")
        try:
            return cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
        except InvalidTag:
            # Same id, different key (a key replaced under an old id), or altered data: either way the
            # payload cannot be trusted, and GCM cannot tell which.
            raise CodecError(
                f"payload encrypted with key id {key_id!r} failed authentication: the key under that "
                "id is not the one that encrypted it, or the payload was altered"
            ) from None

    def __repr__(self) -> str:
        return f"Keyring(current={self._current!r}, key_ids={list(self._ciphers)!r})"

    __str__ = __repr__


def _check_key_id(key_id: str) -> None:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        # The bad id itself is not echoed: it may be key material passed in the wrong argument.
        raise KeyringError("invalid key id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)")


def _decode_base64(text: str) -> bytes | None:
    """Standard or URL-safe base64, padded or not; None when it is neither."""
    unpadded = text.rstrip("=")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    try:
        if _BASE64.fullmatch(text):
            return base64.b64decode(padded, validate=True)
        if _BASE64_URL.fullmatch(text):
            return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return None
    return None


def generate_key() -> str:
    """A new random AES-256 key, base64-encoded, for an `id:key` entry of GRIDFLOW_CODEC_KEYS."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload with the keyring's current key; decrypts with the key each one names.

    Payloads that are not encrypted pass through decode unchanged, so histories written before
    encryption was switched on (and the replay tests' recorded histories) stay readable.
    """

    def __init__(self, keyring: Keyring) -> None:
        """A codec over `keyring`."""
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload, whole (metadata included: it names the pydantic type)."""
        encoded: list[Payload] = []
        for payload in payloads:
            key_id, data = self.keyring.encrypt(payload.SerializeToString())
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode("ascii")},
                    data=data,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt the encrypted payloads; return the others as they are."""
        decoded: list[Payload] = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            raw_id = payload.metadata.get(KEY_ID_METADATA)
            if not raw_id:
                raise CodecError(f"encrypted payload carries no {KEY_ID_METADATA} metadata")
            key_id = raw_id.decode("utf-8", errors="replace")
            decoded.append(Payload.FromString(self.keyring.decrypt(key_id, payload.data)))
        return decoded


def data_converter(keyring: Keyring | None) -> DataConverter:
    """gridflow's data converter: pydantic payloads, encrypted when there is a keyring.

    With a keyring, failure messages and stack traces are encrypted too (moved into the failure's
    encoded attributes): an exception's text can quote the data it failed on, a validation error
    quotes the input, and that may be a resident's name or phone. Clients and workers with the codec
    still see the full message; the Web UI shows it through the codec server.
    """
    if keyring is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )

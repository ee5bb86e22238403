"""CLI handlers for the Kafka side: the bridge, publishing events, dead letters, the codec server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from events.cloudevents import EventRejected, InboundEvent, encode_binary, encode_structured, make_event
from events.dead_letters import DeadLetterRecord, read_dead_letters, replay_dead_letters
from events.kafka import make_producer
from gridflow.app.codec import Keyring, generate_key
from gridflow.app.codec_server import serve_codec
from gridflow.app.compose import run_bridge, stop_on_signals
from gridflow.app.settings import Settings, revealed

INCIDENT_EVENT_PREFIX = "gridflow.incident."


async def bridge(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow bridge`: consume the incidents topic until SIGINT/SIGTERM."""
    await run_bridge(settings, stop_on_signals())
    return 0


def _documents(source: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    stripped = text.strip()
    if stripped.startswith("["):
        loaded = json.loads(stripped)
        return list(loaded)
    if stripped.startswith("{") and "\n{" not in stripped:
        return [json.loads(stripped)]
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def _as_event(document: dict[str, Any], default_type: str | None, source: str) -> InboundEvent:
    """A CloudEvent envelope is sent as it is; plain data is wrapped (its type from --type, or reported)."""
    if "specversion" in document:
        return make_event(
            str(document.get("type")),
            document.get("data") or {},
            source=str(document.get("source") or source),
            id=document.get("id"),
        )
    event_type = default_type or "reported"
    if not event_type.startswith(INCIDENT_EVENT_PREFIX):
        event_type = f"{INCIDENT_EVENT_PREFIX}{event_type}.v1"
    return make_event(event_type, document, source=source)


def publish(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow publish FILE|-`: send events (JSON, a JSON array, or JSON lines) to the incidents topic."""
    documents = _documents(args.file)
    events = []
    for number, document in enumerate(documents, start=1):
        try:
            events.append(_as_event(document, args.type, args.source))
        except EventRejected as rejected:
            print(f"{args.file}: event {number}: {rejected.error_type}: {rejected.message}", file=sys.stderr)
            return 1
    producer = make_producer(settings)
    try:
        encode = encode_binary if args.binary else encode_structured
        futures = []
        for event in events:
            key, value, headers = encode(event)
            futures.append(producer.send(settings.incidents_topic, key=key, value=value, headers=headers))
        for event, future in zip(events, futures, strict=True):
            metadata = future.get(30)
            print(
                f"{event.type} {event.incident_id} -> {metadata.topic}/{metadata.partition}@{metadata.offset}"
            )
    finally:
        producer.close(10)
    print(f"published {len(events)} event(s) to {settings.incidents_topic}", file=sys.stderr)
    return 0


def _letter_line(letter: DeadLetterRecord) -> str:
    key = letter.key.decode("utf-8", "replace") if letter.key else "-"
    size = len(letter.value) if letter.value else 0
    where = f"{letter.partition}/{letter.offset}"
    return f"{where}  {letter.error_type:<24} key={key}  {size} bytes  {letter.error_message}"


def dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow dlq list`: every dead letter with its reason."""
    letters = [
        letter for letter in read_dead_letters(settings) if not args.type or letter.error_type == args.type
    ]
    if args.json:
        for letter in letters:
            print(
                json.dumps(
                    {
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "key": letter.key.decode("utf-8", "replace") if letter.key else None,
                        "error_type": letter.error_type,
                        "error_message": letter.error_message,
                        "value": letter.value.decode("utf-8", "replace") if letter.value else None,
                    }
                )
            )
    else:
        for letter in letters:
            print(_letter_line(letter))
    print(f"{len(letters)} dead letter(s) in {settings.dlq_topic}", file=sys.stderr)
    return 0


def dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow dlq replay`: put dead letters back on the incidents topic (after a fix)."""
    replayed = replay_dead_letters(
        settings, select=lambda letter: not args.type or letter.error_type == args.type
    )
    for letter in replayed:
        print(f"replayed {_letter_line(letter)}")
    print(f"{len(replayed)} dead letter(s) put back on {settings.incidents_topic}", file=sys.stderr)
    return 0


def codec_keygen(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow codec keygen --id ID`: print a new key entry for GRIDFLOW_CODEC_KEYS."""
    print(f"{args.id}:{generate_key()}")
    return 0


async def codec_server(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow codec-server`: decrypt payloads for the Temporal Web UI and CLI."""
    keys = revealed(settings.codec_keys)
    if not keys:
        print("GRIDFLOW_CODEC_KEYS is not set: the codec server needs the keys", file=sys.stderr)
        return 1
    await serve_codec(
        Keyring.parse(keys),
        args.host,
        args.port,
        args.cors_origin,
        revealed(settings.codec_server_token),
        stop=stop_on_signals(),
    )
    return 0

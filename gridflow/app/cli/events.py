"""The event contract on Kafka: `gridflow publish`, `dlq list|replay` and `schema export`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from events.cloudevents import EventRejected, InboundEvent, encode_binary, encode_structured, make_event
from events.dead_letters import DeadLetterRecord, read_dead_letters, replay_dead_letters
from events.kafka import make_producer
from events.schema import export_schemas
from gridflow.app.cli.inputs import Document, InputError, read_documents
from gridflow.app.cli.shared import EXIT_OK, KAFKA, add_command, add_group, kafka_errors, reach_kafka
from gridflow.app.settings import Settings

INCIDENT_EVENT_PREFIX = "gridflow.incident."


def _as_event(document: Document, default_type: str | None, source: str) -> InboundEvent:
    """A CloudEvent envelope is sent as it is; plain data is wrapped (its type from --type, or reported)."""
    if document.is_envelope:
        envelope = document.value
        return make_event(
            str(envelope.get("type")),
            document.data,
            source=str(envelope.get("source") or source),
            id=envelope.get("id"),
        )
    event_type = default_type or "reported"
    if not event_type.startswith(INCIDENT_EVENT_PREFIX):
        event_type = f"{INCIDENT_EVENT_PREFIX}{event_type}.v1"
    return make_event(event_type, document.data, source=source)


def publish(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow publish FILE|-`: send events (JSON, a JSON array, or JSON lines) to the incidents topic."""
    events = []
    for document in read_documents(args.file):
        try:
            events.append(_as_event(document, args.type, args.source))
        except EventRejected as rejected:
            # Nothing is sent unless every event is good: a half-published file is hard to resume.
            raise InputError(f"{document.where}: {rejected.error_type}: {rejected.message}") from None
    reach_kafka(settings)
    with kafka_errors(settings):
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
                    f"{event.type} {event.incident_id} -> "
                    f"{metadata.topic}/{metadata.partition}@{metadata.offset}"
                )
        finally:
            producer.close(10)
    print(f"published {len(events)} event(s) to {settings.incidents_topic}", file=sys.stderr)
    return EXIT_OK


def _letter_line(letter: DeadLetterRecord) -> str:
    key = letter.key.decode("utf-8", "replace") if letter.key else "-"
    size = len(letter.value) if letter.value else 0
    where = f"{letter.partition}/{letter.offset}"
    return f"{where}  {letter.error_type:<24} key={key}  {size} bytes  {letter.error_message}"


def dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow dlq list`: every dead letter with its reason."""
    reach_kafka(settings)
    with kafka_errors(settings):
        letters = [
            letter
            for letter in read_dead_letters(settings)
            if not args.type or letter.error_type == args.type
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
    return EXIT_OK


def dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow dlq replay`: put dead letters back on the incidents topic (after a fix)."""
    reach_kafka(settings)
    with kafka_errors(settings):
        replayed = replay_dead_letters(
            settings, select=lambda letter: not args.type or letter.error_type == args.type
        )
    for letter in replayed:
        print(f"replayed {_letter_line(letter)}")
    print(f"{len(replayed)} dead letter(s) put back on {settings.incidents_topic}", file=sys.stderr)
    return EXIT_OK


def schema_export(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow schema export DIR`: the JSON Schemas and the AsyncAPI document, one path a line."""
    for path in export_schemas(Path(args.dir)):
        print(path)
    return EXIT_OK


def add_publish(commands: Any) -> None:
    """`gridflow publish`."""
    parser = add_command(
        commands,
        "publish",
        publish,
        "publish incident events to Kafka",
        "Publish events from FILE (a JSON object, a JSON array, or JSON lines; - for standard input) to\n"
        "the incidents topic, keyed by incident id. CloudEvent envelopes are sent as they are; plain data\n"
        "is wrapped in a CloudEvent of --type (default reported).",
        [KAFKA],
        one_shot=True,
    )
    parser.add_argument("file", metavar="FILE", help="the events, or - for standard input")
    parser.add_argument(
        "--type", metavar="TYPE", help="for plain data: reported, accepted, ... or a full type name"
    )
    parser.add_argument("--source", default="gridflow-cli", help="the CloudEvents source (gridflow-cli)")
    parser.add_argument("--binary", action="store_true", help="use the binary binding (ce_* headers)")


def add_dlq(commands: Any) -> None:
    """`gridflow dlq list|replay`."""
    dlq = add_group(commands, "dlq", "list and replay dead letters", "The dead-letter topic.")
    listing = add_command(
        dlq,
        "list",
        dlq_list,
        "list dead letters",
        "List every dead letter with its reason.",
        [KAFKA],
        one_shot=True,
    )
    listing.add_argument("--type", metavar="ERROR_TYPE", help="only this gridflow.error.type")
    listing.add_argument("--json", action="store_true", help="one JSON object per line, with the value")
    add_command(
        dlq,
        "replay",
        dlq_replay,
        "put dead letters back on the incidents topic",
        "Publish dead letters back to the incidents topic with their original key, value and headers\n"
        "(after a fix). Events already applied are not applied again.",
        [KAFKA],
        one_shot=True,
    ).add_argument("--type", metavar="ERROR_TYPE", help="only this gridflow.error.type")


def add_schema(commands: Any) -> None:
    """`gridflow schema export`."""
    schema = add_group(commands, "schema", "the event contract's schemas", "The event contract's documents.")
    add_command(
        schema,
        "export",
        schema_export,
        "write the JSON Schemas and AsyncAPI document",
        "Write the JSON Schema of every event's data, the CloudEvents envelope and the AsyncAPI 3.0\n"
        "document into DIR (created if needed); the output is stable, to commit and diff.",
        one_shot=True,
    ).add_argument("dir", metavar="DIR", help="the directory to write into")

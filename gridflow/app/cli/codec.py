"""Payload encryption: `gridflow codec keygen` and `codec-server` (decrypting for the Web UI and CLI)."""

from __future__ import annotations

import argparse
from typing import Any

from gridflow.app.cli.shared import EXIT_OK, add_command, add_group, fail
from gridflow.app.codec import Keyring, generate_key
from gridflow.app.codec_server import DEFAULT_CORS_ORIGIN, serve_codec
from gridflow.app.compose import stop_on_signals
from gridflow.app.settings import Settings, env_name, revealed


def keygen(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow codec keygen --id ID`: print a new key entry for GRIDFLOW_CODEC_KEYS."""
    print(f"{args.id}:{generate_key()}")
    return EXIT_OK


async def codec_server(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow codec-server`: decrypt payloads for the Temporal Web UI and CLI."""
    keys = revealed(settings.codec_keys)
    if not keys:
        fail(
            f"{env_name('codec_keys')} is not set: the codec server needs the keys "
            "(make one with `gridflow codec keygen --id k1`)"
        )
    await serve_codec(
        Keyring.parse(keys),
        args.host,
        args.port,
        args.cors_origin,
        revealed(settings.codec_server_token),
        stop=stop_on_signals(),
    )
    return EXIT_OK


def add_codec(commands: Any) -> None:
    """`gridflow codec keygen`."""
    codec = add_group(commands, "codec", "payload encryption keys", "Keys that encrypt incident payloads.")
    add_command(
        codec,
        "keygen",
        keygen,
        "print a new key entry",
        "Print a new id:base64key entry for GRIDFLOW_CODEC_KEYS. Put it first to make it current; keep\n"
        "the old keys after it so existing histories stay readable.",
        one_shot=True,
    ).add_argument("--id", required=True, help="the key id (e.g. k2026a)")


def add_codec_server(commands: Any) -> None:
    """`gridflow codec-server`."""
    server = add_command(
        commands,
        "codec-server",
        codec_server,
        "decrypt payloads for the Temporal Web UI and CLI",
        "Serve the Temporal codec protocol (POST /encode, /decode) with GRIDFLOW_CODEC_KEYS;\n"
        "GRIDFLOW_CODEC_SERVER_TOKEN, if set, is required in Authorization.",
    )
    server.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    server.add_argument("--port", type=int, default=8081, help="listen port (8081)")
    server.add_argument(
        "--cors-origin", default=DEFAULT_CORS_ORIGIN, help="Web UI origin(s), comma-separated"
    )

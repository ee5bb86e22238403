"""The long-running processes: `gridflow dev` (everything on this machine), `worker` and `bridge`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gridflow.app.cli.shared import (
    EXIT_OK,
    KAFKA,
    RULES,
    TEMPORAL,
    TEMPORAL_LOCAL,
    add_command,
    kafka_errors,
    metrics_port_errors,
    reach_kafka,
    refuse_without_keys,
    temporal_errors,
)
from gridflow.app.compose import run_bridge, run_worker, stop_on_signals
from gridflow.app.devstack import DevStack, demo_name, demo_rules, run_demo
from gridflow.app.live_view import watch_live
from gridflow.app.logs import configure_logging
from gridflow.app.settings import Settings

#: The dev stack's full log, in its state directory.
DEV_LOG = "gridflow.log"


async def dev(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow dev [--demo]`: the embedded dev stack until Ctrl-C, with a live view on a terminal.

    Every log line goes to STATE_DIR/gridflow.log as JSON; on a terminal the live view has the screen
    and only warnings and errors are printed above it, elsewhere (or with --no-live) the log lines are.
    """
    state_dir = Path(args.state_dir)
    live = args.live and sys.stdout.isatty()
    log_file = state_dir / DEV_LOG
    configure_logging(
        settings.log_format,
        settings.log_level,
        # The live view has the terminal: gridflow's warnings above it, the libraries' only if errors.
        stream_level="warning" if live else None,
        libraries_on_stream="error" if live else None,
        file=log_file,
    )
    stack = DevStack(
        settings,
        state_dir=Path(args.state_dir),
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        kafka_port=args.kafka_port,
        codec_port=args.codec_port,
        metrics_port=settings.metrics_port,
        prometheus_port=args.prometheus_port if args.prometheus else None,
        rules=demo_rules() if args.demo else None,
        demo=run_demo if args.demo else None,
        log_file=log_file,
    )
    view = watch_live(stack, demo_name if args.demo else str) if live else None

    def ready(up: DevStack) -> None:
        print(up.banner(), flush=True)
        if view is not None:
            view.shown.set()

    await stack.serve(stop_on_signals(), on_ready=ready)
    return EXIT_OK


async def worker(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow worker`: run incident workflows on the task queue until SIGINT or SIGTERM."""
    refuse_without_keys(settings, "gridflow worker")
    # The worker publishes every step to Kafka: a missing broker is said in seconds, not after 30.
    await asyncio.to_thread(reach_kafka, settings)
    with temporal_errors(settings), kafka_errors(settings), metrics_port_errors(settings):
        await run_worker(settings, stop_on_signals())
    return EXIT_OK


async def bridge(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow bridge`: consume the incidents topic until SIGINT or SIGTERM."""
    refuse_without_keys(settings, "gridflow bridge")
    # Temporal may be down when a bridge starts (its client is lazy); Kafka must answer.
    await asyncio.to_thread(reach_kafka, settings)
    with kafka_errors(settings), metrics_port_errors(settings):
        await run_bridge(settings, stop_on_signals())
    return EXIT_OK


def add_dev(commands: Any) -> None:
    """`gridflow dev`."""
    parser = add_command(
        commands,
        "dev",
        dev,
        "run everything on this machine",
        "Run the embedded dev stack: a Temporal dev server (state in STATE_DIR/temporal.db), a Tansu\n"
        "Kafka-API broker (in memory) and the worker; with --demo, also a demo that reports incidents and\n"
        "plays the handlers on the demo rules (limits of seconds). On a terminal, a live view shows the\n"
        "incidents in play, each step in words and the rates; elsewhere (or --no-live), log lines.\n"
        "Every log line also goes to STATE_DIR/gridflow.log (JSON); the servers' logs to STATE_DIR.\n"
        "Payloads are encrypted: with GRIDFLOW_CODEC_KEYS, or else a key made on the first start in\n"
        "STATE_DIR/codec.keys (kept for later starts); a codec server on 127.0.0.1 lets the Web UI\n"
        "show them decrypted. Ctrl-C stops everything.",
        [TEMPORAL_LOCAL, RULES],
    )
    parser.add_argument("--demo", action=argparse.BooleanOptionalAction, default=False, help="run the demo")
    parser.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on a terminal, a live view of the incidents, their steps and the rates instead of log lines "
        "(default: yes; never when the output is not a terminal)",
    )
    parser.add_argument(
        "--state-dir", default=".gridflow", metavar="DIR", help="state and logs (default .gridflow)"
    )
    parser.add_argument(
        "--temporal-port", type=int, default=7233, metavar="PORT", help="Temporal gRPC (7233)"
    )
    parser.add_argument("--ui-port", type=int, default=8233, metavar="PORT", help="Temporal Web UI (8233)")
    parser.add_argument("--kafka-port", type=int, default=9092, metavar="PORT", help="Kafka broker (9092)")
    parser.add_argument(
        "--codec-port",
        type=int,
        default=8081,
        metavar="PORT",
        help="the codec server that decrypts payloads for the Web UI (8081)",
    )
    parser.add_argument(
        "--prometheus",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start Prometheus with gridflow's rules when it is installed (default: yes)",
    )
    parser.add_argument("--prometheus-port", type=int, default=9090, metavar="PORT", help="Prometheus (9090)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=argparse.SUPPRESS,
        metavar="PORT",
        help="metrics (GRIDFLOW_METRICS_PORT)",
    )
    parser.set_defaults(core_logs=True)


def add_worker(commands: Any) -> None:
    """`gridflow worker`."""
    add_command(
        commands,
        "worker",
        worker,
        "run a worker",
        "Run a worker for incident workflows on the task queue until SIGINT or SIGTERM.\n"
        "The rules file is re-read when it changes. Payloads are encrypted with GRIDFLOW_CODEC_KEYS;\n"
        "without them it refuses to start (GRIDFLOW_ALLOW_PLAINTEXT=true: tests and experiments only).",
        [TEMPORAL, KAFKA, RULES],
    ).set_defaults(core_logs=True)


def add_bridge(commands: Any) -> None:
    """`gridflow bridge`."""
    add_command(
        commands,
        "bridge",
        bridge,
        "run a Kafka -> Temporal bridge",
        "Consume the incidents topic in the consumer group and turn events into workflow starts and\n"
        "updates; unusable messages go to the dead-letter topic. Serves metrics on GRIDFLOW_METRICS_PORT\n"
        "(give each process its own). Stops cleanly on SIGINT or SIGTERM. Payloads are encrypted with\n"
        "GRIDFLOW_CODEC_KEYS; without them it refuses to start (GRIDFLOW_ALLOW_PLAINTEXT=true: tests\n"
        "and experiments only).",
        [TEMPORAL, KAFKA],
    ).set_defaults(core_logs=True)

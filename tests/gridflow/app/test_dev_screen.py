"""The first minute, as a newcomer sees it: `gridflow dev --demo` on a terminal (a pseudo-terminal read
through a VT100 screen) shows the loop moving on one screen, not log lines."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import signal
import struct
import sys
import termios
from pathlib import Path

import pyte

from tests.gridflow.app.test_devstack import free_ports

COLUMNS, ROWS = 150, 45
#: What kafka-python says when it is allowed to chatter (its logger names, its connection steps).
KAFKA_CHATTER = re.compile(
    r"kafka\.(conn|client|cluster|net|producer|consumer|coordinator)"
    r"|Attempting bootstrap|IO loop|Broker version"
)


class Terminal:
    """A pseudo-terminal of COLUMNS x ROWS whose output is kept raw and drawn on a pyte screen."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.changed = asyncio.Event()

    def start_reading(self) -> None:
        os.close(self.slave)
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the other side closed: the process ended
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
            return
        self.raw += data
        self.stream.feed(data)
        self.changed.set()

    async def wait_for(self, text: str) -> None:
        """Return once `text` has been written to the terminal."""
        while text.encode() not in self.raw:
            self.changed.clear()
            await self.changed.wait()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


async def test_the_dev_stack_on_a_terminal_shows_the_demos_loop_within_a_minute(tmp_path: Path) -> None:
    temporal, ui, kafka, metrics, prometheus, codec = free_ports(6)
    terminal = Terminal()
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES", "NO_COLOR")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridflow.app.cli",
        "dev",
        "--demo",
        "--state-dir",
        str(tmp_path / "state"),
        "--temporal-port",
        str(temporal),
        "--ui-port",
        str(ui),
        "--kafka-port",
        str(kafka),
        "--metrics-port",
        str(metrics),
        "--prometheus-port",
        str(prometheus),
        "--codec-port",
        str(codec),
        stdin=terminal.slave,
        stdout=terminal.slave,
        stderr=terminal.slave,
        env={**env, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    terminal.start_reading()
    try:
        async with asyncio.timeout(60):
            await terminal.wait_for("Ctrl-C stops")  # the banner is out and the view is drawn
        await asyncio.sleep(60)
        screen = terminal.text()
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        await asyncio.sleep(0.5)  # the last output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        terminal.close()
    output = terminal.raw.decode(errors="replace")

    # The stack's addresses stay on screen, above the view.
    assert f"Temporal UI http://127.0.0.1:{ui}" in screen, screen
    assert f"Kafka 127.0.0.1:{kafka}" in screen and f"http://127.0.0.1:{metrics}/metrics" in screen, screen
    # The panel lists the demo's incidents, with their levels and deadlines.
    for name in ("lamp", "elevator", "noise", "drain"):
        assert re.search(rf"\b{name}-\d+\b", screen), (name, screen)
    assert re.search(r"\bin \d+s\b|\d+s over\b", screen), screen
    # An escalation, a closure and a reopening in words.
    assert re.search(r"climbed (grid|street|district) → (street|district|city): ", screen), screen
    assert "closed: resolved" in screen or re.search(r" closed at \w+: resolved", screen), screen
    reopened = re.search(r"(\d+) reopened", screen)
    assert reopened and int(reopened[1]) >= 1, screen
    # The rates are numbers.
    for rate in ("response", "resolution", "satisfaction", "containment at grid"):
        assert re.search(rf"{rate} \d+%", screen), (rate, screen)
    # No library chatter, no traceback, a clean stop.
    assert not KAFKA_CHATTER.search(output), KAFKA_CHATTER.search(output)
    assert "Traceback" not in output
    assert code == 0, output[-2000:]
    # Every line went to the full log meanwhile.
    log = (tmp_path / "state" / "gridflow.log").read_text()
    assert '"event": "incident escalated"' in log and '"incident_level": "street"' in log

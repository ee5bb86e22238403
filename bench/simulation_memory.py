"""Peak RSS of `gridflow simulate` on a stream, in a fresh process (`python -m bench.simulation_memory`).

Why a process in between: on Linux a child that is forked (or vforked) and then execs inherits its
parent's high-water RSS in its `ru_maxrss` (the kernel keeps the old address space's peak at exec). A
`gridflow simulate` started straight from the benchmark, which has run servers and simulations of its
own, would report the benchmark's peak if it was higher. This small process starts it instead, so the
inherited part is only this interpreter's (about 10 MiB), and reads the peak from the kernel's
accounting of that one child (wait4). While it waits it also reads the child's VmHWM from
/proc/PID/status (per address space, so nothing inherited), as a cross-check: the last reading before
the child exits, so at most the true peak. It prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def vmhwm_bytes(pid: int) -> int | None:
    """A process's peak RSS so far (VmHWM in /proc/PID/status), or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def gridflow_command() -> list[str]:
    """The virtualenv's `gridflow` entry point (or the same through this interpreter)."""
    entry = Path(sys.executable).with_name("gridflow")
    if entry.exists():
        return [str(entry)]
    return [sys.executable, "-c", "import sys; from gridflow.app.cli import run; sys.exit(run())"]


def main(argv: list[str] | None = None) -> int:
    """Run `gridflow simulate --incidents FILE --no-progress --json OUT` and print what it took."""
    parser = argparse.ArgumentParser(prog="python -m bench.simulation_memory", description=__doc__)
    parser.add_argument("--incidents", type=Path, required=True, help="the stream")
    parser.add_argument("--json", type=Path, required=True, help="where gridflow simulate writes its JSON")
    parser.add_argument("--seconds", type=float, default=1800.0, help="time bound")
    args = parser.parse_args(argv)
    # Built-in rules: a rules file in the environment would make it another benchmark.
    env = {key: value for key, value in os.environ.items() if key != "GRIDFLOW_RULES_FILE"}
    command = [
        *gridflow_command(),
        "simulate",
        "--incidents",
        str(args.incidents),
        "--no-progress",
        "--json",
        str(args.json),
    ]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + args.seconds
    vmhwm: int | None = None
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.kill()
            os.wait4(child.pid, 0)
            child.returncode = -9
            print(f"gridflow simulate did not finish in {args.seconds:.0f} s", file=sys.stderr)
            return 1
        vmhwm = vmhwm_bytes(child.pid) or vmhwm
        time.sleep(0.05)
    wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    print(
        json.dumps(
            {
                "exit_code": child.returncode,
                "peak_rss_bytes": usage.ru_maxrss * 1024,  # KiB on Linux
                "vmhwm_bytes_last_seen": vmhwm,
                "wall_seconds": wall,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

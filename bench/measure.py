"""Measuring a process from outside, for the benchmark scripts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def high_water_kib(pid: int) -> int:
    """The process's own peak RSS (VmHWM). Not ru_maxrss: that also counts the parent's
    memory at fork time, which here holds a 64 MiB buffer."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1])


def run_measured(argv: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """Run ``argv`` with its output in ``log``; returns (exit code, wall seconds, peak RSS MiB)
    polling its own high-water mark every 0.1 s."""
    start = time.monotonic()
    peak = 0
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            peak = max(peak, high_water_kib(proc.pid))
            time.sleep(0.1)
    return proc.returncode, time.monotonic() - start, peak / 1024

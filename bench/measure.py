"""Running stackferry from outside and measuring it, for the benchmark scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devcloud.layout import DESTINATION, SOURCE


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


def stackferry(
    command: str, clouds_yaml: Path, project: str, workdir: Path, *extra: str
) -> dict[str, Any]:
    """``stackferry COMMAND`` (migrate, sync) of ``project`` from the lab's source to its
    destination, in a process of its own: wall seconds, its peak RSS (MiB) and the report of
    its last apply."""
    argv = [sys.executable, "-m", "stackferry.cli", command, "--src", SOURCE.name,
            "--dst", DESTINATION.name, "--project", project, "--workdir", str(workdir),
            "-q", *extra]  # fmt: skip
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml))
    log = workdir.with_name(f"{workdir.name}.{command}.log")
    code, wall, rss_mib = run_measured(argv, env, log)
    if code != 0:
        sys.exit(f"{command} failed (exit {code}):\n{log.read_text()}")
    report = json.loads(sorted((workdir / "reports").glob("apply-*.json"))[-1].read_text())
    return {"wall": wall, "rss_mib": rss_mib, "report": report}


def migrate(clouds_yaml: Path, project: str, workdir: Path, *extra: str) -> dict[str, Any]:
    return stackferry("migrate", clouds_yaml, project, workdir, *extra)


def api_calls(report: dict[str, Any]) -> str:
    """An apply report's API calls, on one line: cloud, service, method and count."""
    return ", ".join(
        f"{c['cloud']} {c['service']} {c['method']} {c['calls']}" for c in report["api_calls"]
    )


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / (1024 * 1024):8.1f} MiB/s" if seconds else "       - MiB/s"

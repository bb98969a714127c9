"""The lab's process table: every process the lab starts, recorded by PID, stopped by PID.

Each service runs in its own session (process group), so stopping its group stops its workers
too and nothing else. A PID is only trusted while its start time still matches the one recorded,
so a PID reused by an unrelated process after a reboot is never signalled.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the ")" that closes the command name: state is field 3, starttime field 22.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped: gone for our purposes
        return None
    return int(fields[19])


@dataclass(frozen=True)
class Entry:
    pid: int
    start_ticks: int
    name: str

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks

    def line(self) -> str:
        return f"{self.pid} {self.start_ticks} {self.name}\n"


def identity_of(user: str | None) -> dict[str, Any]:
    """subprocess arguments to run as ``user`` with that user's own groups. ``user=`` alone
    changes only the uid: the process would keep root's groups, and root's group permissions
    (none, on a 0700 folder) would be what it gets."""
    if user is None:
        return {}
    account = pwd.getpwnam(user)
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": os.getgrouplist(user, account.pw_gid),
    }


class ProcessTable:
    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text().splitlines():
            pid, ticks, name = line.split(maxsplit=2)
            entries.append(Entry(int(pid), int(ticks), name))
        return entries

    def running(self, name: str) -> Entry | None:
        for entry in self.entries():
            if entry.name == name and entry.alive():
                return entry
        return None

    def _record(self, entry: Entry) -> None:
        with self.path.open("a") as f:
            f.write(entry.line())

    def start(
        self,
        name: str,
        argv: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> Entry:
        """Start ``argv`` in a new session unless ``name`` already runs; idempotent."""
        existing = self.running(name)
        if existing:
            return existing
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                **identity_of(user),
            )
        ticks = _start_ticks(proc.pid)
        if ticks is None:
            raise RuntimeError(f"{name} exited at once; see {log}")
        entry = Entry(proc.pid, ticks, name)
        self._record(entry)
        return entry

    def stop(
        self,
        names: set[str] | None = None,
        grace: float = 30.0,
        signals: dict[str, signal.Signals] | None = None,
        log: Callable[[str], None] = print,
    ) -> list[str]:
        """Signal each recorded process group (TERM unless ``signals`` says otherwise), newest
        first; KILL what is left after ``grace`` seconds. Returns the names that were running."""
        entries = self.entries()
        chosen = [e for e in entries if names is None or e.name in names]
        live = [e for e in reversed(chosen) if e.alive()]
        for entry in live:
            log(f"stopping {entry.name} (pid {entry.pid})")
            _signal_group(entry.pid, (signals or {}).get(entry.name, signal.SIGTERM))
        if not _wait_gone(live, grace):
            for entry in live:
                if entry.alive():
                    log(f"killing {entry.name} (pid {entry.pid}) after {grace:.0f}s")
                    _signal_group(entry.pid, signal.SIGKILL)
            _wait_gone(live, 10)
        kept = [e for e in entries if e not in chosen]
        self.path.write_text("".join(e.line() for e in kept))
        return [e.name for e in live]


def _wait_gone(entries: list[Entry], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(e.alive() for e in entries):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in one process group (a service and its workers)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total

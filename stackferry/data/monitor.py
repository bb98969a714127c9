"""How transfers report progress: a monitor hands out one meter per transfer.

The engine and the movers only see these two small protocols; the CLI renders them with rich,
tests and library users get the silent default.
"""

from __future__ import annotations

from typing import Protocol


class Meter(Protocol):
    def advance(self, nbytes: int) -> None: ...

    def finish(self, ok: bool) -> None: ...


class Monitor(Protocol):
    def start(self, label: str, total: int | None) -> Meter: ...


class _SilentMeter:
    def advance(self, nbytes: int) -> None:
        pass

    def finish(self, ok: bool) -> None:
        pass


class SilentMonitor:
    def start(self, label: str, total: int | None) -> Meter:
        return _SilentMeter()

"""Dates, steps and the time windows nova is asked about: pure logic, in UTC throughout.

A window is half-open, ``[start, end)``, as nova counts usage (an instance counts when it was
launched before ``end`` and not terminated before ``start``). Steps cut a window at calendar
boundaries (the first of a month, midnight, the full hour), so the first and last step of a
window are as long as the window lets them be: 2024-01-15..2024-03-02 by month is Jan 15-Feb 1,
Feb 1-Mar 1, Mar 1-Mar 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from stackferry.errors import StackferryError

NOVA_TIME = "%Y-%m-%dT%H:%M:%S.%f"  # one of the three forms nova's usage API parses; no zone


class Step(StrEnum):
    MONTH = "month"
    DAY = "day"
    HOUR = "hour"


@dataclass(frozen=True, order=True)
class Window:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def as_dict(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}


def parse_time(text: str, option: str) -> datetime:
    """An operator's date or time: ``2024-01-15``, ``2024-01-15T10:30`` (UTC), or with its
    offset (``...+02:00``, ``...Z``), which is converted to UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise StackferryError(
            f"{option} {text!r} is not a date or time: give e.g. 2024-01-15 or "
            "2024-01-15T10:30 (UTC unless an offset such as +02:00 is given)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor(moment: datetime, step: Step) -> datetime:
    """The calendar boundary at or before ``moment``: the start of its month, day or hour."""
    moment = moment.astimezone(UTC)
    if step is Step.MONTH:
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if step is Step.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def next_boundary(moment: datetime, step: Step) -> datetime:
    """The first calendar boundary after ``moment`` (months of 28 to 31 days, leap years and
    year ends by the calendar, not by a fixed length)."""
    start = floor(moment, step)
    if step is Step.MONTH:
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start.replace(year=year, month=month)
    return start + (timedelta(days=1) if step is Step.DAY else timedelta(hours=1))


def step_windows(window: Window, step: Step) -> list[Window]:
    """``window`` cut at every calendar boundary of ``step`` inside it."""
    cuts: list[Window] = []
    start = window.start
    while start < window.end:
        end = min(next_boundary(start, step), window.end)
        cuts.append(Window(start, end))
        start = end
    return cuts


def clip(window: Window, start: datetime, end: datetime) -> Window | None:
    """The part of ``window`` inside ``[start, end)``; None when nothing is left."""
    lo, hi = max(window.start, start), min(window.end, end)
    return Window(lo, hi) if lo < hi else None


def bucket_label(moment: datetime, step: Step) -> str:
    """How a step is named on the chart: ``2024-02``, ``2024-02-29`` or ``2024-02-29 13:00``."""
    if step is Step.MONTH:
        return f"{moment:%Y-%m}"
    if step is Step.DAY:
        return f"{moment:%Y-%m-%d}"
    return f"{floor(moment, step):%Y-%m-%d %H:00}"


def iso(moment: datetime) -> str:
    """UTC, ISO 8601, with its offset: what the archive's files say."""
    return moment.astimezone(UTC).isoformat()


def nova_time(moment: datetime) -> str:
    """A ``start``/``end`` parameter for nova, which reads a time without a zone as UTC (and
    refuses one with a zone)."""
    return moment.astimezone(UTC).strftime(NOVA_TIME)


def parse_nova_time(text: str | None) -> datetime | None:
    """nova's ``started_at``/``ended_at``: ISO 8601 without a zone, meaning UTC."""
    if not text:
        return None
    value = datetime.fromisoformat(str(text))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

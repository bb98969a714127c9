"""Rendering for the terminal and for --format json; no logic, only presentation.

Text from clouds and users (names, descriptions, error messages) is never read as rich
markup: cells are ``Text`` objects and lines go through ``say``/``warn``, so a name like
``[/]`` is shown as it is."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from stackferry.cloud.connection import CallCounter
from stackferry.engine.apply import Outcome
from stackferry.engine.plan import WRITES, Plan, Step
from stackferry.engine.registry import Registry
from stackferry.engine.run import Verification

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
ACTION_STYLE = {
    "create": "green",
    "update": "yellow",
    "replace": "magenta",
    "delete": "magenta",
    "unchanged": "dim",
    "conflict": "red",
    "blocked": "red",
    "done": "green",
    "failed": "red",
}


def styled(word: str) -> Text:
    return Text(word, style=ACTION_STYLE.get(word, ""))


def say(line: str) -> None:
    """A line for the operator, shown as it is (never parsed as markup)."""
    console.print(Text(line), highlight=False)


def warn(line: str) -> None:
    err_console.print(Text.assemble(("warning: ", "yellow"), line), highlight=False)


def _label(identity: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v['name'] if isinstance(v, dict) and 'name' in v else v}"
        for k, v in identity.items()
    )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def plan_table(plan: Plan, show_unchanged: bool = False, only: list[Step] | None = None) -> Table:
    table = Table(title="plan" if only is None else "plan: what cannot be done", show_lines=False)
    for column in ("kind", "resource", "action", "details"):
        table.add_column(column, overflow="fold")
    for step in plan.steps if only is None else only:
        if step.action == "unchanged" and not show_unchanged:
            continue
        details = step.reason or "; ".join(
            f"{f}: {_short(old)} -> {_short(new)}" for f, (old, new) in step.changes.items()
        )
        table.add_row(
            Text(step.resource.kind),
            Text(_label(step.resource.identity)),
            styled(step.action),
            Text(details),
        )
    return table


def plan_summary(plan: Plan) -> str:
    counts = plan.counts()
    return ", ".join(f"{n} {a}" for a, n in counts.items() if n) or "nothing to do"


def plan_json(plan: Plan) -> str:
    return json.dumps(
        {"summary": plan.counts(), "steps": [s.as_dict() for s in plan.steps]},
        indent=2,
        default=str,
    )


def outcome_table(plan: Plan, outcome: Outcome, only_failures: bool = False) -> Table:
    table = Table(title="apply: what did not succeed" if only_failures else "apply")
    for column in ("kind", "resource", "action", "result", "destination ID / error"):
        table.add_column(column, overflow="fold")
    for step in plan.steps:
        state = outcome.state.get(step.key, "?")
        if state == "unchanged" or (only_failures and state == "done"):
            continue
        table.add_row(
            Text(step.resource.kind),
            Text(_label(step.resource.identity)),
            Text(step.action),
            styled(state),
            Text(outcome.error.get(step.key) or outcome.destination_id.get(step.key, "")),
        )
    return table


def verification_text(result: Verification) -> str:
    lines = [
        f"compared {result.compared} resources: "
        + (
            "source and destination are equal"
            if result.equal
            else f"{sum(1 for d in result.differences if d.problem != 'extra')} difference(s)"
        )
    ]
    for d in result.differences:
        lines.append(f"  {d.problem:9} {d.kind} {_label(d.identity)}")
        for name, values in d.fields.items():
            lines.append(
                f"            {name}: source {_short(values['source'])}, "
                f"destination {_short(values['destination'])}"
            )
    lines.append("")
    lines.append("ID map (source -> destination):")
    for entry in result.id_map:
        extra = "".join(
            f"  {k}: {v['source']} -> {v['destination']}"
            for k, v in entry.items()
            if isinstance(v, dict) and "source" in v
        )
        lines.append(
            f"  {entry['kind']} {_label(entry['identity'])}: "
            f"{entry['source_id']} -> {entry['destination_id']}{extra}"
        )
    return "\n".join(lines) + "\n"


def kinds_table(registry: Registry) -> Table:
    table = Table(title="kinds, in the order apply makes them")
    for column in ("kind", "what", "references", "cannot change in place"):
        table.add_column(column, overflow="fold")
    for kind in registry.ordered:
        refs = sorted({r.kind for r in kind.refs} | set(kind.after))
        frozen = sorted(kind.immutable)
        replace = sorted(kind.replaceable)
        note = ", ".join(frozen) + (f" (replaced: {', '.join(replace)})" if replace else "")
        what = kind.description + (" [looked up, never made]" if kind.lookup_only else "")
        table.add_row(Text(kind.plural), Text(what), Text(", ".join(refs)), Text(note))
    return table


def calls_table(counter: CallCounter) -> Table:
    table = Table(title="API calls")
    for column in ("cloud", "service", "method", "calls"):
        table.add_column(column)
    for cloud, service, method, n in counter.rows():
        table.add_row(cloud, service, method, str(n))
    return table


class _ByUnit(ProgressColumn):
    """One column, rendered by the task's unit: byte tasks show bytes, rate and ETA (like
    rclone), step tasks show counts and elapsed time."""

    def __init__(self, for_bytes: ProgressColumn, for_steps: ProgressColumn | None) -> None:
        super().__init__()
        self.for_bytes, self.for_steps = for_bytes, for_steps

    def render(self, task: Task) -> Any:
        column = self.for_bytes if task.fields.get("unit") == "bytes" else self.for_steps
        return column.render(task) if column else Text("")


class StepProgress:
    """Live progress of apply: one bar per kind, with errors so far; and, while data moves,
    one bar per transfer plus the total bytes, with rate and ETA."""

    def __init__(self, plan: Plan, quiet: bool, data_bytes: int = 0) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description:<28}", markup=False),  # resource names: not markup
            BarColumn(),
            _ByUnit(DownloadColumn(), MofNCompleteColumn()),
            _ByUnit(TransferSpeedColumn(), None),
            _ByUnit(TimeRemainingColumn(), TimeElapsedColumn()),
            TextColumn("{task.fields[errors]}"),
            console=console,
            disable=quiet,
        )
        self.tasks: dict[str, Any] = {}
        self.errors: dict[str, int] = {}
        for step in plan.steps:
            if step.action in WRITES:
                kind = step.resource.kind
                if kind not in self.tasks:
                    self.tasks[kind] = self.progress.add_task(kind, total=0, errors="")
                    self.errors[kind] = 0
                self.progress.update(
                    self.tasks[kind], total=self.progress.tasks[self.tasks[kind]].total + 1
                )
        self.total: TaskID | None = None
        self.transfers: list[dict[str, Any]] = []  # one record per finished transfer
        if data_bytes:
            self.total = self.progress.add_task(
                "data, all transfers", total=data_bytes, unit="bytes", errors=""
            )

    def __enter__(self) -> StepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, step: Step, state: str) -> None:
        task = self.tasks.get(step.resource.kind)
        if task is None or state == "running":
            return
        if state in ("failed", "blocked"):
            self.errors[step.resource.kind] += 1
            self.progress.update(task, errors=f"[red]{self.errors[step.resource.kind]} failed")
        self.progress.advance(task)

    def start(self, label: str, total: int | None) -> _TransferMeter:
        """The data plane's Monitor: a bar for one transfer, removed when it ends."""
        task = self.progress.add_task(f"  {label}", total=total, unit="bytes", errors="")
        return _TransferMeter(self, task, label)


class _TransferMeter:
    def __init__(self, owner: StepProgress, task: TaskID, label: str) -> None:
        self.owner, self.task, self.label = owner, task, label
        self.bytes, self.started = 0, time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.bytes += nbytes
        self.owner.progress.advance(self.task, nbytes)
        if self.owner.total is not None:
            self.owner.progress.advance(self.owner.total, nbytes)

    def finish(self, ok: bool) -> None:
        seconds = time.monotonic() - self.started
        self.owner.transfers.append(
            {
                "transfer": self.label,
                "ok": ok,
                "bytes": self.bytes,
                "seconds": round(seconds, 3),
                "bytes_per_second": round(self.bytes / seconds) if seconds else None,
            }
        )
        self.owner.progress.remove_task(self.task)

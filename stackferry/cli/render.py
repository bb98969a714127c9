"""Rendering for the terminal and for --format json; no logic, only presentation.

Text from clouds and users (names, descriptions, error messages) is never read as rich
markup: cells are ``Text`` objects and lines go through ``say``/``warn``, so a name like
``[/]`` is shown as it is."""

from __future__ import annotations

import json
import time
from typing import Any

from rich import filesize
from rich.console import Console, Group
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


def size(nbytes: int) -> str:
    """``1.1 GB``: how big a file or a transfer is, for a person."""
    return filesize.decimal(nbytes)


def styled(word: str) -> Text:
    return Text(word, style=ACTION_STYLE.get(word, ""))


def say(line: str) -> None:
    """A line for the operator, shown as it is (never parsed as markup)."""
    console.print(Text(line), highlight=False)


def warn(line: str) -> None:
    err_console.print(Text.assemble(("warning: ", "yellow"), line), highlight=False)


def _label(identity: dict[str, Any]) -> str:
    """An identity as a person reads it: its values in order, references by name, nothing
    for what is not set, a repeated value once ("web0 ingress IPv6 tcp 80")."""
    words: list[str] = []
    for value in identity.values():
        if isinstance(value, dict):
            value = value.get("name", "/".join(str(v) for v in value.values()))
        if value in (None, ""):
            continue
        if not words or words[-1] != str(value):
            words.append(str(value))
    return " ".join(words) or "(unnamed)"


NARROW = 100  # columns below which tables give way to one line per resource


def _lines_wanted(target: Console) -> bool:
    """One line per resource: for a narrow terminal, or when the output is not a terminal
    (a log, a pipe), where folded table cells are unreadable."""
    return target.width < NARROW or not target.is_terminal


def _rows(title: str, rows: list[tuple[str, str, str, str]]) -> Any:
    """A table, or one line per row (``ACTION kind label: details``) where tables fold."""
    if not _lines_wanted(console):
        table = Table(title=title, show_lines=False)
        for column in ("kind", "resource", "action", "details"):
            table.add_column(column, overflow="fold")
        for kind, label, action, details in rows:
            table.add_row(Text(kind), Text(label), styled(action), Text(details))
        return table
    lines = [Text(title, style="bold")] if rows else []
    for kind, label, action, details in rows:
        line = Text.assemble(styled(f"{action:9}"), f" {kind} {label}")
        if details:
            line.append(f": {details}")
        lines.append(line)
    return Group(*lines)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def plan_table(plan: Plan, show_unchanged: bool = False, only: list[Step] | None = None) -> Any:
    rows = []
    for step in plan.steps if only is None else only:
        if step.action == "unchanged" and not show_unchanged:
            continue
        details = step.reason or "; ".join(
            f"{f}: {_short(old)} -> {_short(new)}" for f, (old, new) in step.changes.items()
        )
        rows.append((step.resource.kind, _label(step.resource.identity), str(step.action), details))
    return _rows("plan" if only is None else "plan: what cannot be done", rows)


def plan_summary(plan: Plan) -> str:
    counts = plan.counts()
    return ", ".join(f"{n} {a}" for a, n in counts.items() if n) or "nothing to do"


def plan_json(plan: Plan) -> str:
    return json.dumps(
        {"summary": plan.counts(), "steps": [s.as_dict() for s in plan.steps]},
        indent=2,
        default=str,
    )


def outcome_table(
    plan: Plan, outcome: Outcome, only_failures: bool = False, only: str | None = None
) -> Any:
    """What did not succeed, with the cloud's words; with ``only_failures`` False, also what
    was done (by kind, in ``apply_summary``, unless verbose); ``only``: steps in that state
    (e.g. what a warm pass moved forward)."""
    rows = []
    for step in plan.steps:
        state = outcome.state.get(step.key, "?")
        if only is not None and state != only:
            continue
        if state == "unchanged" or (only_failures and state in ("done", "progressed")):
            continue
        details = outcome.error.get(step.key) or outcome.destination_id.get(step.key, "")
        rows.append((step.resource.kind, _label(step.resource.identity), str(state), details))
    title = "apply: what did not succeed" if only_failures else "apply"
    if only is not None:
        title = f"apply: {only}"
    return _rows(title, rows)


def by_kind(plan: Plan, outcome: Outcome | None = None) -> Any:
    """Per kind, how many resources take each action (or, after apply, ended each way)."""
    words = {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted"}
    counts: dict[str, dict[str, int]] = {}
    for step in plan.steps:
        word = str(step.action)
        if outcome is not None:
            state = str(outcome.state.get(step.key, "?"))
            word = words.get(word, word) if state == "done" else state
        per = counts.setdefault(step.resource.kind, {})
        per[word] = per.get(word, 0) + 1
    order = [*ACTION_STYLE, *words.values()]
    used = [w for w in dict.fromkeys(order) if any(w in c for c in counts.values())]
    table = Table(title="plan, by kind" if outcome is None else "apply, by kind")
    table.add_column("kind")
    for word in used:
        style = ACTION_STYLE.get(word) or ACTION_STYLE.get(
            next((k for k, v in words.items() if v == word), ""), ""
        )
        table.add_column(word, justify="right", style=style)
    for kind, per in counts.items():
        table.add_row(Text(kind), *(str(per.get(w, "")) for w in used))
    return table


def verification_text(result: Verification, with_id_map: bool = True) -> str:
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
    if not with_id_map:
        lines.append(
            f"ID map: {len(result.id_map)} resources, old and new IDs and addresses: in the "
            "report (-v prints it)"
        )
        return "\n".join(lines) + "\n"
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
        if task is None or state == "running" or step.action not in WRITES:
            return  # the bars count the writes the plan has (unchanged ones are not work)
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

"""``stackferry servers migrate`` and ``stackferry hosts drain``: cold migration inside one cloud.

Parsing, live progress, the final table and the JSON report; the decisions are in
:mod:`stackferry.ops.servers` (its rooms: nova, decide, select, runner).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from stackferry.cli import render
from stackferry.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, handles_errors
from stackferry.cloud.connection import CallCounter, connect
from stackferry.files import write_atomic
from stackferry.ops.servers.decide import Goal, Outcome
from stackferry.ops.servers.nova import SdkNova, ServerView
from stackferry.ops.servers.runner import Runner, ServerResult, summary
from stackferry.ops.servers.select import preflight, servers_named, servers_to_drain

F = TypeVar("F", bound=Callable[..., Any])
OUTCOME_STYLE = {
    Outcome.CONFIRMED: "green",
    Outcome.REVERTED: "green",
    Outcome.UNCHANGED: "dim",
    Outcome.SKIPPED: "yellow",
    Outcome.FAILED: "red",
    Outcome.PLANNED: "cyan",
}


def move_options(func: F) -> F:
    options = (
        click.option(
            "--cloud",
            envvar="OS_CLOUD",
            metavar="CLOUD",
            help="Cloud (clouds.yaml name); default OS_CLOUD, else OS_* variables. Needs admin.",
        ),
        click.option(
            "--to-host",
            metavar="HOST",
            help="Target compute host (nova microversion 2.56); default: the scheduler chooses.",
        ),
        click.option(
            "--revert",
            is_flag=True,
            help="Revert each migration instead of confirming it: a rehearsal that leaves "
            "every server where it was.",
        ),
        click.option(
            "--parallel", default=4, show_default=True, help="Servers moving at the same time."
        ),
        click.option(
            "--timeout",
            default=900.0,
            show_default=True,
            metavar="SECONDS",
            help="Per server, from its start to confirmed/reverted.",
        ),
        click.option(
            "--report",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="JSON report [default: stackferry-reports/servers-<UTC stamp>.json].",
        ),
        click.option("--dry-run", is_flag=True, help="List what would move where; change nothing."),
        click.option("-q", "--quiet", is_flag=True, help="No live progress, only the results."),
    )
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def servers() -> None:
    """Servers inside one cloud."""


@click.group()
def hosts() -> None:
    """Compute hosts inside one cloud."""


@servers.command("migrate")
@click.argument("server_refs", metavar="SERVER...", nargs=-1, required=True)
@move_options
@handles_errors
def migrate(
    server_refs: tuple[str, ...],
    cloud: str | None,
    to_host: str | None,
    revert: bool,
    parallel: int,
    timeout: float,
    report: Path | None,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Cold-migrate servers (names or IDs, any project), then confirm (or --revert) each.

    A server already in VERIFY_RESIZE is confirmed or reverted, not migrated again; one in
    RESIZE is waited for. Re-run after an interruption to finish what was in flight.
    """
    goal = Goal(target_host=to_host, revert=revert)
    _run(
        "servers migrate",
        cloud,
        goal,
        None,
        lambda nova, name: servers_named(nova, name, server_refs),
        {"servers": list(server_refs)},
        parallel,
        timeout,
        report,
        dry_run,
        quiet,
    )


@hosts.command("drain")
@click.argument("host")
@click.option("--project", metavar="PROJECT", help="Only this project's servers (name or ID).")
@move_options
@handles_errors
def drain(
    host: str,
    project: str | None,
    cloud: str | None,
    to_host: str | None,
    revert: bool,
    parallel: int,
    timeout: float,
    report: Path | None,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Cold-migrate every server off HOST, then confirm (or --revert) each.

    Disable the host's nova-compute service first so that nothing new lands on it. Re-run after
    an interruption: servers that already left are not touched, those in flight are finished.
    """
    goal = Goal(leave_host=host, target_host=to_host, revert=revert)
    _run(
        "hosts drain",
        cloud,
        goal,
        host,
        lambda nova, name: servers_to_drain(nova, name, host, project),
        {"host": host, "project": project},
        parallel,
        timeout,
        report,
        dry_run,
        quiet,
    )


def _run(
    command: str,
    cloud: str | None,
    goal: Goal,
    host: str | None,
    select: Callable[[SdkNova, str], list[ServerView]],
    selection: dict[str, Any],
    parallel: int,
    timeout: float,
    report: Path | None,
    dry_run: bool,
    quiet: bool,
) -> None:
    if parallel < 1:
        raise click.BadParameter("must be at least 1", param_hint="--parallel")
    counter = CallCounter()
    name = cloud or "(OS_* environment)"
    nova = SdkNova(connect(cloud, counter, cloud or "cloud"))
    preflight(nova, name, goal, host)
    chosen = select(nova, name)
    started, clock = datetime.now(UTC), time.monotonic()
    runner = Runner(nova, goal, parallel=parallel, timeout=timeout)
    where = f"on {host}" if host else "named"
    if dry_run:
        results = runner.dry_run(chosen)
        render.console.print(_table(results, "dry run: nothing was changed"))
        render.say(f"{len(results)} server(s) {where}; dry run: nothing was changed")
        return
    if not chosen:
        render.say(f"nothing to do: no servers {where}")
    with _LiveServers(chosen, quiet) as live:
        runner.listener = live.update
        results = runner.run(chosen)
    interrupted = runner.stop.is_set()
    render.console.print(_table(results, command))
    document = {
        "command": command,
        "cloud": name,
        **selection,
        "target_host": goal.target_host,
        "revert": goal.revert,
        "parallel": parallel,
        "timeout_seconds": timeout,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "seconds": round(time.monotonic() - clock, 1),
        "interrupted": interrupted,
        "summary": summary(results),
        "servers": [r.as_dict() for r in results],
        "api_calls": [
            {"cloud": c, "service": s, "method": m, "calls": n} for c, s, m, n in counter.rows()
        ],
        "api_calls_by_method": _by_method(counter),
        "api_latency_seconds": round(counter.latency, 3),
    }
    path = report or Path("stackferry-reports") / f"servers-{started:%Y%m%dT%H%M%SZ}.json"
    write_atomic(path, json.dumps(document, indent=2, default=str) + "\n")
    counts = ", ".join(f"{n} {o}" for o, n in document["summary"].items()) or "no servers"
    calls = ", ".join(f"{m} {n}" for m, n in document["api_calls_by_method"].items())
    render.say(f"{command}: {counts}; API calls: {calls or 'none'}; report: {path}")
    skipped = [r for r in results if r.outcome is Outcome.SKIPPED]
    if skipped and host:
        render.warn(f"{len(skipped)} server(s) skipped remain on {host}")
    if interrupted:
        render.err_console.print(
            "interrupted: migrations already started go on in nova; re-run the same command "
            "to confirm or revert them",
            highlight=False,
        )
        sys.exit(EXIT_INTERRUPTED)
    if any(r.outcome is Outcome.FAILED for r in results):
        sys.exit(EXIT_FAILED)


def _by_method(counter: CallCounter) -> dict[str, int]:
    methods: Counter[str] = Counter()
    for _, _, method, n in counter.rows():
        methods[method] += n
    return dict(sorted(methods.items()))


def _table(results: Sequence[ServerResult], title: str) -> Table:
    table = Table(title=title)
    for column in ("server", "ID", "from", "to", "status", "action", "result", "note"):
        table.add_column(column, overflow="fold")
    for r in results:
        style = OUTCOME_STYLE.get(r.outcome, "")
        to_host = r.to_host or ""
        if r.landed_on and r.landed_on != r.to_host:
            to_host = f"{r.landed_on} -> {to_host}"
        table.add_row(
            escape(r.name),
            r.id,
            r.from_host or "",
            to_host,
            r.status,
            r.action + (" (resumed)" if r.resumed else ""),
            f"[{style}]{r.outcome}[/{style}]",
            escape(r.note),
        )
    return table


class _LiveServers:
    """Live progress: one line per server, with where it is now and what it is doing."""

    def __init__(self, chosen: Sequence[ServerView], quiet: bool) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text="·"),
            TextColumn("{task.fields[name]}", markup=False),
            TextColumn("[dim]on[/dim] {task.fields[host]}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=render.console,
            disable=quiet,
        )
        self.tasks: dict[str, TaskID] = {}
        for view in chosen:
            self.tasks[view.id] = self.progress.add_task(
                "queued",
                total=1,
                start=False,
                name=view.name or view.id,
                host=escape(view.host or "?"),
            )

    def __enter__(self) -> _LiveServers:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, server_id: str, text: str, host: str | None, final: bool) -> None:
        task = self.tasks.get(server_id)
        if task is None:
            return
        self.progress.start_task(task)
        if final:  # the table after it has the whole note
            style = "red" if text.startswith(str(Outcome.FAILED)) else "green"
            short = text if len(text) <= 60 else text[:59] + "…"
            text = f"[{style}]{escape(short)}[/{style}]"
        else:
            text = escape(text)
        self.progress.update(
            task, description=text, host=escape(host or "?"), completed=1 if final else 0
        )

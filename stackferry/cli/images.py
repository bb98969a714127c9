"""``stackferry images``: operations on the images of one cloud."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from stackferry.cli import render
from stackferry.cli.common import handles_errors
from stackferry.cloud.connection import CallCounter, connect
from stackferry.cloud.projects import resolve_project
from stackferry.errors import StackferryError
from stackferry.files import write_atomic
from stackferry.ops.image_stores import decide, mover, select
from stackferry.ops.image_stores.api import GlanceApi

F = TypeVar("F", bound=Callable[..., Any])
RESULT_STYLE = {
    decide.MOVED: "green",
    decide.SKIPPED: "dim",
    decide.PLANNED: "yellow",
    decide.FAILED: "red",
    decide.BLOCKED: "red",
    decide.NOT_ATTEMPTED: "red",
}


@click.group()
def images() -> None:
    """Operations on the images of one cloud."""


@images.command("move-store")
@click.option("--from", "source", required=True, metavar="STORE", help="Store to move from.")
@click.option("--to", "target", required=True, metavar="STORE", help="Store to move to.")
@click.option(
    "--image",
    "image_refs",
    multiple=True,
    metavar="NAME_OR_ID",
    help="Only these images (repeat). Default: every image on either store.",
)
@click.option("--project", metavar="NAME_OR_ID", help="Only the images this project owns.")
@click.option("--cloud", metavar="CLOUD", help="Cloud (clouds.yaml name; default OS_CLOUD/OS_*).")
@click.option(
    "--parallel",
    default=4,
    show_default=True,
    help="Images copied at the same time. Use 1 with a glance on SQLite: it loses import "
    "tasks that start at the same moment.",
)
@click.option("--dry-run", is_flag=True, help="List what would move; change nothing.")
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="JSON report [default: stackferry-reports/images-move-store-<UTC time>.json].",
)
@click.option(
    "--timeout",
    default=3600.0,
    show_default=True,
    help="Seconds one image's copy may take before it is reported failed.",
)
@handles_errors
def move_store(
    source: str,
    target: str,
    image_refs: tuple[str, ...],
    project: str | None,
    cloud: str | None,
    parallel: int,
    dry_run: bool,
    report: Path | None,
    timeout: float,
) -> None:
    """Move images from one glance store (backend) to another, keeping their IDs, properties
    and checksums. Safe to interrupt and re-run: images already moved are skipped, and a move
    that was cut short is finished. Needs glance multi-store and admin credentials."""
    started = datetime.now(UTC)
    report = report or Path("stackferry-reports") / (
        f"images-move-store-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    )
    label = cloud or "cloud"
    counter = CallCounter()
    conn = connect(cloud, counter, label)
    api = GlanceApi(conn)
    cloud_name = cloud or "(OS_CLOUD / OS_* environment)"
    select.check_stores(api, cloud_name, source, target)
    owner = resolve_project(conn, project) if project else None
    chosen = select.select_images(api, source, target, owner[0] if owner else None, image_refs)
    options = mover.MoveOptions(source, target, parallel, dry_run, timeout)
    scope = f"project {owner[1]} ({owner[0]})" if owner else "all projects visible"
    render.say(
        f"{'dry run: ' if dry_run else ''}{len(chosen)} image(s) on {source} or {target} "
        f"in {scope} on {cloud_name}"
    )
    with _Progress(len(chosen), source, target) as progress:
        outcome = mover.Mover(api, options, progress).run(chosen)
    render.console.print(_table(outcome, dry_run))
    writes = counter.writes(label)
    summary = ", ".join(
        f"{outcome.count(r)} {r}" for r in RESULT_STYLE if outcome.count(r)
    )  # in RESULT_STYLE's order
    line = (
        f"move-store {source} -> {target}: {summary or 'no images'}; "
        f"{writes} write call(s) to {cloud_name}"
    )
    render.say(line)
    document = _report(outcome, counter, label, cloud_name, owner, options, started, writes)
    write_atomic(report, json.dumps(document, indent=2, default=str) + "\n")
    render.say(f"report: {report}")
    if dry_run:
        render.say("dry run: nothing was changed")
    if outcome.denied:
        raise StackferryError(outcome.denied)
    sys.exit(0 if outcome.ok else 1)


class _Progress:
    """One bar over the images, the image being worked on, and a line per image finished."""

    def __init__(self, total: int, source: str, target: str) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            console=render.console,
        )
        self.task = self.progress.add_task(f"{source} -> {target}", total=total, failed="")
        self.failed = 0
        self.base = f"{source} -> {target}"

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.update(self.task, description=self.base)
        self.progress.__exit__(None, None, None)

    def __call__(self, result: mover.ImageResult, phase: str) -> None:
        if phase != "finished":
            self.progress.update(
                self.task,
                description=escape(f"{self.base}: {phase} {result.name or result.id}"),
            )
            return
        if result.result in decide.UNSUCCESSFUL:
            self.failed += 1
            self.progress.update(self.task, failed=f"[red]{self.failed} not moved")
        if result.result != decide.SKIPPED:
            style = RESULT_STYLE.get(result.result, "")
            detail = result.action if result.action != "none" else result.reason
            self.progress.console.print(
                Text.assemble(
                    "  ", (result.result, style), f" {result.name} {result.id}: {detail}"
                ),
                highlight=False,
            )
        self.progress.advance(self.task)


def _table(outcome: mover.Outcome, dry_run: bool) -> Table:
    table = Table(title="images move-store" + (" (dry run)" if dry_run else ""))
    for column in ("image", "ID", "result", "done" if not dry_run else "would do", "details"):
        table.add_column(column, overflow="fold")
    table.add_column("checksum", overflow="fold")
    for r in outcome.results:
        checksum = Text(r.checksum_after or r.checksum_before or "")
        if r.checksum_before and r.checksum_after and r.checksum_before != r.checksum_after:
            checksum = Text(f"{r.checksum_before} -> {r.checksum_after}", style="red")
        table.add_row(
            Text(r.name + (" (protected)" if r.protected else "")),
            Text(r.id),
            Text(r.result, style=RESULT_STYLE.get(r.result, "")),
            Text(r.action),
            Text(r.reason),
            checksum,
        )
    return table


def _report(
    outcome: mover.Outcome,
    counter: CallCounter,
    label: str,
    cloud: str,
    owner: tuple[str, str] | None,
    options: mover.MoveOptions,
    started: datetime,
    writes: int,
) -> dict[str, Any]:
    by_method: Counter[str] = Counter()
    for c, _, method, n in counter.rows():
        if c == label:
            by_method[method] += n
    return {
        "command": "images move-store",
        "cloud": cloud,
        "from": options.source,
        "to": options.target,
        "project": {"id": owner[0], "name": owner[1]} if owner else None,
        "dry_run": options.dry_run,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "ok": outcome.ok,
        "stopped": outcome.denied,
        "summary": {r: outcome.count(r) for r in RESULT_STYLE if outcome.count(r)},
        "write_calls": writes,
        "api_calls_by_method": dict(sorted(by_method.items())),
        "api_calls": [
            {"cloud": c, "service": s, "method": m, "calls": n} for c, s, m, n in counter.rows()
        ],
        "api_latency_seconds": round(counter.latency, 3),
        "images": [r.as_dict() for r in outcome.results],
    }

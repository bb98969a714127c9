"""``stackferry usage``: archive a cloud's usage statistics before the cloud goes.

Parsing, the checks made before the cloud is asked anything, progress and the short summary;
the reading and the documents are in :mod:`stackferry.ops.usage`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from stackferry.cli import render
from stackferry.cli.common import handles_errors
from stackferry.cloud.connection import CallCounter, connect
from stackferry.errors import StackferryError
from stackferry.ops.usage.archive import Request, check_out, read_archive, write_archive
from stackferry.ops.usage.chart import project_label, render_html
from stackferry.ops.usage.nova import MICROVERSION, SdkUsage
from stackferry.ops.usage.present import SdkPresent
from stackferry.ops.usage.projects import project_names, resolve_projects
from stackferry.ops.usage.windows import Step, Window, iso, parse_time

SHOWN_PROJECTS = 10  # the terminal shows the biggest; summary.json has them all


@click.command()
@click.option(
    "--cloud",
    envvar="OS_CLOUD",
    metavar="CLOUD",
    help="Cloud (clouds.yaml name); default OS_CLOUD, else OS_* variables.",
)
@click.option(
    "--project",
    "project_refs",
    multiple=True,
    metavar="NAME_OR_ID",
    help="A project to archive (repeat). Either this or --all-projects.",
)
@click.option(
    "--all-projects",
    is_flag=True,
    help="Every project with usage in the window (nova's listing: needs admin).",
)
@click.option(
    "--since",
    required=True,
    metavar="DATE",
    help="Start of the window: 2024-01-15 or 2024-01-15T10:30 (UTC unless an offset is given).",
)
@click.option("--until", metavar="DATE", help="End of the window (excluded). [default: now]")
@click.option(
    "--step",
    type=click.Choice([s.value for s in Step]),
    default=Step.MONTH.value,
    show_default=True,
    help="The breakdown: one entry (one nova query) per calendar month, day or hour.",
)
@click.option(
    "--page-limit",
    type=click.IntRange(min=1),
    metavar="N",
    default=None,
    help="Servers per page nova returns. [default: nova's own maximum]",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Folder for summary.json, projects/<ID>.json and usage.html (created).",
)
@handles_errors
def usage(
    cloud: str | None,
    project_refs: tuple[str, ...],
    all_projects: bool,
    since: str,
    until: str | None,
    step: str,
    page_limit: int | None,
    out: Path,
) -> None:
    """Archive the usage statistics of a cloud: per project, instance, vCPU, RAM and disk
    hours by step (from nova's os-simple-tenant-usage), each server, and what volumes, images,
    floating IPs and quotas hold now; as JSON and one HTML page. Reads only."""
    read_at = datetime.now(UTC)
    window, notes = _window(since, until, read_at)
    if bool(project_refs) == all_projects:
        raise StackferryError("give either --project (repeatable) or --all-projects")
    check_out(out)
    name = cloud or "(OS_* environment)"
    counter = CallCounter()
    conn = connect(cloud, counter, cloud or "cloud")
    nova = SdkUsage(conn)
    if not nova.supports_paging():
        raise StackferryError(
            f"cloud {name}: reading usage page by page needs compute API microversion "
            f"{MICROVERSION} (nova Ocata or newer); this nova is older"
        )
    chosen = resolve_projects(conn, project_refs, name) if project_refs else None
    names = project_names(conn) if chosen is None else None
    request = Request(name, window, Step(step), read_at, chosen, page_limit, tuple(notes))
    with _StepProgress() as progress:
        archive = read_archive(nova, SdkPresent(conn), request, names, progress)
    projects = [archive.projects[p["id"]] for p in archive.summary["projects"]]
    files = archive.files(render_html(archive.summary, projects))
    written = write_archive(out, files)
    _say(archive.summary, projects, out, len(written), counter.total())


def _window(since: str, until: str | None, read_at: datetime) -> tuple[Window, list[str]]:
    """The window asked for, with ``until`` no later than now: nova counts a running server up
    to the window's end, and the future has not been used yet."""
    start = parse_time(since, "--since")
    end = parse_time(until, "--until") if until else read_at
    notes = []
    if start >= end:
        raise StackferryError(
            f"--since {iso(start)} is not before --until {iso(end)}" + ("" if until else " (now)")
        )
    if start >= read_at:
        raise StackferryError(f"--since {iso(start)} is in the future: nothing was used yet")
    if end > read_at:
        notes.append(f"--until {iso(end)} is in the future: the window ends when it was read")
        end = read_at
    return Window(start, end), notes


class _StepProgress:
    """One bar over the step windows nova is asked about (gone once done)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("reading usage by step"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=render.console,
            transient=True,
        )
        self.task = self.progress.add_task("steps", total=None)

    def __enter__(self) -> _StepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)


def _say(
    summary: dict[str, Any], projects: list[dict[str, Any]], out: Path, files: int, calls: int
) -> None:
    """The biggest projects, the totals and the files: the IDs and the rest are in the files."""
    totals = summary["totals"]
    biggest = sorted(projects, key=lambda p: -float(p["totals"]["total_hours"]))
    if biggest:
        table = Table(title=f"usage of {summary['cloud']}, by {summary['step']}")
        for column in ("project", "servers", "steps", "instance hours", "vCPU hours"):
            table.add_column(column, justify="left" if column == "project" else "right")
        for p in biggest[:SHOWN_PROJECTS]:
            t = p["totals"]
            table.add_row(
                Text(project_label(p["project"])),
                str(t["servers"]),
                str(len(p["steps"])),
                f"{t['total_hours']:,.2f}",
                f"{t['total_vcpus_usage']:,.2f}",
            )
        render.console.print(table)
        if len(biggest) > SHOWN_PROJECTS:
            render.say(f"... and {len(biggest) - SHOWN_PROJECTS} more project(s) in summary.json")
    window = summary["window"]
    render.say(
        f"usage {window['start']} .. {window['end']} by {summary['step']}: "
        f"{totals['projects']} project(s), {totals['servers']} server(s), "
        f"{totals['total_hours']:,.2f} instance hours, {totals['total_vcpus_usage']:,.2f} "
        f"vCPU hours, {totals['steps']} step(s); {calls} API call(s)"
    )
    for note in summary["notes"]:
        render.warn(str(note))
    render.say(
        f"wrote {files} file(s) to {out}: summary.json, usage.html, projects/ "
        f"({len(projects)} file(s))"
    )

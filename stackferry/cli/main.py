"""The ``stackferry`` command: parse options, call the engine, render the result."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from stackferry import __version__
from stackferry.cli import render
from stackferry.cloud import CallCounter, connect
from stackferry.data.archive import Archive
from stackferry.engine import run
from stackferry.engine.errors import StackferryError
from stackferry.engine.journal import Journal
from stackferry.engine.mapping import Mapping
from stackferry.engine.registry import Registry
from stackferry.engine.workdir import Workdir, published_schema
from stackferry.kinds.base import DataPlane, Kind, Tenant
from stackferry.kinds.catalog import registry as make_registry

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED = 1  # something did not succeed, or verify found differences
EXIT_USAGE = 2  # bad input: nothing was attempted


def handles_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StackferryError as exc:
            render.err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def workdir_option(func: F) -> F:
    return click.option(
        "--workdir",
        type=click.Path(path_type=Path),
        default=Path("stackferry-work"),
        show_default=True,
        help="Folder of the exported files, journal and reports.",
    )(func)


def selection_options(func: F) -> F:
    func = click.option(
        "--only",
        multiple=True,
        metavar="KIND",
        help="Only these kinds (repeat; e.g. networks, subnets).",
    )(func)
    return click.option("--skip", multiple=True, metavar="KIND", help="Skip these kinds.")(func)


def mapping_option(func: F) -> F:
    return click.option(
        "--mapping",
        type=click.Path(path_type=Path, exists=True),
        default=None,
        help="YAML file renaming projects, domains, users, networks, AZs, flavors.",
    )(func)


def _kinds(reg: Registry, only: tuple[str, ...], skip: tuple[str, ...]) -> list[Kind]:
    return reg.select(only, skip)


def _filter_names(wd: Workdir, include: str | None, exclude: str | None, keep: set[str]) -> None:
    """Keep resources whose name matches --include and not --exclude (the tenant always stays)."""
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    for kind_name, items in wd.resources.items():
        if kind_name in keep:
            continue
        wd.resources[kind_name] = [
            r
            for r in items
            if (inc is None or inc.search(r.label)) and (exc is None or not exc.search(r.label))
        ]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stackferry")
def cli() -> None:
    """Move OpenStack tenants and their data between clouds, and servers and images inside one.

    Clouds are named as in clouds.yaml (or OS_CLOUD / OS_* variables), as for every OpenStack
    tool. The everyday command is `migrate`; `export`, `plan`, `apply` and `verify` are its
    steps, to run one at a time and review in between.
    """


def tenant_options(func: F) -> F:
    """The tenant to read and the name filters: shared by export and migrate."""
    for option in reversed(
        (
            click.option("--project", required=True, help="Project (tenant) to move."),
            click.option(
                "--domain", default="Default", show_default=True, help="The project's domain."
            ),
            click.option("--include", metavar="REGEX", help="Only resources whose name matches."),
            click.option(
                "--exclude", metavar="REGEX", help="Leave out resources whose name matches."
            ),
        )
    ):
        func = option(func)
    return func


@cli.command()
@click.option("--src", required=True, metavar="CLOUD", help="Source cloud (clouds.yaml name).")
@tenant_options
@workdir_option
@selection_options
@handles_errors
def export(
    src: str,
    project: str,
    domain: str,
    include: str | None,
    exclude: str | None,
    workdir: Path,
    only: tuple[str, ...],
    skip: tuple[str, ...],
) -> None:
    """Read the tenant from the source cloud and write it to the workdir."""
    _export(src, project, domain, include, exclude, workdir, only, skip, CallCounter())


def _export(
    src: str,
    project: str,
    domain: str,
    include: str | None,
    exclude: str | None,
    workdir: Path,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    counter: CallCounter,
) -> None:
    reg = make_registry()
    kinds = _kinds(reg, only, skip)
    conn = connect(src, counter, "source")
    wd = run.export(reg, conn, Tenant(project, domain), kinds, workdir, src)
    tenant_kinds = {k.name for k in reg.ordered if getattr(k, "defines_tenant", False)}
    if include or exclude:
        _filter_names(wd, include, exclude, tenant_kinds)
        wd.save(reg, Tenant(project, domain), src, kinds)
    counts = ", ".join(f"{len(v)} {reg[k].plural}" for k, v in wd.resources.items() if v)
    render.console.print(f"exported {counts or 'nothing'} from {src} to {workdir}")


@cli.command()
@workdir_option
@handles_errors
def validate(workdir: Path) -> None:
    """Check the workdir's files against their schema."""
    wd = Workdir.load(workdir, make_registry())
    total = sum(len(v) for v in wd.resources.values())
    render.console.print(f"{workdir}: valid ({total} resources)")


@cli.command()
@handles_errors
def schema() -> None:
    """Print the JSON Schema of the workdir files."""
    click.echo(json.dumps(published_schema(make_registry()), indent=2))


def _plan(
    dst: str,
    workdir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    counter: CallCounter,
) -> tuple[Registry, Workdir, run.Planned]:
    reg = make_registry()
    wd = Workdir.load(workdir, reg)
    conn = connect(dst, counter, "destination")
    planned = run.plan(reg, wd, conn, _kinds(reg, only, skip), Mapping.load(mapping))
    return reg, wd, planned


@cli.command()
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--all", "show_all", is_flag=True, help="Also list unchanged resources.")
@workdir_option
@mapping_option
@selection_options
@handles_errors
def plan(
    dst: str,
    fmt: str,
    show_all: bool,
    workdir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
) -> None:
    """Compare the workdir with the destination and show what apply would do."""
    _, _, planned = _plan(dst, workdir, mapping, only, skip, CallCounter())
    if fmt == "json":
        click.echo(render.plan_json(planned.plan))
    else:
        render.console.print(render.plan_table(planned.plan, show_all))
        render.console.print(f"plan: {render.plan_summary(planned.plan)}")


def _apply(
    dst: str,
    workdir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    parallel: int,
    dry_run: bool,
    quiet: bool,
    counter: CallCounter,
    src: str | None = None,
    archive: Path | None = None,
) -> bool:
    reg, wd, planned = _plan(dst, workdir, mapping, only, skip, counter)
    data_bytes = sum(
        int(s.resource.facts.get("size") or 0) for s in planned.plan.steps if run.moves_data(reg, s)
    )
    if not quiet or dry_run:
        render.console.print(render.plan_table(planned.plan))
    render.console.print(f"plan: {render.plan_summary(planned.plan)}")
    if dry_run:
        render.console.print("dry run: nothing was changed")
        return not any(s.action in ("conflict", "blocked") for s in planned.plan.steps)
    journal = Journal(wd.journal_path)
    journal.start_run("apply")
    planned.ctx.connection_hook = lambda conn: counter.attach("destination", conn)
    interrupted = journal.interrupted()
    if interrupted and not quiet:
        render.console.print(
            f"resuming: {len(interrupted)} step(s) were in flight when an "
            "earlier run stopped; the plan above accounts for them"
        )
    with render.StepProgress(planned.plan, quiet, data_bytes) as progress:
        data = DataPlane(
            source=connect(src, counter, "source") if src else None,
            archive=Archive(archive) if archive else None,
            monitor=progress,
        )
        try:
            outcome = run.apply(reg, planned, journal, parallel, progress, data)
        except StackferryError:
            journal.finish_run("refused")
            raise
    journal.finish_run("failed" if outcome.failed else "ok")
    temporaries = planned.ctx.temporaries
    for leftover in temporaries.left if temporaries else []:
        render.err_console.print(
            f"[yellow]warning:[/yellow] temporary not removed yet (the next run retries): "
            f"{leftover}",
            highlight=False,
        )
    journal.close()
    if not quiet or outcome.failed:  # quiet still says what went wrong
        render.console.print(render.outcome_table(planned.plan, outcome, only_failures=quiet))
    states = [outcome.state.get(s.key) for s in planned.plan.steps]
    summary = ", ".join(
        f"{states.count(x)} {x}"
        for x in ("done", "unchanged", "failed", "blocked", "conflict")
        if states.count(x)
    )
    writes = counter.writes("destination")
    line = f"apply: {summary or 'nothing to do'}; {writes} write call(s) to {dst}"
    render.console.print(line)
    report = {
        "summary": {x: states.count(x) for x in set(states) if x},
        "write_calls": writes,
        "data_bytes_planned": data_bytes,
        "transfers": progress.transfers,
        "temporaries_left": temporaries.left if temporaries else [],
        "api_latency_seconds": round(counter.latency, 3),
        "steps": [
            {
                **s.as_dict(),
                "result": outcome.state.get(s.key),
                "destination_id": outcome.destination_id.get(s.key),
                "error": outcome.error.get(s.key),
            }
            for s in planned.plan.steps
        ],
        "api_calls": [
            {"cloud": c, "service": sv, "method": m, "calls": n} for c, sv, m, n in counter.rows()
        ],
    }
    run.write_report(wd, "apply", report, line + "\n")
    return not outcome.failed


def apply_options(func: F) -> F:
    func = click.option(
        "--archive",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Also write the bytes of every image and volume moved to this folder, with a "
        "SHA-256 manifest (read once from the source).",
    )(func)
    func = click.option(
        "--parallel", default=8, show_default=True, help="Resources created at the same time."
    )(func)
    func = click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")(func)
    return click.option("-q", "--quiet", is_flag=True, help="No progress, only summaries.")(func)


@cli.command()
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@click.option(
    "--src", metavar="CLOUD", help="Source cloud: needed to move images' and volumes' bytes."
)
@workdir_option
@mapping_option
@selection_options
@apply_options
@handles_errors
def apply(
    dst: str,
    src: str | None,
    workdir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    parallel: int,
    dry_run: bool,
    quiet: bool,
    archive: Path | None,
) -> None:
    """Carry out the plan: create and update what differs; safe to re-run at any time."""
    ok = _apply(
        dst, workdir, mapping, only, skip, parallel, dry_run, quiet, CallCounter(), src, archive
    )
    sys.exit(0 if ok else EXIT_FAILED)


def _verify(
    dst: str,
    src: str | None,
    workdir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    counter: CallCounter,
) -> bool:
    reg = make_registry()
    wd = Workdir.load(workdir, reg)
    assert wd.tenant is not None
    kinds = [k for k in _kinds(reg, only, skip) if k.name in wd.resources]
    source = wd.resources
    if src:  # compare with the live source rather than the exported files
        _, source = run.read_tenant(reg, connect(src, counter, "source"), wd.tenant, kinds)
    result = run.verify(
        reg, source, Mapping.load(mapping), connect(dst, counter, "destination"), wd.tenant, kinds
    )
    text = render.verification_text(result)
    document = {
        "equal": result.equal,
        "compared": result.compared,
        "differences": [d.__dict__ for d in result.differences],
        "id_map": result.id_map,
    }
    path = run.write_report(wd, "verify", document, text)
    render.console.print(text, highlight=False)
    render.console.print(f"report: {path} (and {path.with_suffix('.txt').name})")
    return result.equal


@cli.command()
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@click.option("--src", metavar="CLOUD", help="Compare with the live source (default: the workdir).")
@workdir_option
@mapping_option
@selection_options
@handles_errors
def verify(
    dst: str,
    src: str | None,
    workdir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
) -> None:
    """Compare source and destination field by field; exit 0 only when they are equal."""
    sys.exit(0 if _verify(dst, src, workdir, mapping, only, skip, CallCounter()) else EXIT_FAILED)


@cli.command()
@click.option("--src", required=True, metavar="CLOUD", help="Source cloud.")
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@tenant_options
@click.option("--calls", is_flag=True, help="Print the API calls made, by service and method.")
@workdir_option
@mapping_option
@selection_options
@apply_options
@handles_errors
def migrate(
    src: str,
    dst: str,
    project: str,
    domain: str,
    include: str | None,
    exclude: str | None,
    calls: bool,
    workdir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    parallel: int,
    dry_run: bool,
    quiet: bool,
    archive: Path | None,
) -> None:
    """Export, plan, apply and verify in one go: the everyday command. Re-run it after any
    failure or interruption; it continues where the last run stopped."""
    counter = CallCounter()
    _export(src, project, domain, include, exclude, workdir, only, skip, counter)
    ok = _apply(dst, workdir, mapping, only, skip, parallel, dry_run, quiet, counter, src, archive)
    if not dry_run:
        ok = _verify(dst, None, workdir, mapping, only, skip, counter) and ok
    if calls:
        render.console.print(render.calls_table(counter))
    sys.exit(0 if ok else EXIT_FAILED)


def _register_lab() -> None:
    """``stackferry lab`` is the repository's two-cloud lab, present in a source checkout."""
    try:
        from devcloud.cli import lab
    except ImportError:  # installed without the lab
        return
    cli.add_command(lab, name="lab")


from stackferry.cli.images import images  # noqa: E402

cli.add_command(images)
from stackferry.cli.servers import hosts, servers  # noqa: E402

cli.add_command(servers)
cli.add_command(hosts)
_register_lab()


def main() -> None:
    cli(prog_name="stackferry")

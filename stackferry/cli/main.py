"""The ``stackferry`` command: parse options, call the engine, render the result."""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from stackferry import __version__
from stackferry.cli import render
from stackferry.cli.common import (
    EXIT_FAILED,
    enable_debug,
    handles_errors,
)
from stackferry.cli.finish import finish
from stackferry.cli.images import images
from stackferry.cli.options import (
    F,
    Target,
    load_workdir,
    mapping_option,
    on_cloud,
    regex,
    selection_options,
    verbose_option,
    verify_document,
    workdir_option,
)
from stackferry.cli.servers import hosts, servers
from stackferry.cli.usage import usage
from stackferry.cloud.connection import CallCounter, connect
from stackferry.data.archive import Archive
from stackferry.data.bundle import BundleReader
from stackferry.data.rbd import CephSettings
from stackferry.data.transfer import DataPlane
from stackferry.engine import bundles, run
from stackferry.engine.apply import State
from stackferry.engine.context import Tenant
from stackferry.engine.journal import Journal
from stackferry.engine.plan import Adoption
from stackferry.engine.registry import Registry
from stackferry.engine.workdir import Workdir, published_schema
from stackferry.kinds.catalog import registry as make_registry


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
@click.option(
    "--debug",
    is_flag=True,
    envvar="STACKFERRY_DEBUG",
    help="Show tracebacks and every HTTP call (tokens masked), for a bug report.",
)
def cli(debug: bool) -> None:
    """Move OpenStack tenants and their data between clouds, and servers and images inside one.

    Clouds are named as in clouds.yaml (or OS_CLOUD / OS_* variables), as for every OpenStack
    tool. The everyday command is `migrate`; `export`, `plan`, `apply` and `verify` are its
    steps, to run one at a time and review in between.
    """
    if debug:
        enable_debug()


def tenant_options(func: F, project_required: bool = True) -> F:
    """The tenant to read and the name filters: shared by export and migrate."""
    for option in reversed(
        (
            click.option("--project", required=project_required, help="Project (tenant) to move."),
            click.option(
                "--domain", default="Default", show_default=True, help="The project's domain."
            ),
            click.option(
                "--include",
                metavar="REGEX",
                callback=regex,
                help="Only resources whose name matches.",
            ),
            click.option(
                "--exclude",
                metavar="REGEX",
                callback=regex,
                help="Leave out resources whose name matches.",
            ),
        )
    ):
        func = option(func)
    return func


def bundle_option(func: F) -> F:
    return click.option(
        "--bundle",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="A bundle made by `export --bundle`: the workdir (and, if made --with-data, the "
        "bytes) come from it, and no source cloud is needed.",
    )(func)


@cli.command()
@click.option("--src", required=True, metavar="CLOUD", help="Source cloud (clouds.yaml name).")
@tenant_options
@workdir_option
@selection_options
@click.option(
    "--bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the workdir into this one compressed file (.tar.zst), to carry to a "
    "destination that cannot reach the source; plan, apply and migrate take it as --bundle.",
)
@click.option(
    "--with-data",
    is_flag=True,
    help="With --bundle: the bytes of the images and volumes go into it too (read once).",
)
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
    bundle: Path | None,
    with_data: bool,
) -> None:
    """Read the tenant from the source cloud and write it to the workdir (and a bundle)."""
    if with_data and bundle is None:
        raise click.UsageError("--with-data goes with --bundle FILE")
    if bundle is not None and bundle.exists() and bundle.is_dir():
        raise click.BadParameter(f"{bundle} is a folder: give a file's path", param_hint="--bundle")
    counter = CallCounter()
    _export(src, Tenant(project, domain), include, exclude, workdir, only, skip, counter,
            bundle, with_data)  # fmt: skip


def _export(
    src: str,
    tenant: Tenant,
    include: str | None,
    exclude: str | None,
    workdir: Path,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    counter: CallCounter,
    bundle: Path | None = None,
    with_data: bool = False,
) -> None:
    reg = make_registry()
    kinds = reg.select(only, skip)
    keeps = reg.selected_resources(only, skip)
    conn = connect(src, counter, "source")
    notes: list[str] = []
    with on_cloud(src):
        wd = run.export(reg, conn, tenant, kinds, workdir, src, notes, keeps)
    for note in notes:
        render.warn(note)
    tenant_kinds = {k.name for k in reg.ordered if k.defines_tenant}
    if include or exclude:
        _filter_names(wd, include, exclude, tenant_kinds)
        wd.save(reg, tenant, src, kinds)
    counts = ", ".join(f"{len(v)} {reg[k].plural}" for k, v in wd.resources.items() if v)
    render.say(f"exported {counts or 'nothing'} from {src} to {workdir}")
    if bundle is None:
        return
    header = {
        "tenant": {"name": tenant.name, "domain": tenant.domain},
        "exported_from": src,
        "kinds": [k.name for k in kinds if not k.lookup_only],
    }
    with on_cloud(src):
        made = run.bundle(wd, bundle, kinds, conn, with_data, header)
    for left in made.left_out:
        render.warn(f"{left}: its bytes are not bundled (apply it with --src, from the source)")
    size = bundle.stat().st_size
    data = (
        f", the bytes of {made.resources_with_bytes} resource(s) ({render.size(made.data_bytes)})"
        if with_data
        else ""
    )
    render.say(f"bundle {bundle}: {made.files} workdir file(s){data}; {render.size(size)}")


@cli.command()
@workdir_option
@handles_errors
def validate(workdir: Path) -> None:
    """Check the workdir's files against their schema."""
    wd = load_workdir(workdir, make_registry())
    total = sum(len(v) for v in wd.resources.values())
    render.say(f"{workdir}: valid ({total} resources)")


@cli.command(name="kinds")
@handles_errors
def list_kinds() -> None:
    """List the kinds stackferry moves, in the order it applies them, with what each
    references and what cannot change in place."""
    reg = make_registry()
    table = render.kinds_table(reg)
    render.console.print(table)


@cli.command()
@handles_errors
def schema() -> None:
    """Print the JSON Schema of the workdir files."""
    click.echo(json.dumps(published_schema(make_registry()), indent=2))


def _plan(
    target: Target, counter: CallCounter, options: dict[str, str] | None = None
) -> tuple[Registry, Workdir, run.Planned]:
    reg = make_registry()
    reader = _unbundle(target) if target.bundle else None
    wd = load_workdir(target.workdir, reg)
    mapping = target.load_mapping(reg)
    adopt = Adoption.parse(reg, [*target.adopt, *mapping.adopt])
    kinds = target.kinds(reg)
    conn = connect(target.dst, counter, "destination")
    data = DataPlane(ceph=CephSettings.load(target.ceph), bundle=reader)
    with on_cloud(target.dst):
        planned = run.plan(
            reg, wd, conn, kinds, mapping, adopt, target.dst, options or {}, data, target.keeps(reg)
        )
    for note in planned.ctx.notes:
        render.warn(note)
    return reg, wd, planned


def _unbundle(target: Target) -> BundleReader:
    """The bundle checked through, and its workdir files put into the workdir."""
    assert target.bundle is not None
    reader = BundleReader(target.bundle)
    bundles.unpack(reader, target.workdir)
    return reader


def ceph_option(func: F) -> F:
    return click.option(
        "--ceph",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        default=None,
        help="YAML file with access to the source's and destination's Ceph clusters "
        "(conf, keyring, client, pool, cinder backends): volumes on RBD at both ends move "
        "cluster to cluster, without glance. Never printed or reported.",
    )(func)


def adopt_option(func: F) -> F:
    return click.option(
        "--adopt",
        multiple=True,
        metavar="KIND[:NAME]",
        help="Manage destination resources stackferry did not make (a plan conflict) as its "
        "own: a kind, or KIND:NAME with shell wildcards (e.g. security_groups:web*).",
    )(func)


@cli.command()
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--all", "show_all", is_flag=True, help="Also list unchanged resources.")
@workdir_option
@mapping_option
@selection_options
@adopt_option
@ceph_option
@bundle_option
@handles_errors
def plan(
    dst: str,
    fmt: str,
    show_all: bool,
    workdir: Path,
    mapping: Path | None,
    switches: frozenset[str],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    adopt: tuple[str, ...],
    ceph: Path | None,
    bundle: Path | None,
) -> None:
    """Compare the workdir with the destination and show what apply would do."""
    target = Target(dst, workdir, mapping, only, skip, adopt, switches, ceph, bundle)
    _, _, planned = _plan(target, CallCounter())
    if fmt == "json":
        click.echo(render.plan_json(planned.plan))
    else:
        render.console.print(render.plan_table(planned.plan, show_all))
        render.say(f"plan: {render.plan_summary(planned.plan)}")


@dataclass
class Run:
    """How apply runs: shared by apply and migrate."""

    parallel: int
    dry_run: bool
    quiet: bool
    partial: bool
    archive: Path | None
    verbose: bool = False
    cutover: str = "stop"


def _apply(
    target: Target,
    how: Run,
    counter: CallCounter,
    src: str | None = None,
    options: dict[str, str] | None = None,
) -> bool:
    reg, wd, planned = _plan(target, counter, {"cutover": how.cutover, **(options or {})})
    data_bytes = sum(
        int(s.resource.facts.get("size") or 0) for s in planned.plan.steps if run.moves_data(reg, s)
    )
    if how.verbose or how.dry_run:
        render.console.print(render.plan_table(planned.plan))
    else:  # a summary; every resource's action is in `stackferry plan` and the report
        if not how.quiet and planned.plan.writes_needed:
            render.console.print(render.by_kind(planned.plan))
        if planned.plan.problems:
            render.console.print(render.plan_table(planned.plan, only=planned.plan.problems))
    render.say(f"plan: {render.plan_summary(planned.plan)}")
    if how.dry_run:
        render.say("dry run: nothing was changed")
        return not planned.plan.problems
    run.refuse_problems(planned.plan, how.partial)
    wd.check_writable()
    archive = Archive(how.archive) if how.archive else None
    source = connect(src, counter, "source") if src else None
    journal = Journal(wd.journal_path)
    journal.start_run("apply")
    planned.ctx.connection_hook = lambda conn: counter.attach("destination", conn)
    interrupted = journal.interrupted()
    if interrupted and not how.quiet:
        render.say(
            f"resuming: {len(interrupted)} step(s) were in flight when an "
            "earlier run stopped; the plan above accounts for them"
        )
    with render.StepProgress(planned.plan, how.quiet, data_bytes) as progress:
        data = DataPlane(source, archive, progress, planned.ctx.data.ceph, planned.ctx.data.bundle)
        try:
            outcome = run.apply(reg, planned, journal, how.parallel, progress, data, how.partial)
        except BaseException:
            journal.finish_run("refused")
            raise
    journal.finish_run("failed" if outcome.failed else "ok")
    temporaries = planned.ctx.temporaries
    for leftover in temporaries.left if temporaries else []:
        render.warn(f"temporary not removed yet (the next run retries): {leftover}")
    journal.close()
    if how.verbose:
        render.console.print(render.outcome_table(planned.plan, outcome))
    else:
        if outcome.failed:  # quiet still says what went wrong
            render.console.print(render.outcome_table(planned.plan, outcome, only_failures=True))
        if State.PROGRESSED in outcome.state.values():  # e.g. each warm pass's bytes
            render.console.print(render.outcome_table(planned.plan, outcome, only=State.PROGRESSED))
    if not how.quiet and planned.plan.writes_needed:
        render.console.print(render.by_kind(planned.plan, outcome))
    states = [outcome.state.get(s.key) for s in planned.plan.steps]
    summary = ", ".join(
        f"{states.count(x)} {x}"
        for x in (
            State.DONE,
            State.PROGRESSED,
            State.WAITING,
            State.UNCHANGED,
            State.FAILED,
            State.BLOCKED,
            State.CONFLICT,
        )
        if states.count(x)
    )
    writes = counter.writes("destination")
    line = f"apply: {summary or 'nothing to do'}; {writes} write call(s) to {target.dst}"
    render.say(line)
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
        "--parallel",
        default=8,
        show_default=True,
        type=click.IntRange(1, 256),
        help="Resources created at the same time.",
    )(func)
    func = click.option(
        "--partial",
        is_flag=True,
        help="Apply what can be applied even when the plan has conflicts or blocked resources "
        "(they are reported, and the exit code is 1).",
    )(func)
    func = adopt_option(func)
    func = ceph_option(func)
    func = click.option(
        "--cutover",
        type=click.Choice(["stop", "live"]),
        default="stop",
        show_default=True,
        help="stop: each source server is stopped before its disks are read (consistent), "
        "and left SHUTOFF; live: copied while running (crash-consistent), left running.",
    )(func)
    func = click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")(func)
    func = verbose_option(func)
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
@bundle_option
@handles_errors
def apply(
    dst: str,
    src: str | None,
    workdir: Path,
    mapping: Path | None,
    switches: frozenset[str],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    parallel: int,
    dry_run: bool,
    quiet: bool,
    partial: bool,
    adopt: tuple[str, ...],
    archive: Path | None,
    verbose: bool,
    cutover: str,
    ceph: Path | None,
    bundle: Path | None,
) -> None:
    """Carry out the plan: create and update what differs; safe to re-run at any time."""
    if bundle is not None and src is not None:
        raise click.UsageError("--bundle replaces --src: the bytes come from the bundle")
    target = Target(dst, workdir, mapping, only, skip, adopt, switches, ceph, bundle)
    how = Run(parallel, dry_run, quiet, partial, archive, verbose, cutover)
    ok = _apply(target, how, CallCounter(), src)
    sys.exit(0 if ok else EXIT_FAILED)


def _verify(target: Target, src: str | None, counter: CallCounter, verbose: bool = False) -> bool:
    reg = make_registry()
    wd = load_workdir(target.workdir, reg)
    assert wd.tenant is not None
    kinds = [k for k in target.kinds(reg) if k.name in wd.resources]
    source = wd.resources
    if src:  # compare with the live source rather than the exported files
        with on_cloud(src):
            _, source = run.read_tenant(
                reg, connect(src, counter, "source"), wd.tenant, kinds, "", wd.journal_path
            )
    conn = connect(target.dst, counter, "destination")
    with on_cloud(target.dst):
        mapping = target.load_mapping(reg)
        result = run.verify(reg, source, mapping, conn, wd.tenant, kinds, target.keeps(reg))
    text = render.verification_text(result)
    shown = text if verbose else render.verification_text(result, with_id_map=False)
    path = run.write_report(wd, "verify", verify_document(result), text)
    render.say(shown)
    render.say(f"report: {path} (and {path.with_suffix('.txt').name})")
    return result.equal


@cli.command()
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@click.option("--src", metavar="CLOUD", help="Compare with the live source (default: the workdir).")
@workdir_option
@mapping_option
@selection_options
@verbose_option
@handles_errors
def verify(
    dst: str,
    src: str | None,
    workdir: Path,
    mapping: Path | None,
    switches: frozenset[str],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    verbose: bool,
) -> None:
    """Compare source and destination field by field; exit 0 only when they are equal."""
    target = Target(dst, workdir, mapping, only, skip, switches=switches)
    sys.exit(0 if _verify(target, src, CallCounter(), verbose) else EXIT_FAILED)


@cli.command()
@click.option("--src", metavar="CLOUD", help="Source cloud (or --bundle).")
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@functools.partial(tenant_options, project_required=False)
@click.option("--calls", is_flag=True, help="Print the API calls made, by service and method.")
@workdir_option
@mapping_option
@selection_options
@apply_options
@bundle_option
@handles_errors
def migrate(
    src: str | None,
    dst: str,
    project: str | None,
    domain: str,
    include: str | None,
    exclude: str | None,
    calls: bool,
    workdir: Path,
    mapping: Path | None,
    switches: frozenset[str],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    parallel: int,
    dry_run: bool,
    quiet: bool,
    partial: bool,
    adopt: tuple[str, ...],
    archive: Path | None,
    verbose: bool,
    cutover: str,
    ceph: Path | None,
    bundle: Path | None,
) -> None:
    """Export, plan, apply and verify in one go: the everyday command. Re-run it after any
    failure or interruption; it continues where the last run stopped. With --bundle (made
    by `export --bundle`), from the bundle alone: no source cloud."""
    if bundle is not None and (src or project or include or exclude):
        raise click.UsageError(
            "--bundle replaces --src, --project, --include and --exclude: the bundle holds "
            "the exported tenant (choose kinds with --only/--skip)"
        )
    if bundle is None and not (src and project):
        raise click.UsageError("give --src and --project (or --bundle FILE)")
    counter = CallCounter()
    target = Target(dst, workdir, mapping, only, skip, adopt, switches, ceph, bundle)
    CephSettings.load(ceph)  # broken ceph settings: refused before reading
    target.load_mapping(make_registry())  # a broken mapping file: refused before reading
    make_registry().select(only, skip)  # so are contradicting --only/--skip
    if src and project:
        _export(src, Tenant(project, domain), include, exclude, workdir, only, skip, counter)
    how = Run(parallel, dry_run, quiet, partial, archive, verbose, cutover)
    ok = _apply(target, how, counter, src)
    if not dry_run:
        ok = _verify(target, None, counter, verbose) and ok
    if calls:
        render.console.print(render.calls_table(counter))
    sys.exit(0 if ok else EXIT_FAILED)


@cli.command()
@click.option("--src", required=True, metavar="CLOUD", help="Source cloud.")
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@tenant_options
@workdir_option
@mapping_option
@click.option(
    "--ceph",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The clusters (as for migrate --ceph): warm sync works over RBD.",
)
@click.option("--parallel", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option("-q", "--quiet", is_flag=True, help="No progress, only summaries.")
@handles_errors
def sync(
    src: str,
    dst: str,
    project: str,
    domain: str,
    include: str | None,
    exclude: str | None,
    workdir: Path,
    mapping: Path | None,
    switches: frozenset[str],
    ceph: Path,
    parallel: int,
    quiet: bool,
) -> None:
    """Warm sync: copy the tenant's volumes on RBD while they are in use, as often as you
    like; each pass sends only what changed since the last. Nothing is stopped and the
    destination volumes stay unattached; `migrate` (same workdir, same --ceph) then stops
    the servers and sends only the last difference. Volumes elsewhere wait for migrate."""
    counter = CallCounter()
    target = Target(dst, workdir, mapping, ("volumes",), (), (), switches, ceph)
    target.load_mapping(make_registry())
    CephSettings.load(ceph)
    _export(src, Tenant(project, domain), include, exclude, workdir, ("volumes",), (), counter)
    how = Run(parallel, False, quiet, False, None, cutover="live")
    ok = _apply(target, how, counter, src, {"sync": "warm"})
    sys.exit(0 if ok else EXIT_FAILED)


cli.add_command(images)
cli.add_command(usage)
cli.add_command(servers)
cli.add_command(hosts)
cli.add_command(finish)


def main() -> None:
    cli(prog_name="stackferry")

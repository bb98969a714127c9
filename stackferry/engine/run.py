"""The four operations an operator runs, composed from the engine's pieces."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openstack.connection import Connection

from stackferry.cloud.connection import is_admin
from stackferry.data.transfer import DataPlane
from stackferry.engine import bundles
from stackferry.engine.apply import Executor, Outcome, Progress
from stackferry.engine.context import Context, Kept, SourceChanges, Tenant
from stackferry.engine.journal import Journal
from stackferry.engine.kind import Kind
from stackferry.engine.mapping import Mapping
from stackferry.engine.model import Resource
from stackferry.engine.plan import (
    CHANGES,
    PROBLEMS,
    Action,
    Adoption,
    Owners,
    Plan,
    Step,
    make_plan,
    parent_key,
    propagate_blocks,
    read_destination,
)
from stackferry.engine.read import read_cloud
from stackferry.engine.registry import Registry
from stackferry.engine.temporaries import Temporaries
from stackferry.engine.workdir import Workdir
from stackferry.errors import StackferryError, WorkdirError
from stackferry.files import write_atomic


def _reading_set(registry: Registry, chosen: list[Kind]) -> list[Kind]:
    """What must be read to resolve the chosen kinds: them, their dependencies, lookups and
    the kinds that find the tenant."""
    wanted = {k.name for k in chosen}
    grew = True
    while grew:
        more = {d for n in wanted for d in registry.dependencies(registry[n])}
        grew = not more <= wanted
        wanted |= more
    tenant = registry.tenant_kind
    if tenant:
        wanted |= {tenant.name} | registry.dependencies(tenant)
    return [k for k in registry.ordered if k.name in wanted or k.lookup_only]


def read_tenant(
    registry: Registry,
    conn: Connection,
    tenant: Tenant,
    kinds: list[Kind],
    label: str = "",
    journal_path: Path | None = None,
) -> tuple[Context, dict[str, list[Resource]]]:
    """Read the tenant's resources of ``kinds`` (and what they reference) from one cloud; for
    the source, ``journal_path`` says what stackferry changed there (read as it was before)."""
    ctx = Context(conn, Tenant(tenant.name, tenant.domain), is_admin=is_admin(conn), label=label)
    if journal_path is not None:
        ctx.source_changes = SourceChanges(Journal.source_changes_at(journal_path))
    return ctx, read_cloud(_reading_set(registry, kinds), ctx)


def export(
    registry: Registry,
    conn: Connection,
    tenant: Tenant,
    kinds: list[Kind],
    workdir: Path,
    cloud_label: str,
    notes: list[str] | None = None,
    keeps: Callable[[Resource], bool] | None = None,
) -> Workdir:
    """``keeps``: which resources of ``kinds`` to write (``--only KIND:PATTERN``)."""
    notes = notes if notes is not None else []
    journal_path = Workdir(workdir).journal_path
    ctx, found = read_tenant(registry, conn, tenant, kinds, cloud_label, journal_path)
    notes.extend(ctx.notes)
    if ctx.tenant.id is None:
        raise StackferryError(
            f"project {tenant.name!r} in domain {tenant.domain!r} does not "
            f"exist in cloud {cloud_label} (or these credentials cannot see it)"
        )
    duplicates = []
    for kind in kinds:
        seen: set[str] = set()
        for r in found.get(kind.name, []):
            if r.key in seen:
                duplicates.append(f"{kind.plural}: more than one with identity {r.identity}")
            seen.add(r.key)
    if duplicates:
        raise StackferryError(
            "stackferry names resources by their identity, which must be unique; rename these "
            "in the source (or skip the kind):\n  " + "\n  ".join(duplicates)
        )
    wd = Workdir(workdir)
    keep = keeps or (lambda r: True)
    wd.resources = {
        k.name: [r for r in found.get(k.name, []) if keep(r)] for k in kinds if not k.lookup_only
    }
    wd.save(registry, tenant, cloud_label, kinds)
    return wd


def bundle(
    wd: Workdir,
    path: Path,
    kinds: list[Kind],
    conn: Connection,
    with_data: bool,
    header: dict[str, Any],
) -> bundles.Bundled:
    """The exported workdir ``wd`` into a bundle; with its bytes read from the source
    ``conn``, through temporaries journalled (a volume's upload to an image) and removed."""
    if not with_data:
        return bundles.write(wd, path, kinds, header)
    assert wd.tenant is not None
    ctx = Context(conn, Tenant(wd.tenant.name, wd.tenant.domain), is_admin=is_admin(conn))
    ctx.data = DataPlane(source=conn)
    journal = Journal(wd.journal_path)
    journal.start_run("bundle")
    ctx.temporaries = Temporaries(journal, {"source": conn})
    try:
        done = bundles.write(wd, path, kinds, header, ctx)
    except BaseException:
        journal.finish_run("failed")
        raise
    finally:
        ctx.temporaries.clean()
    journal.finish_run("ok")
    journal.close()
    return done


@dataclass
class Planned:
    plan: Plan
    ctx: Context
    tenant: Tenant
    chosen: list[Kind]
    owners: Owners = field(default_factory=Owners)


def plan(
    registry: Registry,
    wd: Workdir,
    conn: Connection,
    kinds: list[Kind],
    mapping: Mapping,
    adopt: Adoption | None = None,
    label: str = "",
    options: dict[str, str] | None = None,
    data: DataPlane | None = None,
    keeps: Callable[[Resource], bool] | None = None,
) -> Planned:
    """``data``: what the kinds' checks and explanations may look at (e.g. the ceph
    settings that choose a volume's path); ``keeps``: which resources of the workdir the
    plan is about (``--only KIND:PATTERN``)."""
    assert wd.tenant is not None
    tenant = mapping.tenant(wd.tenant)
    chosen = [k for k in kinds if k.name in wd.resources or k.lookup_only]
    keep = keeps or (lambda r: True)
    desired = mapping.apply(
        {
            k.name: [r for r in wd.resources.get(k.name, []) if keep(r)]
            for k in chosen
            if not k.lookup_only
        },
    )
    ctx = Context(
        conn,
        Tenant(tenant.name, tenant.domain),
        is_admin=is_admin(conn),
        label=label,
        options=dict(options or {}),
    )
    if data is not None:
        ctx.data = data
    ctx.kept = Kept(Journal.kept_at(wd.journal_path))
    current = read_destination(_reading_set(registry, chosen), ctx, desired)
    tenant_kind, tenant_key = registry.tenant_kind, registry.tenant_key(tenant)
    tenant_now = (
        current.get(tenant_kind.name, {}).get(tenant_key) if tenant_kind and tenant_key else None
    )
    owners = Owners(Journal.owned_at(wd.journal_path), adopt or Adoption(), tenant_key, tenant_now)
    the_plan = make_plan(registry, chosen, desired, current, tenant_key, owners)
    check(registry, the_plan, ctx)
    return Planned(the_plan, ctx, tenant, chosen, owners)


def check(registry: Registry, the_plan: Plan, ctx: Context) -> None:
    """What the destination would refuse, found before anything is written: blocked; and
    what a create will do that the operator should see (a server's stop window)."""
    ctx.creating = creating(the_plan)
    for step in the_plan.steps:
        if step.action not in CHANGES:
            continue
        kind = registry[step.resource.kind]
        problems = kind.check(ctx, step.resource)
        bundle = ctx.data.bundle
        if bundle is not None and moves_data(registry, step):
            missing = bundles.missing_bytes(bundle, step.resource)
            problems = [*problems, missing] if missing else problems
        if problems:
            step.action = Action.BLOCKED
            step.reason = "; ".join(problems)
        elif step.action in (Action.CREATE, Action.REPLACE) and not step.reason:
            step.reason = kind.explain(ctx, step.resource)
    propagate_blocks(the_plan.steps)
    ctx.creating = creating(the_plan)  # what the checks blocked is not


def creating(the_plan: Plan) -> frozenset[str]:
    return frozenset(
        SourceChanges.key(s.resource.kind, s.resource.cloud_id)
        for s in the_plan.steps
        if s.action in (Action.CREATE, Action.REPLACE) and s.resource.cloud_id
    )


def moves_data(registry: Registry, step: Step) -> bool:
    """Will this step stream bytes from the source?"""
    kind = registry[step.resource.kind]
    if not kind.moves_data:
        return False
    return step.action in (Action.CREATE, Action.REPLACE) or (
        step.action == Action.UPDATE and bool(kind.data_params & set(step.changes))
    )


class PlanRefused(StackferryError):
    """The plan has resources in conflict or blocked, and the operator did not say --partial."""


def refuse_problems(the_plan: Plan, partial: bool) -> None:
    problems = the_plan.problems
    if not problems or partial:
        return
    counts = ", ".join(
        f"{sum(1 for s in problems if s.action == a)} {a}"
        for a in PROBLEMS
        if any(s.action == a for s in problems)
    )
    raise PlanRefused(
        f"the plan has {counts} (listed above with the reason for each); nothing was changed. "
        "Fix them (the workdir, the mapping, the destination, or --adopt what stackferry did "
        "not make), or give --partial to apply the rest and report these"
    )


def apply(
    registry: Registry,
    planned: Planned,
    journal: Journal,
    parallel: int,
    progress: Progress | None = None,
    data: DataPlane | None = None,
    partial: bool = False,
) -> Outcome:
    refuse_problems(planned.plan, partial)
    if data is not None:
        planned.ctx.data = data
    journal.adopt(planned.owners.adopted(planned.plan.steps))
    movers = [s for s in planned.plan.steps if moves_data(registry, s)]
    if movers and planned.ctx.data.source is None and planned.ctx.data.bundle is None:
        kinds = sorted({registry[s.resource.kind].plural for s in movers})
        raise StackferryError(
            f"{len(movers)} resource(s) carry data ({movers[0].resource.kind} "
            f"{movers[0].resource.label}, ...): give the source cloud with --src, or leave "
            f"them out with {' '.join(f'--skip {k}' for k in kinds)}"
        )
    conns = {"destination": planned.ctx.conn}
    if planned.ctx.data.source is not None:
        conns["source"] = planned.ctx.data.source
    planned.ctx.temporaries = Temporaries(journal, conns)
    planned.ctx.source_changes = SourceChanges(journal=journal)
    planned.ctx.kept = Kept(journal=journal)
    executor = Executor(
        registry,
        planned.ctx,
        journal,
        parallel,
        progress,
    )
    return executor.run(planned.plan)


@dataclass
class Difference:
    kind: str
    identity: dict[str, Any]
    problem: str  # missing / different / unexpected (counts) / extra (only reported)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Verification:
    differences: list[Difference]
    compared: int
    id_map: list[dict[str, Any]]

    @property
    def equal(self) -> bool:
        return not [d for d in self.differences if d.problem != "extra"]


def verify(
    registry: Registry,
    source: dict[str, list[Resource]],
    mapping: Mapping,
    conn: Connection,
    tenant: Tenant,
    kinds: list[Kind],
    keeps: Callable[[Resource], bool] | None = None,
) -> Verification:
    """Compare the source's resources (live or from the workdir) with the destination's;
    ``keeps``: which resources of ``kinds`` are compared (``--only KIND:PATTERN``)."""
    chosen = [k for k in kinds if not k.lookup_only]
    keep = keeps or (lambda r: True)
    desired = mapping.apply(
        {k.name: [r for r in source.get(k.name, []) if keep(r)] for k in chosen}
    )
    target = mapping.tenant(tenant)
    _, found = read_tenant(registry, conn, target, chosen)
    found = {name: [r for r in items if keep(r)] for name, items in found.items()}
    differences: list[Difference] = []
    id_map: list[dict[str, Any]] = []
    compared = 0
    for kind in chosen:
        have = {r.key: r for r in found.get(kind.name, [])}
        for want in desired.get(kind.name, []):
            compared += 1
            got = have.pop(want.key, None)
            if got is None:
                differences.append(Difference(kind.name, want.identity, "missing"))
                continue
            entry: dict[str, Any] = {
                "kind": kind.name,
                "identity": want.identity,
                "source_id": want.id,
                "destination_id": got.id,
            }
            for fact in kind.mapped_facts:
                entry[fact] = {"source": want.facts.get(fact), "destination": got.facts.get(fact)}
            id_map.append(entry)
            if want.facts.get("mapped_from") is not None:
                # Mapped onto the destination's own resource: it exists; its fields are its own.
                entry["mapped_from"] = want.facts["mapped_from"]
                continue
            changed = kind.changed_fields(want.params, got.params)
            if changed:
                differences.append(
                    Difference(
                        kind.name,
                        want.identity,
                        "different",
                        {
                            f: {
                                "source": kind.shown(f, want.params.get(f)),
                                "destination": kind.shown(f, got.params.get(f)),
                            }
                            for f in sorted(changed)
                        },
                    )
                )
        wanted = {r.key for k in chosen for r in desired.get(k.name, [])}
        for extra in have.values():
            # Inside a migrated parent, an extra is a real difference (apply would prune it).
            inside = parent_key(kind, extra) in wanted
            differences.append(
                Difference(kind.name, extra.identity, "unexpected" if inside else "extra")
            )
    return Verification(differences, compared, id_map)


def write_report(wd: Workdir, name: str, document: dict[str, Any], text: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        base = wd.reports / f"{name}-{stamp}"
        write_atomic(base.with_suffix(".json"), json.dumps(document, indent=2, default=str))
        write_atomic(base.with_suffix(".txt"), text)
    except OSError as exc:
        raise WorkdirError(
            f"cannot write the {name} report into {wd.root}/reports: {exc}"
        ) from None
    return base.with_suffix(".json")

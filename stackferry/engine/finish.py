"""Finishing a migration: what stackferry left behind, taken away once verify is equal.

The destination (``stackferry finish``): the temporaries the journal still records are
removed, as at the end of every run, and stackferry's marker comes off every destination
resource of the workdir that carries it (``Kind.marked`` / ``Kind.unmark``). Each is written
to the journal before its marker goes, so a later migrate still knows what it made: ownership
then comes from the journal alone.

The source (``stackferry finish --retire-source``): the migrated resources - the workdir's,
found in the source under the same ID, of kinds that ``retire`` and that the kind does not
keep (``Kind.retirable``) - are deleted from the source, in the reverse of the order apply
makes them (within a kind, a resource before those of its kind it references). Each deletion
is written to the journal before it is made; one already gone is fine, one the cloud refuses
is reported and the others go on. A resource of the source that the workdir does not have is
never touched.

Both refuse, changing nothing, unless verify finds source and destination equal. Nothing
here names a kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from openstack import exceptions
from openstack.connection import Connection

from stackferry.cloud.connection import api_message
from stackferry.cloud.retry import OPERATIONS, RetryPolicy
from stackferry.engine.context import Context
from stackferry.engine.journal import FinishState, Journal
from stackferry.engine.kind import Kind
from stackferry.engine.model import Resource, identity_key
from stackferry.engine.plan import parent_key, references
from stackferry.engine.registry import Registry
from stackferry.engine.run import Verification
from stackferry.engine.temporaries import Temporaries
from stackferry.errors import StackferryError

Keeps = Callable[[Resource], bool]


class FinishRefused(StackferryError):
    """Verify found differences: finishing would lose what the destination lacks."""


def differences(result: Verification) -> int:
    """The differences that make a verification unequal (extras are only reported)."""
    return sum(1 for d in result.differences if d.problem != "extra")


def refuse_unless_equal(result: Verification, report: Path | None, changed: str) -> None:
    """Nothing is finished on a migration verify does not find equal."""
    if result.equal:
        return
    where = f"the verify report: {report}" if report else "listed above"
    raise FinishRefused(
        f"verify found {differences(result)} difference(s) between source and destination "
        f"({where}); nothing was {changed}. Bring the destination in line first (stackferry "
        "apply or migrate), then finish again"
    )


# --- the destination --------------------------------------------------------------------


@dataclass
class Finishing:
    """What ``finish`` would remove from the destination (what --dry-run shows)."""

    markers: list[Resource]  # destination resources of the workdir carrying the marker
    temporaries: list[tuple[str, str, str]]  # (key, description, undo) the journal records

    @property
    def empty(self) -> bool:
        return not self.markers and not self.temporaries


def plan_finish(
    registry: Registry,
    result: Verification,
    found: dict[str, list[Resource]],
    state: FinishState,
) -> Finishing:
    """The destination resources verify matched with the workdir's (``found``: the
    destination as read), those of them that carry stackferry's marker, in apply's order;
    and the temporaries still to remove. Resources the mapping put onto the destination's
    own are the destination's: never touched."""
    ours = {identity_key(e["kind"], e["identity"]) for e in result.id_map if "mapped_from" not in e}
    markers = [
        current
        for kind in registry.ordered
        for current in found.get(kind.name, [])
        if current.key in ours and kind.marked(current)
    ]
    return Finishing(markers, list(state.temporaries))


@dataclass
class Finished:
    unmarked: list[Resource] = field(default_factory=list)
    gone: list[Resource] = field(default_factory=list)  # no longer there: nothing to take off
    failed: list[tuple[Resource, str]] = field(default_factory=list)
    temporaries: list[str] = field(default_factory=list)  # removed
    temporaries_left: list[str] = field(default_factory=list)  # not yet: the next run retries

    @property
    def complete(self) -> bool:
        return not self.failed and not self.temporaries_left


def finish_destination(
    registry: Registry,
    finishing: Finishing,
    ctx: Context,
    journal: Journal,
    conns: dict[str, Connection],
    policy: RetryPolicy = OPERATIONS,
) -> Finished:
    """Take the marker off each resource (journalled first), then remove the temporaries;
    a finish that left nothing behind is recorded as the migration's finish."""
    done = Finished()
    for current in finishing.markers:
        kind = registry[current.kind]
        journal.unmarking(current.key, kind.name, current.cloud_id)
        try:
            policy.run(
                partial(kind.unmark, ctx, current),
                f"taking stackferry's marker off {kind.name} {current.label}",
            )
        except exceptions.NotFoundException:
            done.gone.append(current)
        except Exception as exc:
            done.failed.append((current, api_message(exc)))
        else:
            done.unmarked.append(current)
    temporaries = Temporaries(journal, conns)
    done.temporaries = temporaries.clean()
    done.temporaries_left = list(temporaries.left)
    if done.complete:
        journal.finished(
            "finish",
            {
                "markers": [f"{r.kind} {r.label}" for r in done.unmarked],
                "temporaries": done.temporaries,
            },
        )
    return done


# --- the source -------------------------------------------------------------------------


def verified_source(
    registry: Registry,
    workdir: dict[str, list[Resource]],
    live: dict[str, list[Resource]],
    retiring: set[str],
    keeps: Keeps | None = None,
) -> dict[str, list[Resource]]:
    """What ``--retire-source`` compares with the destination: the workdir's resources as
    the live source has them now (a change since the export is a difference). A resource
    the export did not see is not the migration's and is not compared - except a part inside
    a migrated parent (a rule added to a migrated group), which the parent's deletion would
    take along: compared, so it is a difference. A resource a retirement started deleting
    (it may be half gone) and one no longer in the source are compared as the workdir has
    them: they were the migration's, and the destination must still have them."""
    keep = keeps or (lambda r: True)
    exported_keys = {r.key for items in workdir.values() for r in items if keep(r)}
    out: dict[str, list[Resource]] = {}
    for kind_name, exported in workdir.items():
        kind = registry[kind_name]
        here = {r.key: r for r in live.get(kind_name, [])}
        items = [
            here[r.key] if r.key in here and r.key not in retiring else r
            for r in exported
            if keep(r)
        ]
        if kind.prune_within:
            items += [
                r
                for key, r in here.items()
                if key not in exported_keys and parent_key(kind, r) in exported_keys
            ]
        out[kind_name] = items
    return out


@dataclass
class Retirement:
    """What ``--retire-source`` deletes from the source, in order, and what it leaves."""

    delete: list[Resource]  # as the source has them, in the order they are deleted
    left: list[tuple[Resource, str]]  # (resource, why it stays)


def plan_retirement(
    registry: Registry,
    kinds: list[Kind],
    workdir: dict[str, list[Resource]],
    live: dict[str, list[Resource]],
    keeps: Keeps | None = None,
) -> Retirement:
    """The workdir's resources still in the source (``live``) with the ID they were exported
    with: those of kinds that retire, unless the kind keeps them; the others are left, each
    with why. Whatever the source has beyond the workdir is neither listed nor touched."""
    keep = keeps or (lambda r: True)
    chosen = {k.name for k in kinds if not k.lookup_only}
    delete: list[Resource] = []
    left: list[tuple[Resource, str]] = []
    for kind in registry.ordered:
        if kind.name not in chosen:
            continue
        here = {r.key: r for r in live.get(kind.name, [])}
        for exported in workdir.get(kind.name, []):
            current = here.get(exported.key)
            if current is None or not keep(exported):
                continue  # gone from the source already (a retirement before), or not chosen
            if not kind.retire:
                left.append((current, kind.kept_because))
            elif exported.id is not None and current.id != exported.id:
                left.append(
                    (
                        current,
                        f"not the one exported: its ID in the source is {current.id}, the "
                        f"workdir's {exported.id} (made again since the export?)",
                    )
                )
            elif why := kind.retirable(current):
                left.append((current, why))
            else:
                delete.append(current)
    return Retirement(deletion_order(registry, delete), left)


def deletion_order(registry: Registry, resources: list[Resource]) -> list[Resource]:
    """The reverse of apply's order: kinds in the registry's order reversed (a server before
    its ports, a router - and its interfaces - before the subnets they are on), and within a
    kind a resource before the ones of its kind it references (a child before its parent)."""
    by_kind: dict[str, list[Resource]] = {}
    for resource in resources:
        by_kind.setdefault(resource.kind, []).append(resource)
    out: list[Resource] = []
    for kind in reversed(registry.ordered):
        out += _referrers_first(kind, by_kind.get(kind.name, []))
    return out


def _referrers_first(kind: Kind, items: list[Resource]) -> list[Resource]:
    own = {ref.kind for ref in kind.refs} & {kind.name}
    if not own:
        return list(items)
    remaining = list(items)
    out: list[Resource] = []
    while remaining:
        referenced = {
            key
            for r in remaining
            for key in references(kind, r)
            if key != r.key and key.startswith(f"{kind.name}:")
        }
        free = [r for r in remaining if r.key not in referenced]
        if not free:  # a cycle: the rest as it comes, the cloud says what it refuses
            free = remaining
        out += free
        remaining = [r for r in remaining if r not in free]
    return out


@dataclass
class Retired:
    deleted: list[Resource] = field(default_factory=list)
    gone: list[Resource] = field(default_factory=list)  # already gone: fine
    failed: list[tuple[Resource, str]] = field(default_factory=list)


def retire(
    registry: Registry,
    retirement: Retirement,
    ctx: Context,
    journal: Journal,
    progress: Callable[[Resource, str], None] | None = None,
    policy: RetryPolicy = OPERATIONS,
) -> Retired:
    """Delete each resource from the source (``ctx``'s cloud), one after the other in the
    retirement's order, each journalled before; a refusal is reported and the rest goes on.
    A retirement with no failure is recorded as the source's finish."""
    done = Retired()
    tell = progress or (lambda resource, state: None)
    for resource in retirement.delete:
        kind = registry[resource.kind]
        journal.retiring(resource.key, kind.name, resource.cloud_id)
        try:
            policy.run(
                partial(kind.delete, ctx, resource),
                f"deleting {kind.name} {resource.label} from the source",
            )
        except exceptions.NotFoundException:
            journal.retired(resource.key, "gone")
            done.gone.append(resource)
            tell(resource, "gone")
        except Exception as exc:
            message = api_message(exc)
            journal.retired(resource.key, "failed", message)
            done.failed.append((resource, message))
            tell(resource, "failed")
        else:
            journal.retired(resource.key, "deleted")
            done.deleted.append(resource)
            tell(resource, "deleted")
    if not done.failed:
        journal.finished(
            "retire-source",
            {
                "deleted": [f"{r.kind} {r.label}" for r in done.deleted],
                "gone": [f"{r.kind} {r.label}" for r in done.gone],
                "left": [f"{r.kind} {r.label}: {why}" for r, why in retirement.left],
            },
        )
    return done

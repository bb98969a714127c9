"""Plan: compare the desired resources with the destination, one list call per kind.

Each resource gets one action: ``create``, ``update`` (with the changed fields), ``replace``
(a field that cannot change in place differs, and the kind can make the resource again: it
is deleted, then created - only what stackferry made), ``unchanged``, ``conflict`` or
``blocked``:

- ``conflict``: it exists in the destination and cannot be brought in line - a field that
  cannot change in place differs, or stackferry did not make it (nothing says so: no marker on
  it, no create of it in the journal) and the operator has not adopted it. What stackferry did
  not make is never changed nor pruned without being asked.
- ``blocked``: something it needs is missing - a reference that is neither in the workdir nor
  in the destination, a name the mapping points at that the destination lacks, or a value the
  destination would refuse (``Kind.check``) - or it is part of a resource in conflict.

Kinds that declare ``prune_within`` are parts of their parent (rules of a security group):
destination-only parts of a migrated parent get ``delete``, but only when the parent is
stackferry's; nothing else is ever deleted.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stackferry.engine.context import Context
from stackferry.engine.kind import Kind, Ownership, get_ref, iter_ref_values
from stackferry.engine.model import Resource, identity_key
from stackferry.engine.read import read_cloud
from stackferry.engine.registry import Registry
from stackferry.errors import StackferryError


class Action(StrEnum):
    """What the plan says apply will do with a resource."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    BLOCKED = "blocked"


ACTIONS = tuple(Action)
WRITES = (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE)
PROBLEMS = (Action.CONFLICT, Action.BLOCKED)
CHANGES = (Action.CREATE, Action.UPDATE, Action.REPLACE)  # what the destination may refuse


@dataclass
class Step:
    resource: Resource
    action: Action
    current: Resource | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reason: str = ""
    needs: list[str] = field(default_factory=list)  # keys of resources this one references

    @property
    def key(self) -> str:
        return self.resource.key

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.resource.kind,
            "identity": self.resource.identity,
            "action": self.action,
            "changes": {
                k: {"destination": old, "desired": new} for k, (old, new) in self.changes.items()
            },
            "reason": self.reason,
            "destination_id": self.current.id if self.current else None,
        }


@dataclass
class Plan:
    steps: list[Step]
    tenant_exists: bool

    def counts(self) -> dict[str, int]:
        return {a: sum(1 for s in self.steps if s.action == a) for a in ACTIONS}

    @property
    def writes_needed(self) -> bool:
        return any(s.action in WRITES for s in self.steps)

    @property
    def problems(self) -> list[Step]:
        return [s for s in self.steps if s.action in PROBLEMS]


@dataclass(frozen=True)
class Adoption:
    """The operator's ``--adopt KIND`` or ``--adopt KIND:NAME-PATTERN`` (a shell pattern on the
    name the plan shows): destination resources to manage as if stackferry had made them."""

    selectors: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, registry: Registry, texts: Iterable[str]) -> Adoption:
        selectors = []
        for text in texts:
            name, _, pattern = text.partition(":")
            kind = registry[name] if name in registry else registry.by_plural(name)
            if kind is None:
                raise StackferryError(
                    f"--adopt {text}: unknown kind {name!r}; known: {', '.join(registry.names)}"
                )
            selectors.append((kind.name, pattern or "*"))
        return cls(tuple(selectors))

    def __call__(self, resource: Resource) -> bool:
        return any(
            kind == resource.kind and fnmatch.fnmatchcase(resource.label, pattern)
            for kind, pattern in self.selectors
        )


@dataclass
class Owners:
    """Who made what in the destination: what each resource says of itself (our marker), the
    journal (identities whose create a run started, or that were adopted), and ``--adopt``."""

    journal: set[str] = field(default_factory=set)
    adopt: Adoption = field(default_factory=Adoption)
    tenant_key: str | None = None
    tenant: Resource | None = None  # the tenant project as the destination has it, if it does

    def owns(self, kind: Kind, current: Resource) -> bool:
        if current.key in self.journal or self.adopt(current):
            return True
        said = kind.ownership(current)
        if said is Ownership.MARKED:
            return True
        if said is Ownership.WITH_TENANT:  # quotas, the default group: the project's own
            return self.tenant is None or self.tenant.key in self.journal or self.adopt(self.tenant)
        return False

    def adopted(self, steps: Sequence[Step]) -> list[str]:
        """Keys of existing resources in the plan that the operator adopts: to be recorded, so
        that a later run knows them as stackferry's without being told again."""
        return [s.key for s in steps if s.current is not None and self.adopt(s.current)]


def references(kind: Kind, resource: Resource) -> list[str]:
    keys = []
    for ref in kind.refs:
        for container, key in iter_ref_values(resource.params, ref.path):
            value = get_ref(container, key)
            if isinstance(value, dict):
                keys.append(identity_key(ref.kind, value))
    return keys


def read_destination(
    kinds: list[Kind], ctx: Context, desired: dict[str, list[Resource]] | None = None
) -> dict[str, dict[str, Resource]]:
    """What the destination has of every kind the plan needs, by key."""
    return {
        name: {r.key: r for r in items} for name, items in read_cloud(kinds, ctx, desired).items()
    }


def parent_key(kind: Kind, resource: Resource) -> str | None:
    """For a kind with ``prune_within``: the key of the resource that contains this one."""
    path = kind.prune_within
    if not path:
        return None
    ref = next(r for r in kind.refs if r.path == path)
    for container, key in iter_ref_values(resource.params, path):
        value = get_ref(container, key)
        if isinstance(value, dict):
            return identity_key(ref.kind, value)
    return None


def _adopt_hint(resource: Resource) -> str:
    return f"--adopt {resource.kind}:{resource.label!r}"


def make_plan(
    registry: Registry,
    chosen: list[Kind],
    desired: dict[str, list[Resource]],
    current: dict[str, dict[str, Resource]],
    tenant_key: str | None,
    owners: Owners | None = None,
) -> Plan:
    owners = owners or Owners(tenant_key=tenant_key)
    known = {key for by_key in current.values() for key in by_key}
    planned = {r.key for k in chosen for r in desired.get(k.name, [])}
    # Kinds that set the tenant's limits go first: nothing inside it may hit a default quota.
    gates = [r.key for k in chosen if k.gates_tenant for r in desired.get(k.name, [])]
    steps: list[Step] = []
    by_key: dict[str, Step] = {}
    for kind in chosen:
        if kind.lookup_only:
            continue
        for resource in desired.get(kind.name, []):
            needs = references(kind, resource) + kind.extra_needs(resource)
            needs += [k for k in kind.soft_needs(resource) if k in planned]
            if kind.in_project and tenant_key and tenant_key != resource.key:
                needs.append(tenant_key)
            if kind.in_project and not kind.gates_tenant:
                needs.extend(gates)
            existing = current.get(kind.name, {}).get(resource.key)
            step = _step(kind, resource, existing, needs, known, planned, owners)
            steps.append(step)
        _parts(registry, kind, steps, by_key, current.get(kind.name, {}), planned, owners)
        by_key.update((s.key, s) for s in steps)
    propagate_blocks(steps)
    tenant_exists = tenant_key is not None and tenant_key in known
    return Plan(steps, tenant_exists)


def _step(
    kind: Kind,
    resource: Resource,
    existing: Resource | None,
    needs: list[str],
    known: set[str],
    planned: set[str],
    owners: Owners,
) -> Step:
    step = Step(resource, Action.CREATE, existing, needs=needs)
    missing = [k for k in needs if k not in known and k not in planned]
    mapped_from = resource.facts.get("mapped_from")
    if missing:
        step.action = Action.BLOCKED
        step.reason = (
            "needs " + ", ".join(missing) + ", which is neither in the workdir nor in the "
            "destination"
        )
    elif mapped_from is not None:
        step.action = Action.UNCHANGED if existing is not None else Action.BLOCKED
        step.reason = (
            f"mapped from {mapped_from!r} onto an existing resource, which is used as it is"
            if existing is not None
            else f"the mapping renames {mapped_from!r} to {resource.label!r}, which does not "
            "exist in the destination: create it there, or correct the mapping"
        )
    elif existing is not None:
        changed = kind.changed_fields(resource.params, existing.params)
        step.changes = {
            f: (kind.shown(f, existing.params.get(f)), kind.shown(f, resource.params.get(f)))
            for f in sorted(changed)
        }
        frozen = kind.conflicting(changed, existing)
        # Parts (rules) are stackferry's when their parent is: _parts judges them.
        ours = kind.prune_within is not None or owners.owns(kind, existing)
        if frozen and frozen <= kind.replaceable and ours:
            step.action = Action.REPLACE
            step.reason = (
                f"{', '.join(sorted(frozen))} cannot change in place: it is deleted and made again"
            )
        elif frozen:
            step.action = Action.CONFLICT
            step.reason = (
                f"{', '.join(sorted(frozen))} differ(s) and cannot be changed in place; change "
                "the workdir or the destination by hand"
            )
            if frozen <= kind.replaceable:
                step.reason = (
                    f"{', '.join(sorted(frozen))} differ(s), cannot change in place, and "
                    "stackferry did not make it, so it is not made again; to replace it, adopt "
                    f"it: {_adopt_hint(resource)}"
                )
        elif changed and not owners.owns(kind, existing):
            step.action = Action.CONFLICT
            step.reason = (
                "exists in the destination and stackferry did not make it, so it is left as it "
                f"is; to bring it to the source's state, adopt it: {_adopt_hint(resource)}"
            )
        else:
            step.action = Action.UPDATE if changed else Action.UNCHANGED
    return step


def _parts(
    registry: Registry,
    kind: Kind,
    steps: list[Step],
    by_key: dict[str, Step],
    current: dict[str, Resource],
    planned: set[str],
    owners: Owners,
) -> None:
    """Parts of a parent (``prune_within``) follow it: inside a parent that is stackferry's,
    the destination's extra parts are deleted; inside one that is not, nothing is created or
    deleted, and the parent is a conflict when its parts differ."""
    path = kind.prune_within
    if not path:
        return
    parent_kind = registry[next(r.kind for r in kind.refs if r.path == path)]

    def parent_of(resource: Resource) -> tuple[str | None, Step | None]:
        key = parent_key(kind, resource)
        return key, by_key.get(key) if key else None

    def foreign(parent: Step | None) -> bool:
        return (
            parent is not None
            and parent.current is not None
            and not owners.owns(parent_kind, parent.current)
        )

    differing: dict[str, list[str]] = {}
    for step in steps:
        if step.resource.kind != kind.name or step.action not in (Action.CREATE, Action.REPLACE):
            continue
        key, parent = parent_of(step.resource)
        if key and foreign(parent):
            step.action = Action.BLOCKED
            step.reason = f"part of {key}, which stackferry did not make (see its conflict)"
            differing.setdefault(key, []).append("missing")
    wanted = {s.key for s in steps if s.resource.kind == kind.name}
    for extra_key, extra in current.items():
        if extra_key in wanted:
            continue
        key, parent = parent_of(extra)
        if key not in planned:
            continue  # inside a parent that is not migrated: none of our business
        if foreign(parent):
            differing.setdefault(str(key), []).append("extra")
            continue
        steps.append(
            Step(
                extra,
                Action.DELETE,
                extra,
                reason=f"in the destination only, inside {key}, which is being migrated",
            )
        )
    for key, what in differing.items():
        parent = by_key[key]
        if parent.action == Action.CONFLICT:
            continue
        parent.action = Action.CONFLICT
        parent.reason = (
            f"exists in the destination and stackferry did not make it, and its {kind.plural} "
            f"differ ({what.count('missing')} to add, {what.count('extra')} the source lacks), "
            f"so it is left as it is; to bring it to the source's state, adopt it: "
            f"{_adopt_hint(parent.resource)}"
        )


def propagate_blocks(steps: list[Step]) -> None:
    """What needs a blocked resource is blocked too, so the plan shows all it cannot do."""
    blocked = {s.key for s in steps if s.action == Action.BLOCKED}
    grew = True
    while grew:
        grew = False
        for step in steps:
            if step.action not in CHANGES:
                continue
            bad = [k for k in step.needs if k in blocked]
            if bad:
                step.action = Action.BLOCKED
                step.reason = "needs " + ", ".join(bad) + ", which is blocked"
                blocked.add(step.key)
                grew = True

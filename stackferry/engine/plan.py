"""Plan: compare the desired resources with the destination, one list call per kind.

Each resource gets one action: ``create``, ``update`` (with the changed fields), ``unchanged``,
``conflict`` (a field that cannot change in place differs) or ``blocked`` (something it
references is neither in the workdir nor in the destination). Kinds that declare
``prune_within`` also get ``delete`` for destination resources that the workdir lacks, but
only inside a parent the workdir has (e.g. a rule the destination added to a group that is
being migrated); nothing else is ever deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stackferry.engine.model import Resource, identity_key
from stackferry.engine.registry import Registry
from stackferry.kinds.base import Context, Kind, get_ref, iter_ref_values

ACTIONS = ("create", "update", "delete", "unchanged", "conflict", "blocked")
WRITES = ("create", "update", "delete")


@dataclass
class Step:
    resource: Resource
    action: str
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


def references(kind: Kind, resource: Resource) -> list[str]:
    keys = []
    for ref in kind.refs:
        for container, key in iter_ref_values(resource.params, ref.path):
            value = get_ref(container, key)
            if isinstance(value, dict):
                keys.append(identity_key(ref.kind, value))
    return keys


def read_destination(
    registry: Registry, kinds: list[Kind], ctx: Context
) -> dict[str, dict[str, Resource]]:
    """Read every kind the plan needs from the destination, in dependency order."""
    current: dict[str, dict[str, Resource]] = {}
    for kind in kinds:
        if kind.in_project and ctx.tenant.id is None:
            current[kind.name] = {}  # the tenant does not exist yet: nothing of it can
            continue
        current[kind.name] = {r.key: r for r in kind.read(ctx)}
        if getattr(kind, "defines_tenant", False):
            ctx.tenant.id = ctx.ids.id(
                kind.name, {"name": ctx.tenant.name, "domain": ctx.tenant.domain}
            )
    return current


def make_plan(
    registry: Registry,
    chosen: list[Kind],
    desired: dict[str, list[Resource]],
    current: dict[str, dict[str, Resource]],
    tenant_key: str | None,
) -> Plan:
    known = {key for by_key in current.values() for key in by_key}
    planned = {r.key for k in chosen for r in desired.get(k.name, [])}
    # Kinds that set the tenant's limits go first: nothing inside it may hit a default quota.
    gates = [
        r.key for k in chosen if getattr(k, "gates_tenant", False) for r in desired.get(k.name, [])
    ]
    steps: list[Step] = []
    for kind in chosen:
        if getattr(kind, "lookup_only", False):
            continue
        for resource in desired.get(kind.name, []):
            needs = references(kind, resource) + kind.extra_needs(resource)
            needs += [k for k in kind.soft_needs(resource) if k in planned]
            if kind.in_project and tenant_key and tenant_key != resource.key:
                needs.append(tenant_key)
            if kind.in_project and not getattr(kind, "gates_tenant", False):
                needs.extend(gates)
            missing = [k for k in needs if k not in known and k not in planned]
            existing = current.get(kind.name, {}).get(resource.key)
            step = Step(resource, "create", existing, needs=needs)
            if missing:
                step.action = "blocked"
                step.reason = (
                    "needs "
                    + ", ".join(missing)
                    + ", which is neither in the workdir nor in the destination"
                )
            elif existing is not None and resource.facts.get("mapped_from") is not None:
                step.action = "unchanged"
                step.reason = (
                    f"mapped from {resource.facts['mapped_from']!r} onto an existing "
                    "resource, which is used as it is"
                )
            elif existing is not None:
                changed = kind.changed_fields(resource.params, existing.params)
                step.changes = {
                    f: (existing.params.get(f), resource.params.get(f)) for f in sorted(changed)
                }
                frozen = kind.conflicting(changed, existing)
                if frozen:
                    step.action = "conflict"
                    step.reason = (
                        f"{', '.join(sorted(frozen))} differ(s) and cannot be changed "
                        "in place; change the workdir or the destination by hand"
                    )
                else:
                    step.action = "update" if changed else "unchanged"
            steps.append(step)
        steps.extend(
            prune_steps(kind, desired.get(kind.name, []), current.get(kind.name, {}), planned)
        )
    tenant_exists = tenant_key is not None and tenant_key in known
    return Plan(steps, tenant_exists)


def parent_key(kind: Kind, resource: Resource) -> str | None:
    """For a kind with ``prune_within``: the key of the resource that contains this one."""
    path = getattr(kind, "prune_within", None)
    if not path:
        return None
    ref = next(r for r in kind.refs if r.path == path)
    for container, key in iter_ref_values(resource.params, path):
        value = get_ref(container, key)
        if isinstance(value, dict):
            return identity_key(ref.kind, value)
    return None


def prune_steps(
    kind: Kind, desired: list[Resource], current: dict[str, Resource], planned: set[str]
) -> list[Step]:
    if not getattr(kind, "prune_within", None):
        return []
    wanted = {r.key for r in desired}
    return [
        Step(
            extra,
            "delete",
            extra,
            reason="in the destination only, inside "
            f"{parent_key(kind, extra)}, which is being migrated",
        )
        for key, extra in current.items()
        if key not in wanted and parent_key(kind, extra) in planned
    ]

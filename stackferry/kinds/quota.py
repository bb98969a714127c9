"""Quotas of the tenant project: one resource per service (compute, network, block-storage).

Only limits are migrated, never usage. Quotas always exist, so creating one and updating it
both set the limits. The service is the identity, so ``--include``/``--exclude`` select
services by name. Block-storage limits per volume type are kept for the types that have one
(a limit other than -1), renamed through the mapping's ``volume_types``.
"""

from __future__ import annotations

from typing import Any

from stackferry.cloud import catalog, sdk
from stackferry.engine.context import Context
from stackferry.engine.kind import Field, Kind, Ownership
from stackferry.engine.model import Params, Resource

SERVICES = ("compute", "network", "block-storage")
NOT_LIMITS = frozenset({"id", "project_id", "tenant_id"})
PER_TYPE = ("volumes", "gigabytes", "snapshots")  # cinder's <resource>_<volume type> keys


def _limits(values: dict[str, Any]) -> dict[str, int]:
    return {
        k: v
        for k, v in values.items()
        if isinstance(v, int) and not isinstance(v, bool) and k not in NOT_LIMITS
    }


def _split_volume_types(limits: dict[str, int]) -> Params:
    """Cinder's flat keys, with ``volumes_<type>`` etc. gathered into ``volume_types``."""
    params: Params = {}
    per_type: dict[str, dict[str, Any]] = {}
    for key, value in limits.items():
        resource, _, vtype = key.partition("_")
        if resource in PER_TYPE and vtype:  # no global key starts with these prefixes
            per_type.setdefault(vtype, {"type": vtype})[resource] = value
        else:
            params[key] = value
    params["volume_types"] = sorted(
        (e for e in per_type.values() if any(e.get(r, -1) != -1 for r in PER_TYPE)),
        key=lambda e: str(e["type"]),
    )
    return params


class Quota(Kind):
    name = "quota"
    plural = "quotas"
    description = "Quotas (limits only) of the tenant project: compute, network, block-storage"
    identity_fields = ("service",)
    identity_schema = {"service": {"enum": list(SERVICES)}}
    fields = (
        # Block-storage limits per volume type, for the types that have one.
        Field(
            "volume_types",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string"},
                        **{r: {"type": "integer", "minimum": -1} for r in PER_TYPE},
                    },
                    "additionalProperties": False,
                },
            },
            attr=None,
            wire=None,
        ),
    )
    other_params = {"type": "integer", "minimum": -1}  # every limit the service has
    kept_because = "the project's limits: they go with the project"
    nested_mappings = (("volume_types[].type", "volume_types"),)
    gates_tenant = True

    def read(self, ctx: Context) -> list[Resource]:
        pid = ctx.project_id
        out = []
        for service in SERVICES:
            if not ctx.conn.has_service(service):
                continue
            params = self._read(ctx, service, pid)
            out.append(self.resource({"service": service}, params, f"{pid}/{service}", ctx))
        return out

    def ownership(self, current: Resource) -> Ownership:
        """Every project has quotas: they are ours to set when the project is."""
        return Ownership.WITH_TENANT

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        if not resource.params.get("volume_types"):
            return []
        known = catalog.volume_types(ctx.conn, ctx.cache)
        return [
            catalog.missing("volume type", e["type"], known, "volume_types") + " (it has a quota)"
            for e in resource.params.get("volume_types", [])
            if e["type"] not in known
        ]

    def _read(self, ctx: Context, service: str, pid: str) -> Params:
        if service == "compute":
            return _limits(ctx.conn.compute.get_quota_set(pid).to_dict(computed=False))
        if service == "network":
            return _limits(ctx.conn.network.get_quota(pid).to_dict(computed=False))
        limits = _limits(sdk.block_storage(ctx.conn).get_quota_set(pid).to_dict(computed=False))
        return _split_volume_types(limits)

    def changed_fields(self, desired: Params, current: Params) -> set[str]:
        """Per-type limits of types the workdir does not name are the destination's own."""
        changed = {k for k in desired if k != "volume_types" and desired[k] != current.get(k)}
        if "volume_types" in desired:
            want = {e["type"]: e for e in desired["volume_types"]}
            have = {e["type"]: e for e in current.get("volume_types", []) if e["type"] in want}
            defaults = {r: -1 for r in PER_TYPE}
            if any({**defaults, **e} != {**defaults, **have.get(t, {})} for t, e in want.items()):
                changed.add("volume_types")
        return changed

    def _set(self, ctx: Context, service: str, params: Params, fields: set[str]) -> None:
        pid = ctx.project_id
        body: dict[str, Any] = {k: params[k] for k in fields if k != "volume_types"}
        if "volume_types" in fields:
            for entry in params.get("volume_types", []):
                for r in PER_TYPE:
                    if r in entry:
                        body[f"{r}_{entry['type']}"] = entry[r]
        if not body:
            return
        if service == "compute":
            ctx.conn.compute.update_quota_set(pid, **body)
        elif service == "network":
            ctx.conn.network.update_quota(pid, **body)
        elif service == "block-storage":
            sdk.block_storage(ctx.conn).update_quota_set(pid, **body)
        else:
            raise ValueError(f"unknown quota service {service!r}")

    def create(self, ctx: Context, resource: Resource) -> str:
        """Quotas always exist: set every limit of the workdir."""
        service = resource.identity["service"]
        self._set(ctx, service, resource.params, set(resource.params))
        return f"{ctx.project_id}/{service}"

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        self._set(ctx, resource.identity["service"], resource.params, changed)

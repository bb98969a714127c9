"""Neutron networks of the tenant, and the external networks its routers and FIPs point at."""

from __future__ import annotations

from typing import Any

from stackferry.cloud import catalog
from stackferry.engine.context import Context
from stackferry.engine.formats import DESCRIPTION, NAME
from stackferry.engine.kind import Kind, has_marker, with_marker, without_marker
from stackferry.engine.model import Resource

PROVIDER_TYPES_KEPT = ("flat", "vlan")  # tunnel segmentation IDs are allocated, not migrated


class ExternalNetwork(Kind):
    """Lookup only: external networks are the cloud's, not the tenant's. Referenced by name
    (renamed through the mapping's ``external_networks``), never created."""

    name = "external_network"
    plural = "external_networks"
    in_project = False
    lookup_only = True
    mapping_category = "external_networks"

    def read(self, ctx: Context) -> list[Resource]:
        return [
            self.resource({"name": n.name}, {}, n.id, ctx)
            for n in ctx.conn.network.networks(is_router_external=True)
        ]


class Network(Kind):
    name = "network"
    plural = "networks"
    description = "Neutron networks: MTU, port security, shared, tags, provider attributes"
    identity_schema = {"name": NAME}
    params_schema = {
        "type": "object",
        "properties": {
            "description": DESCRIPTION,
            "admin_state_up": {"type": "boolean"},
            "mtu": {"type": ["integer", "null"], "minimum": 68, "maximum": 65535},
            "port_security_enabled": {"type": "boolean"},
            "shared": {"type": "boolean"},
            "external": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "availability_zone_hints": {"type": "array", "items": {"type": "string"}},
            "provider": {
                "type": ["object", "null"],
                "properties": {
                    "network_type": {"type": "string"},
                    "physical_network": {"type": ["string", "null"]},
                    "segmentation_id": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "maximum": 4094,
                    },
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }
    immutable = frozenset({"provider", "availability_zone_hints"})
    mapped_values = (("availability_zone_hints[]", "availability_zones"),)

    def read(self, ctx: Context) -> list[Resource]:
        out = []
        for n in ctx.conn.network.networks(project_id=ctx.project_id):
            provider = None
            if n.provider_network_type in PROVIDER_TYPES_KEPT:
                provider = {
                    "network_type": n.provider_network_type,
                    "physical_network": n.provider_physical_network,
                    "segmentation_id": n.provider_segmentation_id,
                }
            params = {
                "description": n.description or "",
                "admin_state_up": n.is_admin_state_up,
                "mtu": n.mtu,
                "port_security_enabled": n.is_port_security_enabled,
                "shared": n.is_shared,
                "external": n.is_router_external,
                "tags": without_marker(n.tags),
                "availability_zone_hints": sorted(n.availability_zone_hints or []),
                "provider": provider,
            }
            out.append(
                self.resource(
                    {"name": n.name},
                    params,
                    n.id,
                    ctx,
                    status=n.status,
                    created_at=n.created_at,
                    ours=has_marker(n.tags),
                )
            )
        return out

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        hints = resource.params.get("availability_zone_hints") or []
        known = catalog.network_zones(ctx.conn, ctx.cache) if hints else set()
        return [
            catalog.missing("network availability zone", zone, known, "availability_zones")
            for zone in hints
            if zone not in known
        ]

    def _body(self, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "description": params.get("description", ""),
            "admin_state_up": params.get("admin_state_up", True),
            "port_security_enabled": params.get("port_security_enabled", True),
            "shared": params.get("shared", False),
            "router:external": params.get("external", False),
        }
        if params.get("mtu"):
            body["mtu"] = params["mtu"]
        return body

    def create(self, ctx: Context, resource: Resource) -> str:
        params = resource.params
        body = self._body(params)
        body["availability_zone_hints"] = params.get("availability_zone_hints", [])
        provider = params.get("provider")
        if provider:
            body["provider:network_type"] = provider["network_type"]
            if provider.get("physical_network"):
                body["provider:physical_network"] = provider["physical_network"]
            if provider.get("segmentation_id") is not None:
                body["provider:segmentation_id"] = provider["segmentation_id"]
        network = ctx.conn.network.create_network(
            name=resource.identity["name"],
            project_id=ctx.project_id,
            **body,
        )
        ctx.conn.network.set_tags(network, with_marker(params))  # neutron refuses tags in POST
        return str(network.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        body = {k: v for k, v in self._body(resource.params).items() if _param_name(k) in changed}
        if body:
            ctx.conn.network.update_network(current.cloud_id, **body)
        if "tags" in changed:
            ctx.conn.network.set_tags(
                ctx.conn.network.get_network(current.cloud_id), with_marker(resource.params)
            )


def _param_name(body_key: str) -> str:
    return {"router:external": "external"}.get(body_key, body_key)

"""Neutron subnets: IPv4 and IPv6 modes, pools, host routes, DNS servers, gateway, DHCP."""

from __future__ import annotations

from typing import Any

from stackferry.engine.context import Context
from stackferry.engine.formats import DESCRIPTION, NAME
from stackferry.engine.kind import Kind, RefSpec, has_marker, with_marker, without_marker
from stackferry.engine.model import Params, Resource

UPDATABLE = (
    "name",
    "description",
    "gateway_ip",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
    "allocation_pools",
)


class Subnet(Kind):
    name = "subnet"
    plural = "subnets"
    description = "Neutron subnets of the tenant's networks"
    # CIDRs cannot overlap within a network, names can repeat or be empty: CIDR names a subnet.
    identity_fields = ("network", "cidr")
    identity_schema = {"cidr": {"type": "string", "format": "cidr"}}
    params_schema = {
        "type": "object",
        "required": ["network", "cidr", "ip_version"],
        "properties": {
            "network": {"type": "object"},
            "name": NAME,
            "description": DESCRIPTION,
            "cidr": {"type": "string", "format": "cidr"},
            "ip_version": {"enum": [4, 6]},
            "gateway_ip": {"type": ["string", "null"], "format": "ip-address"},
            "enable_dhcp": {"type": "boolean"},
            "dns_nameservers": {
                "type": "array",
                "items": {"type": "string", "format": "ip-address"},
            },
            "host_routes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["destination", "nexthop"],
                    "properties": {
                        "destination": {"type": "string", "format": "cidr"},
                        "nexthop": {"type": "string", "format": "ip-address"},
                    },
                },
            },
            "allocation_pools": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "end"],
                    "properties": {
                        "start": {"type": "string", "format": "ip-address"},
                        "end": {"type": "string", "format": "ip-address"},
                    },
                },
            },
            "ipv6_ra_mode": {"type": ["string", "null"]},
            "ipv6_address_mode": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    refs = (RefSpec("network", "network"),)
    immutable = frozenset({"network", "cidr", "ip_version", "ipv6_ra_mode", "ipv6_address_mode"})

    def read(self, ctx: Context) -> list[Resource]:
        out = []
        for s in ctx.conn.network.subnets(project_id=ctx.project_id):
            network = ctx.ref("network", s.network_id)
            params = {
                "network": network,
                "name": s.name or "",
                "description": s.description or "",
                "cidr": s.cidr,
                "ip_version": s.ip_version,
                "gateway_ip": s.gateway_ip,
                "enable_dhcp": s.is_dhcp_enabled,
                "dns_nameservers": list(s.dns_nameservers or []),
                "host_routes": [dict(r) for r in s.host_routes or []],
                "allocation_pools": [dict(p) for p in s.allocation_pools or []],
                "ipv6_ra_mode": s.ipv6_ra_mode,
                "ipv6_address_mode": s.ipv6_address_mode,
                "tags": without_marker(s.tags),
            }
            identity = {"network": network["name"] if network else None, "cidr": s.cidr}
            out.append(self.resource(identity, params, s.id, ctx, ours=has_marker(s.tags)))
        return out

    def normalise(self, params: Params) -> Params:
        out = dict(params)
        out["host_routes"] = sorted(
            params.get("host_routes", []), key=lambda r: (r["destination"], r["nexthop"])
        )
        out["allocation_pools"] = sorted(
            params.get("allocation_pools", []), key=lambda p: (p["start"], p["end"])
        )
        return out

    def create(self, ctx: Context, resource: Resource) -> str:
        p = resource.params
        body: dict[str, Any] = {k: p[k] for k in UPDATABLE if k in p}
        body["enable_dhcp"] = p.get("enable_dhcp", True)
        for key in ("ipv6_ra_mode", "ipv6_address_mode"):
            if p.get(key):
                body[key] = p[key]
        if p.get("gateway_ip") is None:
            body["gateway_ip"] = None  # an explicit "no gateway", not "pick one"
        subnet = ctx.conn.network.create_subnet(
            project_id=ctx.project_id,
            network_id=ctx.resolve("network", p["network"]),
            cidr=p["cidr"],
            ip_version=p["ip_version"],
            **body,
        )
        ctx.conn.network.set_tags(subnet, with_marker(p))  # neutron refuses tags in POST
        return str(subnet.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        body = {k: resource.params.get(k) for k in UPDATABLE if k in changed}
        if body:
            ctx.conn.network.update_subnet(current.cloud_id, **body)
        if "tags" in changed:
            ctx.conn.network.set_tags(
                ctx.conn.network.get_subnet(current.cloud_id), with_marker(resource.params)
            )

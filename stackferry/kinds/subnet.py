"""Neutron subnets: IPv4 and IPv6 modes, pools, host routes, DNS servers, gateway, DHCP."""

from __future__ import annotations

from typing import Any

from stackferry.engine.context import Context
from stackferry.engine.kind import Field
from stackferry.engine.model import Params, Resource
from stackferry.kinds.neutron import DESCRIBED, IN_NETWORK, NAMED, TAGS, NeutronKind

IP = {"type": "string", "format": "ip-address"}
CIDR = {"type": "string", "format": "cidr"}


def _records(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]


class Subnet(NeutronKind):
    name = "subnet"
    plural = "subnets"
    description = "Neutron subnets of the tenant's networks"
    sdk_name = "subnet"
    collection = "subnets"
    # CIDRs cannot overlap within a network, names can repeat or be empty: CIDR names a subnet.
    identity_fields = ("network", "cidr")
    identity_schema = {"cidr": CIDR}
    fields = (
        IN_NETWORK,
        NAMED,
        DESCRIBED,
        Field("cidr", CIDR, required=True, immutable=True, create_only=True),
        Field("ip_version", {"enum": [4, 6]}, required=True, immutable=True, create_only=True),
        Field("gateway_ip", {**IP, "type": ["string", "null"]}),  # None: no gateway
        Field("enable_dhcp", {"type": "boolean"}, attr="is_dhcp_enabled", default=True),
        Field("dns_nameservers", {"type": "array", "items": IP}, default=[], convert=list),
        Field(
            "host_routes",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["destination", "nexthop"],
                    "properties": {"destination": CIDR, "nexthop": IP},
                },
            },
            default=[],
            convert=_records,
            order=lambda r: (r["destination"], r["nexthop"]),
        ),
        Field(
            "allocation_pools",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "end"],
                    "properties": {"start": IP, "end": IP},
                },
            },
            default=[],
            convert=_records,
            order=lambda p: (p["start"], p["end"]),
        ),
        Field(
            "ipv6_ra_mode",
            {"type": ["string", "null"]},
            immutable=True,
            create_only=True,
            omit_empty=True,
        ),
        Field(
            "ipv6_address_mode",
            {"type": ["string", "null"]},
            immutable=True,
            create_only=True,
            omit_empty=True,
        ),
        TAGS,
    )

    def identity_of(self, ctx: Context, obj: Any, params: Params) -> dict[str, Any]:
        network = params["network"]
        return {"network": network["name"] if network else None, "cidr": obj.cidr}

    def naming(self, resource: Resource) -> dict[str, Any]:
        return {}  # the name is a param: subnets' names can repeat

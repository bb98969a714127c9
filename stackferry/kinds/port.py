"""Neutron ports of the tenant's own: free-standing ones and servers' NICs (addresses, MAC,
allowed address pairs, port security and security groups).

A server's ports are made before the server, with the same MAC and fixed IPs, and the
server boots on them (see the server kind); floating IPs follow their port. Ports neutron
makes for itself (a router's interfaces and gateway, DHCP, floating IPs) are left to what
they belong to. A port's name can repeat or be empty; its MAC address is unique in its
network and is kept on create, so (network, MAC) names it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from stackferry.engine.context import Context
from stackferry.engine.kind import Field, RefSpec, records
from stackferry.engine.model import Params, Resource
from stackferry.kinds.neutron import (
    ADMIN_STATE_UP,
    DESCRIBED,
    IN_NETWORK,
    NAMED,
    QOS_POLICY,
    TAGS,
    NeutronKind,
)


def _fixed_ip_key(ip: dict[str, Any]) -> tuple[str, str]:
    return (json.dumps(ip["subnet"], sort_keys=True), ip["ip_address"] or "")


def _pair_key(pair: dict[str, Any]) -> tuple[str, str]:
    return (pair["ip_address"], pair.get("mac_address") or "")


def _group_key(group: dict[str, Any]) -> str:
    return json.dumps(group, sort_keys=True)


class Port(NeutronKind):
    name = "port"
    plural = "ports"
    description = "Neutron ports, free-standing and servers' (MAC and addresses kept, groups)"
    sdk_name = "port"
    identity_fields = ("network", "mac_address")
    identity_schema = {"mac_address": {"type": "string", "format": "mac-address"}}
    fields = (
        IN_NETWORK,
        NAMED,
        DESCRIBED,
        Field(
            "fixed_ips",
            records(
                {
                    "subnet": {"type": "object"},
                    "ip_address": {"type": "string", "format": "ip-address"},
                }
            ),
            attr=None,  # subnets as references; SLAAC addresses left to neutron
            wire=None,
            order=_fixed_ip_key,
        ),
        Field(
            "allowed_address_pairs",
            records(
                {"ip_address": {"type": "string", "format": "ip-or-cidr"}},
                {"mac_address": {"type": "string", "format": "mac-address"}},
            ),
            default=[],
            convert=lambda pairs: [
                {"ip_address": p["ip_address"], "mac_address": p["mac_address"]} for p in pairs
            ],
            order=_pair_key,
        ),
        Field(
            "port_security_enabled",
            {"type": "boolean"},
            attr="is_port_security_enabled",
            default=True,
        ),
        Field(
            "security_groups",
            {"type": "array", "items": {"type": "object"}},
            attr="security_group_ids",
            wire="security_group_ids",
            ref="security_group",
            many=True,
            order=_group_key,
        ),
        ADMIN_STATE_UP,
        QOS_POLICY,
        TAGS,
    )
    nested_refs = (RefSpec("fixed_ips[].subnet", "subnet"),)

    def listing(self, ctx: Context) -> list[Any]:
        """Free-standing ones and servers' (``compute:<zone>``); neutron's own
        (``network:*``: router interfaces, DHCP, floating IPs) belong to what made them."""
        return [
            p
            for p in ctx.conn.network.ports(project_id=ctx.project_id)
            if not p.device_owner or str(p.device_owner).startswith("compute:")
        ]

    def identity_of(self, ctx: Context, obj: Any, params: Params) -> dict[str, Any]:
        return {"network": params["network"]["name"], "mac_address": obj.mac_address}

    def more_params(self, ctx: Context, obj: Any) -> Params:
        return {
            "fixed_ips": [
                {"subnet": ctx.ref("subnet", ip["subnet_id"]), "ip_address": ip["ip_address"]}
                for ip in obj.fixed_ips or []
            ]
        }

    def facts_of(self, ctx: Context, obj: Any) -> dict[str, Any]:
        return {"status": obj.status}

    def naming(self, resource: Resource) -> dict[str, Any]:
        return {"mac_address": resource.identity["mac_address"]}  # its name is a param

    def more_body(
        self, ctx: Context, resource: Resource, names: set[str], creating: bool
    ) -> dict[str, Any]:
        if "fixed_ips" not in names:
            return {}
        mac = resource.identity["mac_address"]
        return {
            "fixed_ips": [
                {"subnet_id": ctx.resolve("subnet", ip["subnet"])}
                # neutron derives an address from the MAC (SLAAC) itself and refuses to be told
                if _is_eui64(ip["ip_address"], mac)
                else {
                    "subnet_id": ctx.resolve("subnet", ip["subnet"]),
                    "ip_address": ip["ip_address"],
                }
                for ip in resource.params.get("fixed_ips", [])
            ]
        }


def _is_eui64(address: str, mac: str | None) -> bool:
    """Whether an IPv6 address's interface ID is the modified EUI-64 of ``mac``."""
    if not mac:
        return False
    ip = ipaddress.ip_address(address)
    if ip.version != 6:
        return False
    octets = bytes(int(b, 16) for b in mac.split(":"))
    eui = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:6]
    return int(ip) & (2**64 - 1) == int.from_bytes(eui, "big")

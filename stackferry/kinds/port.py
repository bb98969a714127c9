"""Neutron ports of the tenant's own: free-standing ones and servers' NICs (addresses, MAC,
allowed address pairs, port security and security groups).

A server's ports are made before the server, with the same MAC and fixed IPs, and the
server boots on them (see the server kind); floating IPs follow their port. Ports neutron
makes for itself (a router's interfaces and gateway, DHCP, floating IPs) are left to what
they belong to. A port's name can repeat or be empty; its MAC address is unique in its
network and is kept on create, so (network, MAC) names it.

With the mapping's ``new_macs`` (``--new-mac``), for clouds that share a layer-2 segment, each
port gets a MAC address of its own instead: derived from the source's (locally administered,
always the same for the same source MAC), so the plan, a re-run and verify all know it before
the port exists, and a create whose answer was lost is found, never made twice. Its SLAAC
addresses, made from the MAC, follow.
"""

from __future__ import annotations

import hashlib
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
    collection = "ports"
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

    remapped_by = frozenset({"new_macs"})

    def remap_identity(self, identity: dict[str, Any], switches: frozenset[str]) -> None:
        if "new_macs" in switches and identity.get("mac_address"):
            identity["mac_address"] = new_mac(identity["mac_address"])

    def remap_params(
        self, before: dict[str, Any], resource: Resource, switches: frozenset[str]
    ) -> None:
        old, new = before.get("mac_address"), resource.identity.get("mac_address")
        if not old or not new or old == new:
            return
        for ip in resource.params.get("fixed_ips", []):
            if _is_eui64(ip["ip_address"], old):
                ip["ip_address"] = _eui64(ip["ip_address"], new)
        for pair in resource.params.get("allowed_address_pairs", []):
            if pair.get("mac_address") == old:
                pair["mac_address"] = new

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

    def delete(self, ctx: Context, current: Resource) -> None:
        """Never a port a server still uses (its server goes first, when it goes)."""
        port = ctx.conn.network.get_port(current.cloud_id)  # gone: NotFoundException
        if port.device_id and str(port.device_owner or "").startswith("compute:"):
            raise RuntimeError(
                f"port {current.label} is still attached to server {port.device_id}: left"
            )
        super().delete(ctx, current)

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


def new_mac(mac: str) -> str:
    """The MAC a port gets with ``new_macs``: locally administered unicast (``fa:`` first),
    40 bits of a hash of the source's (collisions in a network: about one in 10^6 for a
    thousand ports)."""
    digest = hashlib.sha256(f"stackferry new MAC {mac.lower()}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0xFA, *digest[:5]))


def _interface_id(mac: str) -> int:
    octets = bytes(int(b, 16) for b in mac.split(":"))
    eui = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:6]
    return int.from_bytes(eui, "big")


def _is_eui64(address: str, mac: str | None) -> bool:
    """Whether an IPv6 address's interface ID is the modified EUI-64 of ``mac``."""
    if not mac:
        return False
    ip = ipaddress.ip_address(address)
    if ip.version != 6:
        return False
    return int(ip) & (2**64 - 1) == _interface_id(mac)


def _eui64(address: str, mac: str) -> str:
    """The address with the same prefix and ``mac``'s interface ID."""
    prefix = int(ipaddress.ip_address(address)) & ~(2**64 - 1)
    return str(ipaddress.IPv6Address(prefix | _interface_id(mac)))

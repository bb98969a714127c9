"""Free-standing neutron ports (no device owner): addresses, MAC, allowed address pairs,
port security and security groups.

Ports that belong to something (a server, a router, DHCP) are that thing's to migrate. A port's
name can repeat or be empty; its MAC address is unique in its network and is kept on create,
so (network, MAC) names it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from stackferry.engine.context import Context
from stackferry.engine.formats import DESCRIPTION, NAME
from stackferry.engine.kind import Kind, RefSpec, has_marker, records, with_marker, without_marker
from stackferry.engine.model import Params, Resource


def _fixed_ip_key(ip: dict[str, Any]) -> tuple[str, str]:
    return (json.dumps(ip["subnet"], sort_keys=True), ip["ip_address"] or "")


def _pair_key(pair: dict[str, Any]) -> tuple[str, str]:
    return (pair["ip_address"], pair.get("mac_address") or "")


def _group_key(group: dict[str, Any]) -> str:
    return json.dumps(group, sort_keys=True)


class Port(Kind):
    name = "port"
    plural = "ports"
    description = "Free-standing neutron ports (MAC and addresses kept, security groups)"
    identity_fields = ("network", "mac_address")
    identity_schema = {"mac_address": {"type": "string", "format": "mac-address"}}
    params_schema = {
        "type": "object",
        "required": ["network"],
        "properties": {
            "network": {"type": "object"},
            "name": NAME,
            "description": DESCRIPTION,
            "fixed_ips": records(
                {
                    "subnet": {"type": "object"},
                    "ip_address": {"type": "string", "format": "ip-address"},
                }
            ),
            "allowed_address_pairs": records(
                {"ip_address": {"type": "string", "format": "ip-or-cidr"}},
                {"mac_address": {"type": "string", "format": "mac-address"}},
            ),
            "port_security_enabled": {"type": "boolean"},
            "security_groups": {"type": "array", "items": {"type": "object"}},
            "admin_state_up": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    refs = (
        RefSpec("network", "network"),
        RefSpec("fixed_ips[].subnet", "subnet"),
        RefSpec("security_groups[]", "security_group"),
    )
    immutable = frozenset({"network"})

    def read(self, ctx: Context) -> list[Resource]:
        out = []
        for port in ctx.conn.network.ports(project_id=ctx.project_id, device_owner=""):
            network = ctx.ref("network", port.network_id)
            assert network is not None
            params = {
                "network": network,
                "name": port.name or "",
                "description": port.description or "",
                "fixed_ips": [
                    {"subnet": ctx.ref("subnet", ip["subnet_id"]), "ip_address": ip["ip_address"]}
                    for ip in port.fixed_ips or []
                ],
                "allowed_address_pairs": [
                    {"ip_address": pair["ip_address"], "mac_address": pair["mac_address"]}
                    for pair in port.allowed_address_pairs or []
                ],
                "port_security_enabled": port.is_port_security_enabled,
                "security_groups": [
                    ctx.ref("security_group", group) for group in port.security_group_ids or []
                ],
                "admin_state_up": port.is_admin_state_up,
                "tags": without_marker(port.tags),
            }
            identity = {"network": network["name"], "mac_address": port.mac_address}
            out.append(
                self.resource(
                    identity,
                    self.normalise(params),
                    port.id,
                    ctx,
                    status=port.status,
                    ours=has_marker(port.tags),
                )
            )
        return out

    def normalise(self, params: Params) -> Params:
        out = dict(params)
        out["fixed_ips"] = sorted(params.get("fixed_ips", []), key=_fixed_ip_key)
        out["allowed_address_pairs"] = sorted(
            params.get("allowed_address_pairs", []), key=_pair_key
        )
        out["security_groups"] = sorted(params.get("security_groups", []), key=_group_key)
        return out

    def _body(self, ctx: Context, params: Params, mac: str) -> dict[str, Any]:
        """The API's fields for the port's params (references resolved)."""
        return {
            "name": params.get("name", ""),
            "description": params.get("description", ""),
            "fixed_ips": [
                {"subnet_id": ctx.resolve("subnet", ip["subnet"])}
                # neutron derives an address from the MAC (SLAAC) itself and refuses to be told
                if _is_eui64(ip["ip_address"], mac)
                else {
                    "subnet_id": ctx.resolve("subnet", ip["subnet"]),
                    "ip_address": ip["ip_address"],
                }
                for ip in params.get("fixed_ips", [])
            ],
            "allowed_address_pairs": [dict(p) for p in params.get("allowed_address_pairs", [])],
            "port_security_enabled": params.get("port_security_enabled", True),
            "security_group_ids": [
                ctx.resolve("security_group", g) for g in params.get("security_groups", [])
            ],
            "admin_state_up": params.get("admin_state_up", True),
        }

    def create(self, ctx: Context, resource: Resource) -> str:
        p = resource.params
        port = ctx.conn.network.create_port(
            network_id=ctx.resolve("network", p["network"]),
            project_id=ctx.project_id,
            mac_address=resource.identity["mac_address"],
            **self._body(ctx, p, resource.identity["mac_address"]),
        )
        ctx.conn.network.set_tags(port, with_marker(p))  # neutron refuses tags in POST
        return str(port.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        p = resource.params
        names = {"security_group_ids": "security_groups"}
        body = {
            k: v
            for k, v in self._body(ctx, p, resource.identity["mac_address"]).items()
            if names.get(k, k) in changed
        }
        if body:  # one call: port security and the groups/pairs it allows change together
            ctx.conn.network.update_port(current.cloud_id, **body)
        if "tags" in changed:
            ctx.conn.network.set_tags(ctx.conn.network.get_port(current.cloud_id), with_marker(p))


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

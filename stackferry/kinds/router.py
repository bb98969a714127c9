"""Neutron routers: external gateway, interfaces on the tenant's subnets at the same addresses,
and static routes.

The gateway's own addresses on the external network are the destination's to allocate and are
not migrated; the external network is named through the mapping's ``external_networks``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from openstack import exceptions

from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field, RefSpec, records
from stackferry.engine.model import Params, Resource
from stackferry.kinds.neutron import ADMIN_STATE_UP, DESCRIBED, TAGS, NeutronKind

INTERFACE_OWNERS = (
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
)
# A port stackferry creates to attach a router at an address other than the subnet's gateway;
# a run that stopped between creating and attaching it finds it again by this description.
INTERFACE_PORT_DESCRIPTION = "stackferry: router interface"


def _route_key(route: dict[str, Any]) -> tuple[str, str]:
    return (route["destination"], route["nexthop"])


def _interface_key(interface: dict[str, Any]) -> tuple[str, str]:
    return (json.dumps(interface["subnet"], sort_keys=True), interface["ip_address"])


class Router(NeutronKind):
    name = "router"
    plural = "routers"
    description = "Neutron routers: external gateway, interfaces (same addresses), static routes"
    sdk_name = "router"
    collection = "routers"
    identity_schema = {"name": NAME}
    fields = (
        DESCRIBED,
        ADMIN_STATE_UP,
        TAGS,
        Field(
            "external_gateway",
            {
                "type": ["object", "null"],
                "required": ["network"],
                "properties": {
                    "network": {"type": "object"},
                    "enable_snat": {"type": ["boolean", "null"]},
                },
                "additionalProperties": False,
            },
            attr=None,
            wire=None,
        ),
        Field(
            "routes",
            records(
                {
                    "destination": {"type": "string", "format": "cidr"},
                    "nexthop": {"type": "string", "format": "ip-address"},
                }
            ),
            attr=None,
            wire=None,  # after the interfaces: each nexthop must be on one of them
            order=_route_key,
        ),
        Field(
            "interfaces",
            records(
                {
                    "subnet": {"type": "object"},
                    "ip_address": {"type": "string", "format": "ip-address"},
                }
            ),
            attr=None,
            wire=None,
            order=_interface_key,
        ),
    )
    nested_refs = (
        RefSpec("external_gateway.network", "external_network"),
        RefSpec("interfaces[].subnet", "subnet"),
    )
    mapped_facts = ("gateway_ips",)  # reported side by side: the destination allocates them

    def read(self, ctx: Context) -> list[Resource]:
        """Every interface of every router of the tenant in one list of ports."""
        routers = list(self.listing(ctx))
        interfaces: dict[str, list[dict[str, Any]]] = {r.id: [] for r in routers}
        if routers:
            for port in ctx.conn.network.ports(
                project_id=ctx.project_id, device_owner=list(INTERFACE_OWNERS)
            ):
                if port.device_id not in interfaces:
                    continue  # a router of another project's
                for ip in port.fixed_ips or []:
                    interfaces[port.device_id].append(
                        {
                            "subnet": ctx.ref("subnet", ip["subnet_id"]),
                            "ip_address": ip["ip_address"],
                        }
                    )
        return [self.resource_of(ctx, r, interfaces=interfaces[r.id]) for r in routers]

    def more_params(self, ctx: Context, obj: Any) -> Params:
        info = obj.external_gateway_info or {}
        gateway = None
        if info.get("network_id"):
            gateway = {
                "network": ctx.ref("external_network", info["network_id"]),
                "enable_snat": info.get("enable_snat"),
            }
        routes = [
            {"destination": x["destination"], "nexthop": x["nexthop"]} for x in obj.routes or []
        ]
        return {"external_gateway": gateway, "routes": routes}

    def facts_of(self, ctx: Context, obj: Any) -> dict[str, Any]:
        info = obj.external_gateway_info or {}
        ips = [ip["ip_address"] for ip in info.get("external_fixed_ips") or []]
        return {"status": obj.status, "gateway_ips": ips}

    @staticmethod
    def _gateway_body(ctx: Context, gateway: dict[str, Any] | None) -> dict[str, Any]:
        if not gateway:
            return {}
        body: dict[str, Any] = {"network_id": ctx.resolve("external_network", gateway["network"])}
        if gateway.get("enable_snat") is not None:
            body["enable_snat"] = gateway["enable_snat"]
        return body

    def more_body(
        self, ctx: Context, resource: Resource, names: set[str], creating: bool
    ) -> dict[str, Any]:
        gateway = resource.params.get("external_gateway")
        if "external_gateway" not in names or not gateway:
            return {}  # a gateway to remove: after_update
        return {"external_gateway_info": self._gateway_body(ctx, gateway)}

    def after_create(self, ctx: Context, resource: Resource, obj: Any) -> None:
        p = resource.params
        for interface in p.get("interfaces", []):
            self._add_interface(ctx, obj.id, interface)
        if p.get("routes"):  # after the interfaces: each nexthop must be on one of them
            ctx.conn.network.update_router(obj.id, routes=p["routes"])

    def after_update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        p, router_id = resource.params, current.cloud_id
        if "external_gateway" in changed and not p.get("external_gateway"):
            ctx.conn.network.update_router(router_id, external_gateway_info={})
        if not changed & {"routes", "interfaces"}:
            return
        want_routes = sorted(p.get("routes", []), key=_route_key)
        have_routes = sorted(current.params.get("routes", []), key=_route_key)
        kept = [r for r in have_routes if r in want_routes]
        if kept != have_routes:  # first drop routes, which may need interfaces that go
            ctx.conn.network.update_router(router_id, routes=kept)
        want = {_interface_key(i): i for i in p.get("interfaces", [])}
        have = {_interface_key(i): i for i in current.params.get("interfaces", [])}
        for key, interface in have.items():
            if key not in want:
                ctx.conn.network.remove_interface_from_router(
                    router_id, subnet=ctx.resolve("subnet", interface["subnet"])
                )
        for key, interface in want.items():
            if key not in have:
                self._add_interface(ctx, router_id, interface)
        if want_routes != kept:
            ctx.conn.network.update_router(router_id, routes=want_routes)

    def delete(self, ctx: Context, current: Resource) -> None:
        """Static routes, then every interface (their ports go with them), then the gateway,
        then the router: neutron refuses to delete a router that has interfaces."""
        net, router_id = ctx.conn.network, current.cloud_id
        router = net.get_router(router_id)  # gone: NotFoundException, as a delete would say
        if router.routes:  # they pin the interfaces their next hops go through
            net.update_router(router_id, routes=[])
        for port in net.ports(device_id=router_id, device_owner=list(INTERFACE_OWNERS)):
            with contextlib.suppress(exceptions.NotFoundException):  # went meanwhile
                net.remove_interface_from_router(router_id, port=port.id)
        if router.external_gateway_info:
            net.update_router(router_id, external_gateway_info={})
        super().delete(ctx, current)

    @staticmethod
    def _add_interface(ctx: Context, router_id: str, interface: dict[str, Any]) -> None:
        """Attach the router to a subnet at the interface's address: neutron does that itself
        at the subnet's gateway address; any other address needs a port made for it first."""
        net = ctx.conn.network
        subnet_id = str(ctx.resolve("subnet", interface["subnet"]))
        address = interface["ip_address"]
        subnet = net.get_subnet(subnet_id)
        if subnet.gateway_ip == address:
            net.add_interface_to_router(router_id, subnet=subnet_id)
            return
        fixed = [{"subnet_id": subnet_id, "ip_address": address}]
        leftover = [
            port
            for port in net.ports(
                network_id=subnet.network_id,
                fixed_ips=[f"subnet_id={subnet_id}", f"ip_address={address}"],
            )
            if not port.device_owner and port.description == INTERFACE_PORT_DESCRIPTION
        ]
        port = leftover[0] if leftover else None
        if port is None:
            port = net.create_port(
                network_id=subnet.network_id,
                project_id=ctx.project_id,
                fixed_ips=fixed,
                description=INTERFACE_PORT_DESCRIPTION,
            )
        net.add_interface_to_router(router_id, port=port.id)

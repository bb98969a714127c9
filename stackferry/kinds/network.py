"""Neutron networks of the tenant, and the external networks its routers and FIPs point at."""

from __future__ import annotations

from typing import Any

from stackferry.cloud import catalog
from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field, Kind
from stackferry.engine.model import Params, Resource
from stackferry.kinds.neutron import ADMIN_STATE_UP, DESCRIBED, QOS_POLICY, TAGS, NeutronKind

PROVIDER_TYPES_KEPT = ("flat", "vlan")  # tunnel segmentation IDs are allocated, not migrated
BOOLEAN = {"type": "boolean"}


class ExternalNetwork(Kind):
    """Lookup only: external networks are the cloud's, not the tenant's. Referenced by name
    (renamed through the mapping's ``external_networks``), never created."""

    name = "external_network"
    plural = "external_networks"
    description = "External networks (the cloud's, referenced by name, never created)"
    in_project = False
    lookup_only = True
    mapping_category = "external_networks"

    def read(self, ctx: Context) -> list[Resource]:
        return [
            self.resource({"name": n.name}, {}, n.id, ctx)
            for n in ctx.conn.network.networks(is_router_external=True)
        ]


class Network(NeutronKind):
    name = "network"
    plural = "networks"
    description = "Neutron networks: MTU, port security, shared, tags, AZ hints, provider"
    sdk_name = "network"
    collection = "networks"
    identity_schema = {"name": NAME}
    fields = (
        DESCRIBED,
        ADMIN_STATE_UP,
        Field(
            "mtu",
            {"type": ["integer", "null"], "minimum": 68, "maximum": 65535},
            omit_empty=True,  # none given: the destination's own
        ),
        Field(
            "port_security_enabled",
            BOOLEAN,
            attr="is_port_security_enabled",
            default=True,
        ),
        Field("shared", BOOLEAN, attr="is_shared", default=False),
        QOS_POLICY,
        Field(
            "external", BOOLEAN, attr="is_router_external", wire="router:external", default=False
        ),
        TAGS,
        Field(
            "availability_zone_hints",
            {"type": "array", "items": {"type": "string"}},
            default=[],
            convert=sorted,
            many=True,
            mapping="availability_zones",
            immutable=True,
            create_only=True,
        ),
        Field(
            "provider",
            {
                "type": ["object", "null"],
                "properties": {
                    "network_type": {"type": "string"},
                    "physical_network": {"type": ["string", "null"]},
                    "segmentation_id": {"type": ["integer", "null"], "minimum": 1, "maximum": 4094},
                },
                "additionalProperties": False,
            },
            attr=None,  # the provider:* attributes, of flat and VLAN networks only
            wire=None,
            immutable=True,
        ),
    )

    def more_params(self, ctx: Context, obj: Any) -> Params:
        if obj.provider_network_type not in PROVIDER_TYPES_KEPT:
            return {"provider": None}
        return {
            "provider": {
                "network_type": obj.provider_network_type,
                "physical_network": obj.provider_physical_network,
                "segmentation_id": obj.provider_segmentation_id,
            }
        }

    def facts_of(self, ctx: Context, obj: Any) -> dict[str, Any]:
        return {"status": obj.status, "created_at": obj.created_at}

    def more_body(
        self, ctx: Context, resource: Resource, names: set[str], creating: bool
    ) -> dict[str, Any]:
        provider = resource.params.get("provider") if "provider" in names else None
        if not provider:
            return {}
        body = {"provider:network_type": provider["network_type"]}
        if provider.get("physical_network"):
            body["provider:physical_network"] = provider["physical_network"]
        if provider.get("segmentation_id") is not None:
            body["provider:segmentation_id"] = provider["segmentation_id"]
        return body

    def retirable(self, resource: Resource) -> str:
        if resource.params.get("external"):
            return "an external network: other projects' routers and floating IPs may use it"
        if resource.params.get("shared"):
            return "shared: other projects may have ports on it"
        return ""

    def delete(self, ctx: Context, current: Resource) -> None:
        """Neutron would take the network's subnets along: one that is still there when the
        network's turn comes (the workdir's go first) is not stackferry's to delete."""
        net = ctx.conn.network
        net.get_network(current.cloud_id)  # gone: NotFoundException, as a delete would say
        others = [s.cidr for s in net.subnets(network_id=current.cloud_id)]
        if others:
            raise RuntimeError(
                f"network {current.label} still has subnet(s) {', '.join(sorted(others))} (not "
                "the workdir's, or not deleted): left"
            )
        super().delete(ctx, current)

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        hints = resource.params.get("availability_zone_hints") or []
        known = catalog.network_zones(ctx.conn, ctx.cache) if hints else set()
        return [
            catalog.missing("network availability zone", zone, known, "availability_zones")
            for zone in hints
            if zone not in known
        ]

"""Floating IPs: a new address on the destination's external network for each source one.

A destination FIP cannot keep its source address, so it is named by that source address: the
FIP stackferry creates carries the tag ``stackferry-src:<source address>``, from which a later
run (with or without the journal) recognises it. Until the tag is set, the same text stands in
its description, so a run that stops in between still finds it and never makes a second one.
Verify reports each source address with its destination address. ``stackferry finish`` takes
the marker off and leaves the source-address tag: it is what names the FIP.
"""

from __future__ import annotations

from typing import Any

from stackferry.cloud.connection import rest
from stackferry.engine.context import Context
from stackferry.engine.formats import DESCRIPTION
from stackferry.engine.kind import MARKER_TAG, Field, Kind
from stackferry.engine.model import Params, Resource

SOURCE_TAG = "stackferry-src:"


def _source_address(fip: Any) -> str:
    for tag in fip.tags or []:
        if tag.startswith(SOURCE_TAG):
            return str(tag[len(SOURCE_TAG) :])
    if (fip.description or "").startswith(SOURCE_TAG):  # created, not yet tagged
        return str(fip.description[len(SOURCE_TAG) :])
    return str(fip.floating_ip_address)


def _own_tags(tags: list[str] | None) -> list[str]:
    return sorted(t for t in tags or [] if t != MARKER_TAG and not t.startswith(SOURCE_TAG))


class FloatingIP(Kind):
    name = "floating_ip"
    plural = "floating_ips"
    description = "Floating IPs (new addresses on the destination's external network)"
    identity_fields = ("source_address",)
    identity_schema = {"source_address": {"type": "string", "format": "ip-address"}}
    fields = (
        Field(
            "network",
            {"type": "object"},
            attr="floating_network_id",
            ref="external_network",
            required=True,
            immutable=True,
        ),
        Field("port", {"type": ["object", "null"]}, attr=None, ref="port"),
        Field("fixed_ip_address", {"type": ["string", "null"], "format": "ip-address"}, attr=None),
        # The router that carries the FIP's traffic: set by neutron from the port, kept so
        # that the FIP is associated only once that router has its interfaces.
        Field("router", {"type": ["object", "null"]}, attr=None, wire=None, ref="router"),
        Field("description", DESCRIPTION, attr=None),  # until set, the source address stands
        Field("tags", {"type": "array", "items": {"type": "string"}}, attr=None, wire=None),
    )
    mapped_facts = ("floating_ip_address",)
    retire = True

    def marked(self, current: Resource) -> bool:
        # ``ours`` is also a FIP made and not yet tagged (``pending``): it has no marker yet.
        return bool(current.facts.get("ours")) and not current.facts.get("pending")

    def unmark(self, ctx: Context, current: Resource) -> None:
        rest(ctx.conn.network, "delete", f"/floatingips/{current.cloud_id}/tags/{MARKER_TAG}")

    def delete(self, ctx: Context, current: Resource) -> None:
        ctx.conn.network.delete_ip(current.cloud_id, ignore_missing=False)

    def read(self, ctx: Context) -> list[Resource]:
        fips = list(ctx.conn.network.ips(project_id=ctx.project_id))
        ports = self._other_ports(ctx, [f.port_id for f in fips if f.port_id])
        out = []
        for f in fips:
            port = None
            if f.port_id:
                port = ctx.ids.identity("port", f.port_id) or ports.get(f.port_id)
                if port is None:
                    raise LookupError(f"port {f.port_id} of floating IP {f.id} was not found")
            pending = (f.description or "").startswith(SOURCE_TAG)
            params = {
                "network": ctx.ref("external_network", f.floating_network_id),
                "port": port,
                "fixed_ip_address": f.fixed_ip_address if f.port_id else None,
                "router": ctx.ids.identity("router", f.router_id) if f.router_id else None,
                "description": f.description or "",  # until set, differs: updated
                "tags": _own_tags(f.tags),
            }
            out.append(
                self.resource(
                    {"source_address": _source_address(f)},
                    params,
                    f.id,
                    ctx,
                    floating_ip_address=f.floating_ip_address,
                    status=f.status,
                    ours=pending or MARKER_TAG in (f.tags or []),
                    **({"pending": True} if pending else {}),
                )
            )
        return out

    @staticmethod
    def _other_ports(ctx: Context, port_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Identities of the ports FIPs point at that the port kind does not migrate (e.g. a
        server's): such a FIP waits, blocked, until that port exists in the destination."""
        if all(ctx.ids.identity("port", i) for i in port_ids):
            return {}
        found = {}
        for port in ctx.conn.network.ports(project_id=ctx.project_id):
            network = ctx.ids.identity("network", port.network_id)
            if network is not None:
                found[port.id] = {"network": network["name"], "mac_address": port.mac_address}
        return found

    def _association(self, ctx: Context, params: Params) -> dict[str, Any]:
        port = params.get("port")
        return {
            "port_id": ctx.resolve("port", port),
            "fixed_ip_address": params.get("fixed_ip_address") if port else None,
        }

    def create(self, ctx: Context, resource: Resource) -> str:
        p = resource.params
        source = resource.identity["source_address"]
        fip = ctx.conn.network.create_ip(
            floating_network_id=ctx.resolve("external_network", p["network"]),
            project_id=ctx.project_id,
            description=f"{SOURCE_TAG}{source}",  # names it until the tag below is set
            **{k: v for k, v in self._association(ctx, p).items() if v is not None},
        )
        ctx.conn.network.set_tags(fip, self._tags(resource))  # neutron refuses tags in POST
        ctx.conn.network.update_ip(fip.id, description=p.get("description", ""))
        return str(fip.id)

    @staticmethod
    def _tags(resource: Resource) -> list[str]:
        source = resource.identity["source_address"]
        return [*resource.params.get("tags", []), f"{SOURCE_TAG}{source}", MARKER_TAG]

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        p = resource.params
        body: dict[str, Any] = {}
        if changed & {"port", "fixed_ip_address"}:
            body.update(self._association(ctx, p))
        if "description" in changed or current.facts.get("pending"):
            body["description"] = p.get("description", "")
        if "tags" in changed or current.facts.get("pending"):
            ctx.conn.network.set_tags(
                ctx.conn.network.get_ip(current.cloud_id), self._tags(resource)
            )
        if body:
            ctx.conn.network.update_ip(current.cloud_id, **body)

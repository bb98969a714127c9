"""Neutron address groups: named sets of CIDRs that security-group rules allow from
(``remote_address_group``). Their addresses change through calls of their own."""

from __future__ import annotations

from typing import Any

from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field
from stackferry.engine.model import Resource
from stackferry.kinds.neutron import DESCRIBED, NeutronKind


class AddressGroup(NeutronKind):
    name = "address_group"
    plural = "address_groups"
    description = "Neutron address groups (CIDR sets that security-group rules allow from)"
    sdk_name = "address_group"
    tagged = False  # neutron has no tags for them: the journal says what is stackferry's
    extension = "address-group"
    identity_schema = {"name": NAME}
    fields = (
        DESCRIBED,
        Field(
            "addresses",
            {"type": "array", "items": {"type": "string", "format": "cidr"}},
            wire=None,  # on create, in the body (below); afterwards, add and remove calls
            default=[],
            convert=sorted,
            order=str,
        ),
    )

    def more_body(
        self, ctx: Context, resource: Resource, names: set[str], creating: bool
    ) -> dict[str, Any]:
        return {"addresses": resource.params.get("addresses", [])} if creating else {}

    def after_update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        if "addresses" not in changed:
            return
        want = set(resource.params.get("addresses", []))
        have = set(current.params.get("addresses", []))
        net = ctx.conn.network
        group = net.get_address_group(current.cloud_id)
        if want - have:
            net.add_addresses_to_address_group(group, sorted(want - have))
        if have - want:
            net.remove_addresses_from_address_group(group, sorted(have - want))

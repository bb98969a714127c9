"""Neutron security groups, and their rules as a kind of their own.

Rules are separate from groups so that groups referencing each other (a rule of A allowing B,
a rule of B allowing A) never form a dependency cycle: every group is created first, then
every rule. Neutron gives each project a ``default`` group of its own and refuses a second:
the source's ``default`` is matched with the destination's by name, never created.

Neutron also puts rules into groups on its own (the default group's rules, and egress rules in
every new group). Those the source group lacks are deleted: at once when stackferry creates (or
adopts) a group, and otherwise by the plan (``prune_within``), so each source rule exists
exactly once and no other rule does.

Neutron treats a rule without a remote prefix and one with 0.0.0.0/0 (or ::/0) as the same
rule, so the identity does too; the prefix as the source shows it is a param, written as it
is: the destination shows exactly what the source shows. A rule that differs only in how it
says "anywhere" (or in its description) cannot change in place: it is replaced.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from openstack import exceptions

from stackferry.cloud.connection import rest
from stackferry.engine.context import Context
from stackferry.engine.formats import DESCRIPTION, NAME
from stackferry.engine.kind import Field, Kind, Ownership, has_marker, with_marker
from stackferry.engine.model import Params, Resource
from stackferry.kinds.neutron import DESCRIBED, TAGS, NeutronKind

DEFAULT_GROUP = "default"

# neutron-lib's IP_PROTOCOL_NUM_TO_NAME_MAP: neutron treats a number and its name as one rule.
PROTOCOL_NAMES = {
    "0": "ip",
    "1": "icmp",
    "2": "igmp",
    "4": "ipip",
    "6": "tcp",
    "8": "egp",
    "17": "udp",
    "33": "dccp",
    "41": "ipv6-encap",
    "43": "ipv6-route",
    "44": "ipv6-frag",
    "46": "rsvp",
    "47": "gre",
    "50": "esp",
    "51": "ah",
    "58": "ipv6-icmp",
    "59": "ipv6-nonxt",
    "60": "ipv6-opts",
    "89": "ospf",
    "112": "vrrp",
    "113": "pgm",
    "132": "sctp",
    "136": "udplite",
}
FULL_PORT_RANGE = (1, 65535)  # neutron stores it as "no range"


def canonical_protocol(protocol: Any, ethertype: str) -> str | None:
    """One spelling per protocol, as neutron compares them: names over numbers, ``any`` is
    None, and for IPv6 every ICMP spelling is ``ipv6-icmp``."""
    if protocol is None or str(protocol).lower() == "any":
        return None
    value = str(protocol).lower()
    if value == "hopopt":
        value = "ip"
    if value == "icmpv6" or (ethertype == "IPv6" and value in ("icmp", "1")):
        value = "ipv6-icmp"
    return PROTOCOL_NAMES.get(value, value)


def canonical_prefix(prefix: str | None) -> str | None:
    """The network a remote prefix names (host bits cleared); "any address" is None, which
    neutron treats as the same rule as 0.0.0.0/0 and ::/0."""
    if not prefix:
        return None
    network = ipaddress.ip_network(prefix, strict=False)
    return None if network.prefixlen == 0 else network.compressed


def rule_identity(
    rule: dict[str, Any],
    group: str,
    remote_group: str | None,
    remote_address_group: str | None,
) -> dict[str, Any]:
    """Everything that makes a rule the rule it is, in canonical form."""
    ethertype = rule["ethertype"]
    ports = (rule.get("port_range_min"), rule.get("port_range_max"))
    if ports == FULL_PORT_RANGE:
        ports = (None, None)
    return {
        "security_group": group,
        "direction": rule["direction"],
        "ethertype": ethertype,
        "protocol": canonical_protocol(rule.get("protocol"), ethertype),
        "port_range_min": ports[0],
        "port_range_max": ports[1],
        "remote_ip_prefix": canonical_prefix(rule.get("remote_ip_prefix")),
        "remote_group": remote_group,
        "remote_address_group": remote_address_group,
    }


class SecurityGroup(NeutronKind):
    name = "security_group"
    plural = "security_groups"
    description = "Neutron security groups (the project's default group is matched by name)"
    sdk_name = "security_group"
    collection = "security-groups"
    identity_schema = {"name": NAME}
    fields = (
        DESCRIBED,
        Field("stateful", {"type": "boolean"}, default=True, convert=bool),
        TAGS,
    )

    # Listing a project's groups makes neutron create its default group if it has none.

    def ownership(self, current: Resource) -> Ownership:
        """Neutron makes each project's default group itself: it is ours when the project is
        (stackferry marks it once it has brought it in line)."""
        if current.identity["name"] == DEFAULT_GROUP and not current.facts.get("ours"):
            return Ownership.WITH_TENANT
        return super().ownership(current)

    def retirable(self, resource: Resource) -> str:
        if resource.identity["name"] == DEFAULT_GROUP:
            return "the project's own default group: it goes with the project"
        return ""

    def converge(self, ctx: Context, resource: Resource, current: Resource, made_here: bool) -> str:
        if made_here:  # the create's answer was lost: neutron's own rules may still be in it
            group = ctx.conn.network.get_security_group(current.cloud_id)
            self._drop_rules(ctx, group.security_group_rules)
            if not has_marker(group.tags):
                ctx.conn.network.set_tags(group, with_marker(resource.params))
        return super().converge(ctx, resource, current, made_here)

    def create(self, ctx: Context, resource: Resource) -> str:
        if resource.identity["name"] == DEFAULT_GROUP:
            return self._adopt_default(ctx, resource)
        return super().create(ctx, resource)

    def after_create(self, ctx: Context, resource: Resource, obj: Any) -> None:
        self._drop_rules(ctx, obj.security_group_rules)

    def _adopt_default(self, ctx: Context, resource: Resource) -> str:
        """The destination project's own default group, brought to the source's params. Only
        reached when the project did not exist when the plan was made: the group is new."""
        group = next(
            iter(ctx.conn.network.security_groups(project_id=ctx.project_id, name=DEFAULT_GROUP)),
            None,
        )
        if group is None:
            raise LookupError(f"neutron did not create project {ctx.project_id}'s default group")
        current = Resource(
            self.name, resource.identity, self.params_of(ctx, group), {"id": group.id}
        )
        changed = self.changed_fields(resource.params, current.params) | {"tags"}
        self.update(ctx, resource, current, changed)  # with our marker: a later run knows it
        self._drop_rules(ctx, group.security_group_rules)
        return str(group.id)

    @staticmethod
    def _drop_rules(ctx: Context, rules: list[dict[str, Any]] | None) -> None:
        """Rules neutron put into a group it just created; the rule kind creates the source's."""
        for rule in rules or []:
            ctx.conn.network.delete_security_group_rule(rule["id"], ignore_missing=True)


class SecurityGroupRule(Kind):
    """A rule, named by its group and every field that defines it. Neutron cannot change a
    rule in place: a rule that differs (its description, how its prefix says "anywhere") is
    replaced."""

    name = "security_group_rule"
    plural = "security_group_rules"
    description = "Security group rules (rules the destination alone has in them are deleted)"
    identity_fields = (
        "security_group",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group",
        "remote_address_group",
    )
    identity_schema = {
        "security_group": NAME,
        "direction": {"enum": ["ingress", "egress"]},
        "ethertype": {"enum": ["IPv4", "IPv6"]},
        "protocol": {"type": ["string", "null"], "minLength": 1, "maxLength": 40},
        "port_range_min": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535},
        "port_range_max": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535},
        "remote_ip_prefix": {"type": ["string", "null"], "format": "cidr"},
        "remote_group": {"type": ["string", "null"]},
        "remote_address_group": {"type": ["string", "null"]},
    }
    fields = (
        Field(
            "security_group",
            {"type": "object"},
            attr=None,
            wire=None,
            ref="security_group",
            required=True,
            immutable=True,
        ),
        Field(
            "remote_group",
            {"type": ["object", "null"]},
            attr=None,
            wire=None,
            ref="security_group",
            immutable=True,
        ),
        Field(
            "remote_address_group",
            {"type": ["object", "null"]},
            attr=None,
            wire=None,
            ref="address_group",
            immutable=True,
        ),
        # As the source shows it: None and 0.0.0.0/0 are one rule to neutron, not to its API.
        Field(
            "remote_ip_prefix",
            {"type": ["string", "null"], "format": "cidr"},
            attr=None,
            wire=None,
            immutable=True,
        ),
        Field("description", DESCRIPTION, attr=None, wire=None, default="", immutable=True),
    )
    replaceable = frozenset({"remote_ip_prefix", "description"})
    prune_within = "security_group"
    retire = True

    def retirable(self, resource: Resource) -> str:
        if resource.identity["security_group"] == DEFAULT_GROUP:
            return "a rule of the project's default group, which stays with the project"
        return ""

    def read(self, ctx: Context) -> list[Resource]:
        # Rules are listed inside their groups: a rule an admin added to the tenant's group
        # belongs to the admin's project, so listing rules by project would miss it.
        groups = list(ctx.conn.network.security_groups(project_id=ctx.project_id))
        out = []
        for group in groups:
            for rule in group.security_group_rules or []:
                remote = ctx.ref("security_group", rule.get("remote_group_id"))
                address_group = ctx.ref("address_group", rule.get("remote_address_group_id"))
                identity = rule_identity(
                    rule,
                    group.name,
                    remote["name"] if remote else None,
                    address_group["name"] if address_group else None,
                )
                params = {
                    "security_group": {"name": group.name},
                    "remote_group": remote,
                    "remote_address_group": address_group,
                    "remote_ip_prefix": rule.get("remote_ip_prefix"),
                    "description": rule.get("description") or "",
                }
                out.append(self.resource(identity, params, rule["id"], ctx))
        return out

    def changed_fields(self, desired: Params, current: Params) -> set[str]:
        """A workdir from before the exact prefix was kept has none: the identity's stands."""
        if "remote_ip_prefix" not in desired:
            current = {k: v for k, v in current.items() if k != "remote_ip_prefix"}
        return super().changed_fields(desired, current)

    bulk_size = 100  # neutron takes many rules of one group in one POST, all or nothing

    def bulk_group(self, resource: Resource) -> str:
        return str(resource.identity["security_group"])  # neutron: one group's rules a call

    def create_many(self, ctx: Context, resources: list[Resource]) -> list[str]:
        bodies = [self._body(ctx, r) for r in resources]
        answer = rest(ctx.conn.network, "post", "/security-group-rules",
                      json={"security_group_rules": bodies})  # fmt: skip
        return [str(rule["id"]) for rule in answer.json()["security_group_rules"]]

    def create(self, ctx: Context, resource: Resource) -> str:
        body = self._body(ctx, resource)
        group_id = str(body["security_group_id"])
        try:
            rule = ctx.conn.network.create_security_group_rule(**body)
        except exceptions.ConflictException:
            # The rule exists (neutron compares rules as the identity does): use that one.
            found = self._find(ctx, group_id, resource)
            if found is None:
                raise
            return found
        return str(rule.id)

    def _body(self, ctx: Context, resource: Resource) -> dict[str, Any]:
        i, p = resource.identity, resource.params
        group_id = str(ctx.resolve("security_group", p["security_group"]))
        body: dict[str, Any] = {
            "security_group_id": group_id,
            "project_id": ctx.project_id,  # else an admin's rule would be the admin's project's
            "direction": i["direction"],
            "ethertype": i["ethertype"],
            "protocol": i["protocol"],
            "port_range_min": i["port_range_min"],
            "port_range_max": i["port_range_max"],
            "remote_ip_prefix": p.get("remote_ip_prefix", i["remote_ip_prefix"]),
            "remote_group_id": ctx.resolve("security_group", p.get("remote_group")),
            "description": p.get("description", ""),
        }
        if i.get("remote_address_group"):
            group = p.get("remote_address_group") or {"name": i["remote_address_group"]}
            body["remote_address_group_id"] = ctx.resolve("address_group", group)
        return body

    def _find(self, ctx: Context, group_id: str, resource: Resource) -> str | None:
        group = ctx.conn.network.get_security_group(group_id)
        for rule in group.security_group_rules or []:
            remote = ctx.ids.identity("security_group", rule.get("remote_group_id") or "")
            identity = rule_identity(
                rule,
                resource.identity["security_group"],
                remote["name"] if remote else None,
                resource.identity.get("remote_address_group")
                if rule.get("remote_address_group_id")
                else None,
            )
            if identity == resource.identity:
                return str(rule["id"])
        return None

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        raise NotImplementedError("neutron cannot change a security group rule in place")

    def delete(self, ctx: Context, current: Resource) -> None:
        ctx.conn.network.delete_security_group_rule(current.cloud_id, ignore_missing=True)

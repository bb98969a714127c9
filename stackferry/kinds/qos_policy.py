"""Neutron QoS policies and their rules (bandwidth and packet-rate limits, minimums, DSCP
marks), which networks and ports reference by ``qos_policy``.

A policy holds at most one rule of a type per direction, so (type, direction) names a rule
within it; rules are params of their policy, written through calls of their own.
"""

from __future__ import annotations

from typing import Any

from stackferry.cloud.connection import rest
from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field
from stackferry.engine.model import Params, Resource
from stackferry.kinds.neutron import DESCRIBED, TAGS, NeutronKind

RULE_TYPES = (
    "bandwidth_limit",
    "packet_rate_limit",
    "dscp_marking",
    "minimum_bandwidth",
    "minimum_packet_rate",
)
NOT_PORTABLE = frozenset({"id", "qos_policy_id", "tenant_id", "project_id"})
KBPS = {"type": "integer", "minimum": 0}


def rule_key(rule: dict[str, Any]) -> tuple[str, str]:
    return (rule["type"], rule.get("direction") or "")


class QosPolicy(NeutronKind):
    name = "qos_policy"
    plural = "qos_policies"
    description = "Neutron QoS policies with their rules"
    sdk_name = "qos_policy"
    collection = "qos/policies"
    extension = "qos"
    identity_schema = {"name": NAME}
    fields = (
        DESCRIBED,
        Field("shared", {"type": "boolean"}, attr="is_shared", default=False),
        Field("is_default", {"type": "boolean"}, default=False),
        TAGS,
        Field(
            "rules",
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"enum": list(RULE_TYPES)},
                        "direction": {"enum": ["ingress", "egress", "any"]},
                        "max_kbps": KBPS,
                        "max_burst_kbps": KBPS,
                        "min_kbps": KBPS,
                        "max_kpps": KBPS,
                        "max_burst_kpps": KBPS,
                        "min_kpps": KBPS,
                        "dscp_mark": {"type": "integer", "minimum": 0, "maximum": 56},
                    },
                    "additionalProperties": False,
                },
            },
            attr=None,
            wire=None,
            order=rule_key,
        ),
    )

    def listing(self, ctx: Context) -> list[Any]:
        if not self.has_extension(ctx):
            return []
        return list(ctx.conn.network.qos_policies(project_id=ctx.project_id))

    def retirable(self, resource: Resource) -> str:
        return (
            "shared: other projects' networks and ports may use it"
            if resource.params.get("shared")
            else ""
        )

    def more_params(self, ctx: Context, obj: Any) -> Params:
        rules = [{k: v for k, v in r.items() if k not in NOT_PORTABLE} for r in obj.rules or []]
        return {"rules": rules}

    def facts_of(self, ctx: Context, obj: Any) -> dict[str, Any]:
        return {"rule_ids": {"/".join(rule_key(r)): r["id"] for r in obj.rules or []}}

    def after_create(self, ctx: Context, resource: Resource, obj: Any) -> None:
        for rule in resource.params.get("rules", []):
            self._rule(ctx, "post", obj.id, rule)

    def after_update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        if "rules" not in changed:
            return
        want = {rule_key(r): r for r in resource.params.get("rules", [])}
        have = {rule_key(r): r for r in current.params.get("rules", [])}
        ids = current.facts.get("rule_ids", {})
        for key, rule in have.items():
            if key not in want:
                self._rule(ctx, "delete", current.cloud_id, rule, ids["/".join(key)])
        for key, rule in want.items():
            if key not in have:
                self._rule(ctx, "post", current.cloud_id, rule)
            elif rule != have[key]:
                self._rule(ctx, "put", current.cloud_id, rule, ids["/".join(key)])

    @staticmethod
    def _rule(
        ctx: Context, method: str, policy_id: str, rule: dict[str, Any], rule_id: str = ""
    ) -> None:
        kind = rule["type"]
        path = f"/qos/policies/{policy_id}/{kind}_rules" + (f"/{rule_id}" if rule_id else "")
        body = {k: v for k, v in rule.items() if k != "type" and not (rule_id and k == "direction")}
        if method == "delete":
            rest(ctx.conn.network, "delete", path)
        else:
            rest(ctx.conn.network, method, path, json={f"{kind}_rule": body})

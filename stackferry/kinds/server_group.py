"""Nova server groups: policy and rules. Created with a token scoped to the tenant project
(nova takes a group's project from the token), see Context.project_conn."""

from __future__ import annotations

from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field, Kind
from stackferry.engine.model import Resource


class ServerGroup(Kind):
    name = "server_group"
    plural = "server_groups"
    description = "Nova server groups (policy and rules)"
    identity_schema = {"name": {**NAME, "minLength": 1}}
    retire = True
    fields = (  # nova cannot change a group in place
        Field(
            "policy",
            {"enum": ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]},
            required=True,
            immutable=True,
        ),
        Field(
            "rules",
            {
                "type": "object",
                "properties": {"max_server_per_host": {"type": "integer", "minimum": 1}},
                "additionalProperties": False,
            },
            default={},
            convert=dict,
            immutable=True,
            omit_empty=True,
        ),
    )

    def read(self, ctx: Context) -> list[Resource]:
        return [
            self.resource({"name": g.name}, self.params_of(ctx, g), g.id, ctx)
            for g in ctx.conn.compute.server_groups(all_projects=True)
            if g.project_id == ctx.project_id
        ]

    def create(self, ctx: Context, resource: Resource) -> str:
        body = {"name": resource.identity["name"], **self.create_body(ctx, resource.params)}
        return str(ctx.project_conn().compute.create_server_group(**body).id)

    def delete(self, ctx: Context, current: Resource) -> None:
        ctx.conn.compute.delete_server_group(current.cloud_id, ignore_missing=False)

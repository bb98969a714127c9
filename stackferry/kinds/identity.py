"""Keystone domains and the tenant project itself."""

from __future__ import annotations

from typing import Any

from stackferry.cloud import sdk
from stackferry.engine.context import Context, Tenant
from stackferry.engine.formats import KEYSTONE_NAME
from stackferry.engine.kind import Field, Kind
from stackferry.engine.model import Resource, identity_key

DESCRIPTION = Field("description", {"type": "string"}, default="")
ENABLED = Field("enabled", {"type": "boolean"}, attr="is_enabled", wire="is_enabled", default=True)


class Domain(Kind):
    """The tenant's domain: looked up by name, created only when mapped to a new name."""

    name = "domain"
    plural = "domains"
    description = "Keystone domain of the tenant (created when mapped to a name that is new)"
    identity_schema = {"name": KEYSTONE_NAME}
    fields = (DESCRIPTION, ENABLED)
    in_project = False
    mapping_category = "domains"
    renamed_exists = False  # created under the new name when it is new
    kept_because = "a domain is shared: other projects and users may be in it"

    def read(self, ctx: Context) -> list[Resource]:
        return [
            self.resource({"name": d.name}, self.params_of(ctx, d), d.id, ctx)
            for d in sdk.identity(ctx.conn).domains(name=ctx.tenant.domain)
        ]

    def create(self, ctx: Context, resource: Resource) -> str:
        body = self.create_body(ctx, resource.params)
        domain = sdk.identity(ctx.conn).create_domain(name=resource.identity["name"], **body)
        return str(domain.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        body = self.update_body(ctx, resource.params, changed)
        sdk.identity(ctx.conn).update_domain(current.cloud_id, **body)


class Project(Kind):
    """The tenant project: description, enabled, tags and its parent project."""

    name = "project"
    plural = "projects"
    description = "The tenant's keystone project (with parent and tags)"
    identity_fields = ("name", "domain")
    identity_schema = {"name": KEYSTONE_NAME, "domain": KEYSTONE_NAME}
    fields = (
        DESCRIPTION,
        ENABLED,
        # keystone: at most 80 tags, each 1-255 characters without "/" or ","
        Field(
            "tags",
            {
                "type": "array",
                "maxItems": 80,
                "items": {"type": "string", "pattern": "^[^/,]{1,255}$"},
            },
            default=[],
            convert=sorted,
        ),
        # Parents must exist before their children; read along the chain, by name.
        Field(
            "parent",
            {"type": ["object", "null"]},
            attr=None,
            wire="parent_id",
            ref="project",
            immutable=True,
            create_only=True,
        ),
    )
    after = ("domain",)
    in_project = False
    defines_tenant = True
    mapping_category = "projects"
    renamed_exists = False
    kept_because = "the tenant project itself: delete it yourself once nothing is left in it"

    def extra_needs(self, resource: Resource) -> list[str]:
        return [identity_key("domain", {"name": resource.identity["domain"]})]

    def tenant_identity(self, name: str, domain: str) -> dict[str, str]:
        return {"name": name, "domain": domain}

    def tenant_named(self, identity: dict[str, Any]) -> Tenant:
        return Tenant(identity["name"], identity["domain"])

    def read(self, ctx: Context) -> list[Resource]:
        """The tenant project and its ancestors (parents must exist before their children)."""
        idn = sdk.identity(ctx.conn)
        domain = ctx.tenant.domain
        domain_id = ctx.ids.id("domain", {"name": domain})
        if domain_id is None:
            return []
        chain = list(idn.projects(name=ctx.tenant.name, domain_id=domain_id))
        while chain and chain[-1].parent_id and chain[-1].parent_id != domain_id:
            chain.append(idn.get_project(chain[-1].parent_id))
        out = []
        for i, p in enumerate(chain):
            parent = {"name": chain[i + 1].name, "domain": domain} if i + 1 < len(chain) else None
            params = {**self.params_of(ctx, p), "parent": parent}
            out.append(self.resource({"name": p.name, "domain": domain}, params, p.id, ctx))
        return out[::-1]

    def create(self, ctx: Context, resource: Resource) -> str:
        project = sdk.identity(ctx.conn).create_project(
            name=resource.identity["name"],
            domain_id=ctx.resolve("domain", {"name": resource.identity["domain"]}),
            **self.create_body(ctx, resource.params),
        )
        return str(project.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        body = self.update_body(ctx, resource.params, changed)
        sdk.identity(ctx.conn).update_project(current.cloud_id, **body)

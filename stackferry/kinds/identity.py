"""Keystone domains and the tenant project itself."""

from __future__ import annotations

from typing import Any

from stackferry.cloud import sdk
from stackferry.engine.context import Context, Tenant
from stackferry.engine.formats import KEYSTONE_NAME
from stackferry.engine.kind import Kind, RefSpec
from stackferry.engine.model import Resource, identity_key


class Domain(Kind):
    """The tenant's domain: looked up by name, created only when mapped to a new name."""

    name = "domain"
    plural = "domains"
    description = "Keystone domain of the tenant (created when mapped to a name that is new)"
    identity_schema = {"name": KEYSTONE_NAME}
    params_schema = {
        "type": "object",
        "properties": {"description": {"type": "string"}, "enabled": {"type": "boolean"}},
        "additionalProperties": False,
    }
    in_project = False
    mapping_category = "domains"
    renamed_exists = False  # created under the new name when it is new

    def read(self, ctx: Context) -> list[Resource]:
        idn = sdk.identity(ctx.conn)
        return [
            self.resource(
                {"name": d.name},
                {"description": d.description or "", "enabled": d.is_enabled},
                d.id,
                ctx,
            )
            for d in idn.domains(name=ctx.tenant.domain)
        ]

    def create(self, ctx: Context, resource: Resource) -> str:
        domain = sdk.identity(ctx.conn).create_domain(
            name=resource.identity["name"],
            description=resource.params.get("description", ""),
            is_enabled=resource.params.get("enabled", True),
        )
        return str(domain.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        body = {
            "description": resource.params.get("description", ""),
            "is_enabled": resource.params.get("enabled", True),
        }
        sdk.identity(ctx.conn).update_domain(current.cloud_id, **body)


class Project(Kind):
    """The tenant project: description, enabled, tags and its parent project."""

    name = "project"
    plural = "projects"
    description = "The tenant's keystone project (with parent and tags)"
    identity_fields = ("name", "domain")
    identity_schema = {"name": KEYSTONE_NAME, "domain": KEYSTONE_NAME}
    params_schema = {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            # keystone: at most 80 tags, each 1-255 characters without "/" or ","
            "tags": {
                "type": "array",
                "maxItems": 80,
                "items": {"type": "string", "pattern": "^[^/,]{1,255}$"},
            },
            "parent": {"type": ["object", "null"]},
        },
        "additionalProperties": False,
    }
    refs = (RefSpec("parent", "project"),)
    after = ("domain",)
    immutable = frozenset({"parent"})
    in_project = False
    defines_tenant = True
    mapping_category = "projects"
    renamed_exists = False

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
            params = {
                "description": p.description or "",
                "enabled": p.is_enabled,
                "tags": sorted(p.tags or []),
                "parent": parent,
            }
            out.append(self.resource({"name": p.name, "domain": domain}, params, p.id, ctx))
        return out[::-1]

    def create(self, ctx: Context, resource: Resource) -> str:
        p = resource.params
        domain_id = ctx.resolve("domain", {"name": resource.identity["domain"]})
        parent_id = ctx.resolve("project", p.get("parent")) if p.get("parent") else None
        project = sdk.identity(ctx.conn).create_project(
            name=resource.identity["name"],
            domain_id=domain_id,
            parent_id=parent_id,
            description=p.get("description", ""),
            is_enabled=p.get("enabled", True),
            tags=p.get("tags", []),
        )
        return str(project.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        p = resource.params
        sdk.identity(ctx.conn).update_project(
            current.cloud_id,
            description=p.get("description", ""),
            is_enabled=p.get("enabled", True),
            tags=p.get("tags", []),
        )

"""Keystone users that have a role on the tenant project.

Passwords are never read nor written: keystone does not return them, and a migrated user is
created without one, so it cannot log in with a password until one is set (or until it
logs in through federation). Each user's ``facts["password"]`` says so, in the workdir and
reports. A user whose identity backend changed is renamed through the mapping's ``users``
table (by old name or old ID); a user that already exists in the destination under the
(mapped) name is taken over and brought to the exported params, not created again.
"""

from __future__ import annotations

from typing import Any

from stackferry import sdk
from stackferry.engine.model import Resource
from stackferry.kinds.base import Context, Kind, RefSpec

PASSWORD_FACT = "not migrated: set one or use federation"


def tenant_user_assignments(ctx: Context) -> list[Any]:
    """Direct user role assignments on the tenant project (with names), one list call."""
    if ctx.tenant.id is None:
        return []
    return [
        a
        for a in sdk.identity(ctx.conn).role_assignments(
            scope_project_id=ctx.tenant.id, include_names=True
        )
        if a.user and not (a.scope or {}).get("OS-INHERIT:inherited_to")
    ]


def domain_id(ctx: Context, name: str) -> str:
    """A domain's ID by name: from what was read when possible, else one lookup."""
    known = ctx.ids.id("domain", {"name": name})
    if known is not None:
        return known
    return str(sdk.identity(ctx.conn).find_domain(name, ignore_missing=False).id)


class User(Kind):
    """Users with a role on the tenant project. Their passwords are never migrated: they are
    created without one (``facts["password"]`` says so); set one, or use federation."""

    name = "user"
    plural = "users"
    description = (
        "Keystone users with a role on the tenant (created without a password: set one, "
        "or use federation)"
    )
    identity_fields = ("name", "domain")
    params_schema = {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "email": {"type": ["string", "null"]},
            "enabled": {"type": "boolean"},
            "default_project": {"type": ["object", "null"]},
        },
        "additionalProperties": False,
    }
    refs = (RefSpec("default_project", "project"),)
    after = ("domain",)
    in_project = False
    needs_admin = True
    mapping_category = "users"

    def read(self, ctx: Context) -> list[Resource]:
        # One list of the tenant's assignments, then one list of users per domain they are in.
        by_domain: dict[str, set[str]] = {}
        for a in tenant_user_assignments(ctx):
            by_domain.setdefault(a.user["domain"]["name"], set()).add(a.user["id"])
        idn = sdk.identity(ctx.conn)
        out = []
        for domain_name, wanted in sorted(by_domain.items()):
            for u in idn.users(domain_id=domain_id(ctx, domain_name)):
                if u.id not in wanted:
                    continue
                default_project = (
                    ctx.ref("project", ctx.tenant.id)
                    if ctx.tenant.id and u.default_project_id == ctx.tenant.id
                    else None
                )
                params = {
                    "description": u.description or "",
                    "email": u.email,
                    "enabled": bool(u.is_enabled),
                    "default_project": default_project,
                }
                out.append(
                    self.resource(
                        {"name": u.name, "domain": domain_name},
                        params,
                        u.id,
                        ctx,
                        password=PASSWORD_FACT,
                    )
                )
        return out

    def _body(self, ctx: Context, params: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "description" in changed:
            body["description"] = params.get("description", "")
        if "email" in changed:
            body["email"] = params.get("email")
        if "enabled" in changed:
            body["is_enabled"] = params.get("enabled", True)
        if "default_project" in changed:
            body["default_project_id"] = ctx.resolve("project", params.get("default_project"))
        return body

    def create(self, ctx: Context, resource: Resource) -> str:
        """Create the user without a password; take over one that exists by that name (a user
        mapped to an existing one, or one created by a run that stopped before its roles)."""
        idn = sdk.identity(ctx.conn)
        did = domain_id(ctx, resource.identity["domain"])
        p = resource.params
        existing = next(iter(idn.users(domain_id=did, name=resource.identity["name"])), None)
        if resource.facts.get("mapped_from") is not None:
            # Mapped onto a user of the destination's identity backend: used, never modified.
            if existing is None:
                raise LookupError(
                    f"user {resource.facts['mapped_from']!r} is mapped to "
                    f"{resource.identity['name']!r}, which does not exist in domain "
                    f"{resource.identity['domain']!r} of the destination"
                )
            return str(existing.id)
        if existing is not None:
            have = {
                "description": existing.description or "",
                "email": existing.email,
                "enabled": bool(existing.is_enabled),
                "default_project": ctx.ids.identity("project", existing.default_project_id)
                if existing.default_project_id
                else None,
            }
            body = self._body(ctx, p, self.changed_fields(p, have))
            if body:
                idn.update_user(existing.id, **body)
            return str(existing.id)
        body = self._body(ctx, p, set(self.params_schema["properties"]))
        body = {k: v for k, v in body.items() if v is not None}
        user = idn.create_user(name=resource.identity["name"], domain_id=did, **body)
        return str(user.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        body = self._body(ctx, resource.params, changed)
        if body:
            sdk.identity(ctx.conn).update_user(current.cloud_id, **body)

"""Keystone role assignments of users on the tenant project, and the roles they name.

Only direct user x project assignments are migrated: group assignments (stackferry does not
migrate groups), assignments inherited to subprojects and domain-scoped ones are left out.
"""

from __future__ import annotations

from stackferry.cloud import sdk
from stackferry.cloud.roles import grant_project_role, revoke_project_role
from stackferry.engine.context import Context
from stackferry.engine.kind import Field, Kind
from stackferry.engine.model import Resource
from stackferry.kinds.user import tenant_user_assignments


class Role(Kind):
    """Lookup only: roles are the cloud's, found by name in the destination, never created.
    An assignment naming a role the destination lacks is blocked, with the role named."""

    name = "role"
    plural = "roles"
    description = "Keystone roles (the cloud's, referenced by name, never created)"
    in_project = False
    lookup_only = True

    def read(self, ctx: Context) -> list[Resource]:
        return [
            self.resource({"name": r.name}, {}, r.id, ctx)
            for r in sdk.identity(ctx.conn).roles()
            if not r.domain_id  # domain-specific roles are not global names
        ]


class RoleAssignment(Kind):
    name = "role_assignment"
    plural = "role_assignments"
    description = "Roles of users on the tenant project (user x project x role)"
    identity_fields = ("user", "role", "project")
    # The identity's parts, as references: they order creation after the user and project
    # and let the plan block on a role the destination lacks. Nothing here can change.
    fields = tuple(
        Field(
            part, {"type": "object"}, attr=None, wire=None, ref=part, required=True, immutable=True
        )
        for part in ("user", "role", "project")
    )
    in_project = False
    retire = True  # revoked: the user and the role stay

    def read(self, ctx: Context) -> list[Resource]:
        out = []
        assignments = tenant_user_assignments(ctx)
        project = ctx.ref("project", ctx.tenant.id) or {}
        for a in assignments:
            user = ctx.ref("user", a.user["id"])
            role = ctx.ids.identity("role", a.role["id"])
            if user is None or role is None:  # a domain-specific role: not migrated
                continue
            identity = {"user": dict(user), "role": role["name"], "project": dict(project)}
            params = {"user": dict(user), "role": dict(role), "project": dict(project)}
            cloud_id = f"{ctx.project_id}/{a.user['id']}/{a.role['id']}"
            out.append(self.resource(identity, params, cloud_id, ctx))
        return out

    def create(self, ctx: Context, resource: Resource) -> str:
        p = resource.params
        project_id = ctx.resolve("project", p["project"])
        user_id = ctx.resolve("user", p["user"])
        role_id = ctx.resolve("role", p["role"])
        assert project_id and user_id and role_id
        grant_project_role(ctx.conn, project_id, user_id, role_id)
        return f"{project_id}/{user_id}/{role_id}"

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        raise NotImplementedError("role assignments have nothing to update")

    def delete(self, ctx: Context, current: Resource) -> None:
        project_id, user_id, role_id = current.cloud_id.split("/")
        revoke_project_role(ctx.conn, project_id, user_id, role_id)

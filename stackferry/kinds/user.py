"""Keystone users that have a role on the tenant project.

Passwords are never read nor written: keystone does not return them, and a migrated user is
created without one, so it cannot log in with a password until one is set (or until it
logs in through federation). Each user's ``facts["password"]`` says so, in the workdir and
reports. A user whose identity backend changed is renamed through the mapping's ``users``
table (by old name or old ID) and used as the destination has it. A user that already exists
in the destination under its name (a member of a project migrated earlier) is found by the
plan and not created again; it is changed only if stackferry made it, or it is adopted.
"""

from __future__ import annotations

from typing import Any

from stackferry.cloud import sdk
from stackferry.engine.context import Context
from stackferry.engine.formats import KEYSTONE_NAME, USER_NAME
from stackferry.engine.kind import Field, Kind
from stackferry.engine.model import Resource

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


def _domain_exists(ctx: Context, name: str) -> bool:
    return sdk.identity(ctx.conn).find_domain(name, ignore_missing=True) is not None


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
    identity_schema = {"name": USER_NAME, "domain": KEYSTONE_NAME}
    fields = (
        Field("description", {"type": "string"}, default=""),
        Field("email", {"type": ["string", "null"]}, omit_empty=True),
        Field("enabled", {"type": "boolean"}, attr="is_enabled", wire="is_enabled", default=True),
        # The tenant, when it is the user's default project; other projects are not ours.
        Field(
            "default_project",
            {"type": ["object", "null"]},
            attr=None,
            wire="default_project_id",
            ref="project",
            omit_empty=True,
        ),
    )
    after = ("domain",)
    in_project = False
    mapping_category = "users"
    kept_because = "an identity: the user may have roles on other projects (its roles here go)"

    def read(self, ctx: Context) -> list[Resource]:
        # One list of the tenant's assignments, then one list of users per domain they are in.
        by_domain: dict[str, set[str]] = {}
        for a in tenant_user_assignments(ctx):
            by_domain.setdefault(a.user["domain"]["name"], set()).add(a.user["id"])
        return [
            self._resource(ctx, u, domain_name)
            for domain_name, wanted in sorted(by_domain.items())
            for u in self._users(ctx, domain_name)
            if u.id in wanted
        ]

    def find(self, ctx: Context, wanted: list[Resource]) -> list[Resource]:
        """Users who exist without a role on the tenant yet (members of a project migrated
        before, or made by a run that stopped before their roles): one list per domain."""
        names: dict[str, set[str]] = {}
        for r in wanted:
            names.setdefault(r.identity["domain"], set()).add(r.identity["name"])
        out: list[Resource] = []
        for domain_name, wanted_names in sorted(names.items()):
            if ctx.ids.id("domain", {"name": domain_name}) is None and not _domain_exists(
                ctx, domain_name
            ):
                continue
            out.extend(
                self._resource(ctx, u, domain_name)
                for u in self._users(ctx, domain_name)
                if u.name in wanted_names
            )
        return out

    @staticmethod
    def _users(ctx: Context, domain_name: str) -> list[Any]:
        return list(sdk.identity(ctx.conn).users(domain_id=domain_id(ctx, domain_name)))

    def _resource(self, ctx: Context, u: Any, domain_name: str) -> Resource:
        default_project = (
            ctx.ref("project", ctx.tenant.id)
            if ctx.tenant.id and u.default_project_id == ctx.tenant.id
            else None
        )
        params = {**self.params_of(ctx, u), "default_project": default_project}
        return self.resource(
            {"name": u.name, "domain": domain_name}, params, u.id, ctx, password=PASSWORD_FACT
        )

    def create(self, ctx: Context, resource: Resource) -> str:
        """Create the user, without a password (one that exists by that name was found by the
        plan, through ``find``, and is not created again)."""
        user = sdk.identity(ctx.conn).create_user(
            name=resource.identity["name"],
            domain_id=domain_id(ctx, resource.identity["domain"]),
            **self.create_body(ctx, resource.params),
        )
        return str(user.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        body = self.update_body(ctx, resource.params, changed)
        if body:
            sdk.identity(ctx.conn).update_user(current.cloud_id, **body)

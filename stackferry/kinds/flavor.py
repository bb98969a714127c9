"""Nova flavors the tenant can use: every public flavor, and the private flavors whose access
list holds the tenant project.

Extra specs come with the flavor list (compute microversion 2.61). Nova has no call that
lists the flavors a project may use, so each private flavor's access list is read on its
own (one GET per private flavor in the cloud). Only the tenant's place on an access list is
migrated; other projects on it are not the tenant's business.
"""

from __future__ import annotations

from typing import Any

from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field, Kind
from stackferry.engine.model import Params, Resource, identity_key


class Flavor(Kind):
    name = "flavor"
    plural = "flavors"
    description = (
        "Nova flavors the tenant can use: public ones, and private ones shared with it "
        "(extra specs, and the tenant's access)"
    )
    identity_schema = {"name": {**NAME, "minLength": 1}}
    # Sizes cannot change in place (nova has no call for it), rxtx_factor neither.
    fields = (
        Field("vcpus", {"type": "integer", "minimum": 1}, required=True, immutable=True),
        Field("ram", {"type": "integer", "minimum": 1}, required=True, immutable=True),
        Field("disk", {"type": "integer", "minimum": 0}, default=0, immutable=True),
        Field("ephemeral", {"type": "integer", "minimum": 0}, default=0, immutable=True),
        Field("swap", {"type": "integer", "minimum": 0}, default=0, immutable=True),
        Field(
            "rxtx_factor",
            {"type": "number", "exclusiveMinimum": 0},
            default=1.0,
            convert=float,
            immutable=True,
        ),
        Field("is_public", {"type": "boolean"}, default=True, convert=bool, immutable=True),
        Field("description", {"type": "string", "maxLength": 65535}, default="", omit_empty=True),
        Field(
            "extra_specs",
            {"type": "object", "additionalProperties": {"type": "string"}},
            wire=None,  # a call of their own
            default={},
            convert=lambda specs: {str(k): str(v) for k, v in specs.items()},
        ),
        # The tenant project when it is on the (private) flavor's access list, else empty.
        Field(
            "access",
            {"type": "array", "items": {"type": "object"}, "maxItems": 1},
            attr=None,
            wire=None,
            ref="project",
            many=True,
            order=lambda p: identity_key("project", p),
        ),
    )
    in_project = False
    mapping_category = "flavors"
    kept_because = "flavors are the cloud's, shared by its projects"

    def read(self, ctx: Context) -> list[Resource]:
        compute = ctx.conn.compute
        tenant = ctx.ref("project", ctx.tenant.id) if ctx.tenant.id else None
        out = []
        for f in compute.flavors(details=True, is_public=None):
            access: list[dict[str, Any]] = []
            if not f.is_public:
                if tenant is None:
                    continue
                holders = {a["tenant_id"] for a in compute.get_flavor_access(f)}
                if ctx.tenant.id not in holders:
                    continue
                access = [tenant]
            out.append(
                self.resource(
                    {"name": f.name},
                    self._params(ctx, f, access),
                    f.id,
                    ctx,
                    disabled=f.is_disabled,
                )
            )
        return out

    def _params(self, ctx: Context, f: Any, access: list[dict[str, Any]]) -> Params:
        return {**self.params_of(ctx, f), "access": access}

    def _resource(self, ctx: Context, f: Any, access: list[dict[str, Any]]) -> Resource:
        return self.resource(
            {"name": f.name}, self._params(ctx, f, access), f.id, ctx, disabled=f.is_disabled
        )

    def normalise(self, params: Params) -> Params:
        out = super().normalise(params)
        if "rxtx_factor" in out:
            out["rxtx_factor"] = float(out["rxtx_factor"])
        return out

    def find(self, ctx: Context, wanted: list[Resource]) -> list[Resource]:
        """Private flavors of these names that the tenant is not on the access list of (yet):
        they exist, and the plan must not try to make them again."""
        names = {r.identity["name"] for r in wanted}
        return [
            self.resource(
                {"name": f.name}, self._params(ctx, f, []), f.id, ctx, disabled=f.is_disabled
            )
            for f in ctx.conn.compute.flavors(details=True, is_public=None)
            if f.name in names and not f.is_public
        ]

    def create(self, ctx: Context, resource: Resource) -> str:
        p = resource.params
        flavor = ctx.conn.compute.create_flavor(
            name=resource.identity["name"], **self.create_body(ctx, p)
        )
        have = {**self._params(ctx, flavor, []), "extra_specs": {}}
        self._converge(ctx, flavor.id, p, have, {"extra_specs", "access"})
        return str(flavor.id)

    def _converge(
        self, ctx: Context, flavor_id: str, want: Params, have: Params, fields: set[str]
    ) -> None:
        compute = ctx.conn.compute
        if "description" in fields and want.get("description", "") != have["description"]:
            compute.update_flavor(flavor_id, description=want.get("description", ""))
        if "extra_specs" in fields:
            specs, old = want.get("extra_specs", {}), have["extra_specs"]
            changed = {k: v for k, v in specs.items() if old.get(k) != v}
            if changed:
                compute.create_flavor_extra_specs(flavor_id, changed)
            for key in sorted(set(old) - set(specs)):
                compute.delete_flavor_extra_specs_property(flavor_id, key)
        if "access" in fields:
            wanted = {ctx.resolve("project", p) for p in want.get("access", [])}
            had = {ctx.resolve("project", p) for p in have.get("access", [])}
            for project_id in sorted(i for i in wanted - had if i):
                compute.flavor_add_tenant_access(flavor_id, project_id)
            for project_id in sorted(i for i in had - wanted if i):
                compute.flavor_remove_tenant_access(flavor_id, project_id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        self._converge(ctx, current.cloud_id, resource.params, current.params, changed)

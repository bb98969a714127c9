"""What every neutron kind of the tenant shares, written once.

A neutron resource is listed by project in one call, created in the project from its
fields, tagged with stackferry's marker right after the POST (neutron takes no tags in it),
and updated with one PUT of the fields that changed; ``stackferry finish`` takes the marker
off again (one DELETE of the tag), and ``finish --retire-source`` deletes the source's. A
kind here declares ``sdk_name`` (openstacksdk's ``networks()``, ``create_network()``,
``update_network()``, ``get_network()``...) and its fields; what is irregular goes in the few
hooks below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from stackferry.cloud.connection import rest
from stackferry.engine.context import Context
from stackferry.engine.formats import DESCRIPTION, NAME
from stackferry.engine.kind import (
    MARKER_TAG,
    Field,
    Kind,
    has_marker,
    with_marker,
    without_marker,
)
from stackferry.engine.model import Params, Resource

# Fields several neutron kinds have, declared once.
DESCRIBED = Field("description", DESCRIPTION, default="")
NAMED = Field("name", NAME, default="")  # for kinds whose name does not identify them
ADMIN_STATE_UP = Field(
    "admin_state_up", {"type": "boolean"}, attr="is_admin_state_up", default=True
)
IN_NETWORK = Field(
    "network",
    {"type": "object"},
    attr="network_id",
    wire="network_id",
    ref="network",
    required=True,
    immutable=True,
    create_only=True,
)
# A network's or a port's; omitted when none: a cloud without the qos extension refuses it.
QOS_POLICY = Field(
    "qos_policy",
    {"type": ["object", "null"]},
    attr="qos_policy_id",
    wire="qos_policy_id",
    ref="qos_policy",
    omit_empty=True,
)
TAGS = Field(
    "tags",
    {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}},
    wire=None,  # neutron refuses tags in a POST: set with our marker right after it
    default=[],
    convert=without_marker,
)


class NeutronKind(Kind):
    sdk_name: ClassVar[str]  # "network", "subnet", "security_group", "router", "port", "ip"
    # Takes tags (and so our marker); without, what is ours is known from the journal only.
    tagged: ClassVar[bool] = True
    # The API extension the kind needs, when it is not core (a cloud without it has none).
    extension: ClassVar[str | None] = None
    # Neutron's collection in URLs ("security-groups"), for the tags API: a tagged kind has one.
    collection: ClassVar[str] = ""
    retire = True  # the tenant's own: deleted from the source once migrated and verified

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and cls.tagged and not cls.collection:
            raise TypeError(f"kind {cls.__name__}: a tagged neutron kind names its collection")

    # --- the irregular parts, each optional --------------------------------------------

    def listing(self, ctx: Context) -> Iterable[Any]:
        """The tenant's resources of this kind, as openstacksdk objects."""
        if not self.has_extension(ctx):
            return []
        return list(getattr(ctx.conn.network, f"{self.sdk_name}s")(project_id=ctx.project_id))

    def has_extension(self, ctx: Context) -> bool:
        if self.extension is None:
            return True
        cache = ctx.cache.setdefault("neutron_extensions", {})
        if self.extension not in cache:
            cache[self.extension] = ctx.conn.network.find_extension(self.extension) is not None
        return bool(cache[self.extension])

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        if self.has_extension(ctx):
            return []
        return [f"the destination's network service has no {self.extension} extension"]

    def identity_of(self, ctx: Context, obj: Any, params: Params) -> dict[str, Any]:
        return {"name": obj.name}

    def more_params(self, ctx: Context, obj: Any) -> Params:
        """Params no field reads by itself."""
        return {}

    def facts_of(self, ctx: Context, obj: Any) -> dict[str, Any]:
        return {}

    def naming(self, resource: Resource) -> dict[str, Any]:
        """The create call's arguments that come from the identity."""
        return {"name": resource.identity["name"]}

    def more_body(
        self, ctx: Context, resource: Resource, names: set[str], creating: bool
    ) -> dict[str, Any]:
        """Body keys no field writes by itself, for these params (all of them on create)."""
        return {}

    def after_create(self, ctx: Context, resource: Resource, obj: Any) -> None:
        """What the create needs once the resource exists and is tagged."""

    def after_update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        """What an update needs besides its PUT and tags."""

    # --- written once --------------------------------------------------------------------

    def read(self, ctx: Context) -> list[Resource]:
        return [self.resource_of(ctx, obj) for obj in self.listing(ctx)]

    def resource_of(self, ctx: Context, obj: Any, **more: Any) -> Resource:
        """One listed object as a resource: its fields, what ``more_params`` adds, ``more``."""
        params = {**self.params_of(ctx, obj), **self.more_params(ctx, obj), **more}
        return self.resource(
            self.identity_of(ctx, obj, params),
            self.normalise(params),
            obj.id,
            ctx,
            ours=has_marker(getattr(obj, "tags", None)),
            **self.facts_of(ctx, obj),
        )

    def create(self, ctx: Context, resource: Resource) -> str:
        net, p = ctx.conn.network, resource.params
        names = set(p) | {f.name for f in self.fields}
        body = {
            "project_id": ctx.project_id,
            **self.naming(resource),
            **self.create_body(ctx, p),
            **self.more_body(ctx, resource, names, creating=True),
        }
        obj = getattr(net, f"create_{self.sdk_name}")(**body)
        if self.tagged:
            net.set_tags(obj, self.tags_of(resource))
        self.after_create(ctx, resource, obj)
        return str(obj.id)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        net, p = ctx.conn.network, resource.params
        more = self.more_body(ctx, resource, changed, creating=False)
        body = {**self.update_body(ctx, p, changed), **more}
        if body:  # one PUT: fields that depend on each other change together
            getattr(net, f"update_{self.sdk_name}")(current.cloud_id, **body)
        if "tags" in changed and self.tagged:
            net.set_tags(
                getattr(net, f"get_{self.sdk_name}")(current.cloud_id), self.tags_of(resource)
            )
        self.after_update(ctx, resource, current, changed)

    def tags_of(self, resource: Resource) -> list[str]:
        """The tags as written: the resource's own, and our marker."""
        return with_marker(resource.params)

    def marked(self, current: Resource) -> bool:
        return self.tagged and bool(current.facts.get("ours"))

    def unmark(self, ctx: Context, current: Resource) -> None:
        """Our marker off, the resource's own tags left as they are."""
        path = f"/{self.collection}/{current.cloud_id}/tags/{MARKER_TAG}"
        rest(ctx.conn.network, "delete", path)

    def delete(self, ctx: Context, current: Resource) -> None:
        getattr(ctx.conn.network, f"delete_{self.sdk_name}")(current.cloud_id, ignore_missing=False)

"""The contract every resource kind is written against; the engine does the rest.

A kind is a small class. It declares:

- ``name`` and ``plural``, its ``identity_fields`` (what names it portably, never an ID) and,
  for identity fields that need more than "a name or a reference", ``identity_schema``;
- its params as ``fields``: each ``Field`` says once how the param is read from openstacksdk's
  object (``attr``), what it is called in the API's body (``wire``), its JSON Schema, its
  default, whether it references another kind (``ref``), is renamed by the mapping
  (``mapping``), cannot change in place (``immutable``) or is compared unordered (``order``).
  The workdir's schema, ``refs``, ``immutable`` and ``mapped_values`` are derived from them,
  as are ``params_of`` (read), ``create_body`` and ``update_body`` (write);
- optional capabilities, typed on this class with their defaults (see the ClassVars below),
  checked when a kind class is defined;

and implements what is irregular: ``read`` (a whole scope with list calls), ``create``,
``update``, and where needed ``delete`` (for ``prune_within``, ``replaceable`` and
``retire``), ``find``, ``check``, ``converge``, ``normalise``, ``conflicting``, ``ownership``,
``marked`` and ``unmark`` (stackferry's marker, which ``finish`` takes off), ``retirable``.
A kind imports the engine; the engine imports no kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from stackferry.data.transfer import SourceBytes
from stackferry.engine.context import Context, Tenant
from stackferry.engine.model import Params, Resource

# Resources stackferry creates carry this tag where the API has tags (neutron, glance), so they
# are recognised as ours even when the journal is lost; it is never exported nor compared.
MARKER_TAG = "stackferry"


class Progressed(Exception):
    """A step moved its resource forward without completing it (a warm pass of a volume's
    copy): not a failure; a later run completes it. The message says how far it got."""


class Ownership(StrEnum):
    """What a destination resource itself says about who made it."""

    MARKED = "marked"  # it carries stackferry's marker: ours
    WITH_TENANT = "with-tenant"  # the service made it for the project: ours when the project is
    UNKNOWN = "unknown"  # nothing on it says: ours only if the journal or the operator says so


@dataclass(frozen=True)
class RefSpec:
    """A param holding a reference: ``path`` is dotted, ``[]`` walks into lists of dicts."""

    path: str
    kind: str


def iter_ref_values(params: Params, path: str) -> Iterator[tuple[Any, str]]:
    """Yield (container, key) for every place ``path`` names in ``params``."""
    head, _, rest = path.partition(".")
    many = head.endswith("[]")
    name = head[:-2] if many else head
    if name not in params or params[name] is None:
        return
    if not rest:
        if many:
            for i in range(len(params[name])):
                yield params[name], str(i)  # lists: container is the list, key the index
        else:
            yield params, name
        return
    children = params[name] if many else [params[name]]
    for child in children:
        if isinstance(child, dict):
            yield from iter_ref_values(child, rest)


def get_ref(container: Any, key: str) -> Any:
    return container[int(key)] if isinstance(container, list) else container[key]


def set_ref(container: Any, key: str, value: Any) -> None:
    if isinstance(container, list):
        container[int(key)] = value
    else:
        container[key] = value


_SAME = "="  # attr / wire default: the field's own name


@dataclass(frozen=True)
class Field:
    """One param of a kind, declared once.

    - ``attr``: the attribute of openstacksdk's object (or the key of an API's JSON object)
      it is read from; ``None``: read by the kind's code.
    - ``wire``: its key in the API's body, as openstacksdk's create and update calls take it;
      ``None``: written by the kind's code.
    - ``default``: its value when the cloud says nothing (``None`` read) and when the workdir
      leaves it out; ``convert`` turns the SDK's value into the portable one (``bool``...).
    - ``ref``: the value is a reference to that kind (a list of them with ``many``), read
      from IDs and written back as IDs; ``mapping``: the mapping table that renames it.
    - ``immutable``: cannot change in place; ``create_only``: the API takes it on create
      only; ``omit_empty``: not sent on create when empty (the service chooses, e.g. an
      MTU), and cleared on update when it became empty;
      ``order``: compared as a list sorted by this key.
    - ``write_only``: sent, never shown back by the API (a server's key owner): never
      compared; ``secret``: never shown (a server's user data): masked in plans and reports.
    """

    name: str
    schema: dict[str, Any]
    attr: str | None = _SAME
    wire: str | None = _SAME
    default: Any = None
    convert: Callable[[Any], Any] | None = None
    ref: str | None = None
    many: bool = False
    mapping: str | None = None
    immutable: bool = False
    create_only: bool = False
    omit_empty: bool = False
    order: Callable[[Any], Any] | None = None  # compared as a list sorted by this key
    required: bool = False
    write_only: bool = False
    secret: bool = False

    @property
    def attribute(self) -> str | None:
        return self.name if self.attr == _SAME else self.attr

    @property
    def key(self) -> str | None:
        return self.name if self.wire == _SAME else self.wire

    @property
    def path(self) -> str:
        return f"{self.name}[]" if self.many else self.name

    def read(self, ctx: Context, obj: Any) -> Any:
        assert self.attribute is not None
        value = (
            obj.get(self.attribute) if isinstance(obj, dict) else getattr(obj, self.attribute, None)
        )
        if self.ref:
            if self.many:
                return [ctx.ref(self.ref, v) for v in value or []]
            return ctx.ref(self.ref, value)
        if value is None:
            return self.fresh_default()
        return self.convert(value) if self.convert else value

    def fresh_default(self) -> Any:
        """The default, a new list or dict each time (params are changed in place)."""
        return (
            type(self.default)(self.default)
            if isinstance(self.default, list | dict)
            else self.default
        )

    def write(self, ctx: Context, params: Params) -> Any:
        value = params.get(self.name, self.default)
        if self.ref:
            if self.many:
                return [ctx.resolve(self.ref, v) for v in value or []]
            return ctx.resolve(self.ref, value)
        return value


def text(value: Any) -> str:
    """A description or name as compared: None is the empty string."""
    return str(value or "")


class Kind:
    name: ClassVar[str]
    plural: ClassVar[str]
    description: ClassVar[str] = ""  # one line, for `stackferry kinds`
    identity_fields: ClassVar[tuple[str, ...]] = ("name",)
    identity_schema: ClassVar[dict[str, Any]] = {}
    fields: ClassVar[tuple[Field, ...]] = ()
    # Params beyond the fields: a schema for any other key (quotas' open-ended limits).
    other_params: ClassVar[dict[str, Any] | None] = None
    # References inside params that no single field holds ("interfaces[].subnet").
    nested_refs: ClassVar[tuple[RefSpec, ...]] = ()
    # Plain values inside params the mapping renames, beyond the fields' own: (path, table).
    nested_mappings: ClassVar[tuple[tuple[str, str], ...]] = ()
    # Kinds that must be applied before this one though no param references them.
    after: ClassVar[tuple[str, ...]] = ()
    # The kind's resources live inside the tenant project (need its destination ID).
    in_project: ClassVar[bool] = True
    # Read to resolve references, never exported nor created (roles, external networks).
    lookup_only: ClassVar[bool] = False
    # This kind's resource named like the tenant is the tenant (the project).
    defines_tenant: ClassVar[bool] = False
    # Every resource inside the tenant waits for this kind's (quotas: limits before use).
    gates_tenant: ClassVar[bool] = False
    # The mapping file's table that renames this kind's own names.
    mapping_category: ClassVar[str | None] = None
    # A resource the mapping renames is one the destination has (a user, a flavor): used as
    # it is. False: it is created under its new name (a project, a domain).
    renamed_exists: ClassVar[bool] = True
    # Facts reported side by side in verify (old -> new address).
    mapped_facts: ClassVar[tuple[str, ...]] = ()
    # Destination-only resources inside a migrated parent (the ref at this path) are deleted.
    prune_within: ClassVar[str | None] = None
    # The service type the kind needs (``conn.has_service``); a cloud without it is refused,
    # or - when the service is optional - the kind is left out with a note.
    service: ClassVar[str | None] = None
    optional_service: ClassVar[bool] = False
    # Kinds whose resources this kind's resources may own (a server, its ports): what
    # ``claimed`` names is left out of those kinds' reads, this kind moves it.
    claims: ClassVar[tuple[str, ...]] = ()
    # How long apply waits for a resource that is not ``ready`` (still building).
    ready_timeout: ClassVar[float] = 600.0
    # Creating a resource of this kind streams bytes from the source (``facts["size"]`` many);
    # so does an update of one of ``data_params``.
    # Creates of this kind ready at the same time go in one call, this many at most
    # (``create_many``); 0: one call each.
    bulk_size: ClassVar[int] = 0
    moves_data: ClassVar[bool] = False
    data_params: ClassVar[frozenset[str]] = frozenset()

    # Params that cannot change in place but can by making the resource again: a difference
    # there is a ``replace`` in the plan (delete, then create), for what stackferry made.
    replaceable: ClassVar[frozenset[str]] = frozenset()

    # ``stackferry finish --retire-source`` deletes this kind's migrated resources from the
    # source (with ``delete``), once verify found them equal in the destination; a kind left
    # out (shared or identity things: the project, users, flavors) says why in ``kept_because``.
    retire: ClassVar[bool] = False
    kept_because: ClassVar[str] = "shared or identity things are never retired"

    # Derived from the fields (and the nested declarations) when the class is defined.
    params_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    refs: ClassVar[tuple[RefSpec, ...]] = ()
    immutable: ClassVar[frozenset[str]] = frozenset()
    write_only: ClassVar[frozenset[str]] = frozenset()
    secrets: ClassVar[frozenset[str]] = frozenset()
    mapped_values: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fields" in cls.__dict__ or "nested_refs" in cls.__dict__:
            cls._derive()
        if "name" in cls.__dict__:
            cls._check()

    @classmethod
    def _derive(cls) -> None:
        properties = {f.name: f.schema for f in cls.fields}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        required = [f.name for f in cls.fields if f.required]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = cls.other_params or False
        cls.params_schema = schema
        cls.refs = (
            *(RefSpec(f.path, f.ref) for f in cls.fields if f.ref),
            *cls.nested_refs,
        )
        cls.immutable = frozenset(f.name for f in cls.fields if f.immutable)
        cls.write_only = frozenset(f.name for f in cls.fields if f.write_only)
        cls.secrets = frozenset(f.name for f in cls.fields if f.secret)
        cls.mapped_values = (
            *((f.path, f.mapping) for f in cls.fields if f.mapping),
            *cls.nested_mappings,
        )

    @classmethod
    def _check(cls) -> None:
        """A kind's declarations agree with each other, or the class is refused at import."""
        where = f"kind {cls.__name__}"
        if not getattr(cls, "plural", None):
            raise TypeError(f"{where}: declares a name but no plural")
        if cls.prune_within is not None:
            if not any(r.path == cls.prune_within for r in cls.refs):
                raise TypeError(f"{where}: prune_within {cls.prune_within!r} is no ref's path")
            if cls.delete is Kind.delete:
                raise TypeError(f"{where}: prune_within needs delete()")
        declared = set(cls.params_schema.get("properties", {}))
        unknown = cls.data_params - declared
        if unknown:
            raise TypeError(f"{where}: data_params names params it lacks: {sorted(unknown)}")
        if cls.data_params and not cls.moves_data:
            raise TypeError(f"{where}: data_params without moves_data")
        unknown = cls.immutable - declared
        if unknown and cls.fields:
            raise TypeError(f"{where}: immutable names params it lacks: {sorted(unknown)}")
        if cls.replaceable and cls.delete is Kind.delete:
            raise TypeError(f"{where}: replaceable params need delete()")
        if cls.retire and cls.delete is Kind.delete:
            raise TypeError(f"{where}: retire needs delete()")
        if cls.retire and cls.lookup_only:
            raise TypeError(f"{where}: a lookup-only kind is never retired")
        if (cls.marked is Kind.marked) != (cls.unmark is Kind.unmark):
            raise TypeError(f"{where}: marked() and unmark() go together")
        if cls.replaceable - cls.immutable:
            raise TypeError(f"{where}: replaceable params must be immutable ones")
        if cls.bulk_size and cls.create_many is Kind.create_many:
            raise TypeError(f"{where}: bulk_size needs create_many()")
        if cls.optional_service and cls.service is None:
            raise TypeError(f"{where}: optional_service without a service")
        if cls.lookup_only and cls.fields:
            raise TypeError(f"{where}: a lookup-only kind has no params")

    @classmethod
    def mapping_tables(cls) -> set[str]:
        """The mapping file's tables this kind uses."""
        tables = {table for _, table in cls.mapped_values}
        if cls.mapping_category:
            tables.add(cls.mapping_category)
        return tables

    @classmethod
    def depends_on(cls) -> set[str]:
        return ({r.kind for r in cls.refs} | set(cls.after)) - {cls.name}

    # --- reading and writing fields ------------------------------------------------------

    def params_of(self, ctx: Context, obj: Any) -> Params:
        """The params of every field read from openstacksdk's object (``attr`` not None)."""
        return {f.name: f.read(ctx, obj) for f in self.fields if f.attribute is not None}

    def create_body(self, ctx: Context, params: Params) -> dict[str, Any]:
        """The API's body for a new resource: every field that has a ``wire`` key."""
        return self._fields_body(ctx, params, {f.name for f in self.fields})

    def update_body(self, ctx: Context, params: Params, changed: set[str]) -> dict[str, Any]:
        """The API's body for the fields that changed (and can change); a field left out when
        empty on create is cleared explicitly when it became empty."""
        names = {f.name for f in self.fields if not f.create_only} & changed
        body = self._fields_body(ctx, params, names)
        for f in self.fields:
            if f.name in names and f.omit_empty and f.key is not None and f.key not in body:
                body[f.key] = None
        return body

    def _fields_body(self, ctx: Context, params: Params, names: set[str]) -> dict[str, Any]:
        body = {}
        for f in self.fields:
            if f.key is None or f.name not in names:
                continue
            value = f.write(ctx, params)
            if f.omit_empty and value in (None, "", [], {}):
                continue
            body[f.key] = value
        return body

    # --- what the engine asks of every kind ----------------------------------------------

    def extra_needs(self, resource: Resource) -> list[str]:
        """Keys of resources this one needs that no param references (e.g. its domain)."""
        return []

    def soft_needs(self, resource: Resource) -> list[str]:
        """Keys of resources this one should wait for when the plan makes them, and can do
        without otherwise (e.g. the image a volume was made from)."""
        return []

    # What the mapping's switches (``new_macs``...) change in this kind: the names the kind
    # answers to (see ``remap_identity``), beside the mapping's tables.
    remapped_by: ClassVar[frozenset[str]] = frozenset()

    def remap_identity(self, identity: dict[str, Any], switches: frozenset[str]) -> None:
        """Change an identity of this kind, in place, as the switches on ask (the resource's
        own and every reference to it). Default: nothing."""

    def remap_params(
        self, before: dict[str, Any], resource: Resource, switches: frozenset[str]
    ) -> None:
        """Params that follow from a remapped identity (``before``: the source's), in place:
        e.g. a port's SLAAC address, made from its MAC. Default: nothing."""

    def tenant_identity(self, name: str, domain: str) -> dict[str, Any]:
        """For the kind that ``defines_tenant``: the identity of the tenant of that name."""
        raise NotImplementedError

    def tenant_named(self, identity: dict[str, Any]) -> Tenant:
        """For the kind that ``defines_tenant``: the tenant an identity names."""
        raise NotImplementedError

    def read(self, ctx: Context) -> list[Resource]:
        """Every resource of this kind in ctx's scope, with list calls (never one GET each).
        Each goes through ``resource()``, which indexes its ID."""
        raise NotImplementedError

    def create(self, ctx: Context, resource: Resource) -> str:
        """Create the resource (references already resolvable in ``ctx``); return its ID."""
        raise NotImplementedError

    def create_many(self, ctx: Context, resources: list[Resource]) -> list[str]:
        """For a kind with ``bulk_size``: create all of ``resources`` in one call, all or
        nothing (neutron's bulk POST), and return their IDs in the same order. If the call
        fails (or its answer is lost), apply carries each one out on its own, looking first
        at what the call may have made."""
        raise NotImplementedError

    def bulk_group(self, resource: Resource) -> str:
        """For ``bulk_size``: creates go in one call only with others of the same group
        (neutron takes one security group's rules a call). Default: all in one group."""
        return ""

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        """Bring ``current`` to ``resource.params`` for the params named in ``changed``."""
        raise NotImplementedError

    def delete(self, ctx: Context, current: Resource) -> None:
        """For kinds with ``prune_within``, ``replaceable`` or ``retire``: remove a resource
        (one already gone may raise openstacksdk's NotFoundException: the caller decides)."""
        raise NotImplementedError

    def retirable(self, resource: Resource) -> str:
        """For a kind that ``retire``s: why this source resource stays in the source anyway
        (the project's default security group, a network other projects may use), or "" to
        retire it. Default: every one is retired."""
        return ""

    def marked(self, current: Resource) -> bool:
        """Whether ``current`` (read from the destination) carries stackferry's marker, which
        ``unmark`` takes off (``stackferry finish``). Default: the kind marks nothing."""
        return False

    def unmark(self, ctx: Context, current: Resource) -> None:
        """Take stackferry's marker off ``current``, in ``ctx``'s cloud, leaving everything else
        as it is; from then on the journal alone says the resource is stackferry's. Default:
        nothing (the kind marks nothing)."""

    def ready(self, current: Resource) -> bool:
        """Whether ``current`` has settled (not BUILD, not PENDING_*): one that has not is
        waited for before anything is compared or written. Default: always."""
        return True

    def claimed(self, resource: Resource) -> set[str]:
        """IDs of resources of the ``claims`` kinds that this resource owns (read from the
        same cloud). Default: none."""
        return set()

    def find(self, ctx: Context, wanted: list[Resource]) -> list[Resource]:
        """Resources with these identities that ``read`` does not see, because they live
        outside the tenant's scope (a user who exists but has no role on the tenant yet): the
        plan must know everything it would otherwise try to create. Default: none."""
        return []

    def ownership(self, current: Resource) -> Ownership:
        """What ``current`` (read from the destination) says about who made it. Default: our
        marker in its facts (``facts["ours"]``, set by ``read``)."""
        return Ownership.MARKED if current.facts.get("ours") else Ownership.UNKNOWN

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        """What the destination would refuse, found without writing (a volume type it lacks,
        a member project that does not exist): each problem blocks the resource in the plan.
        Default: nothing."""
        return []

    def source_bytes(
        self, ctx: Context, resource: Resource
    ) -> contextlib.AbstractContextManager[SourceBytes] | None:
        """For a kind that ``moves_data``, and a bundle made with its data: the resource's
        bytes as ``ctx``'s cloud (the source) has them, made readable first if need be and
        tidied up after (a volume's upload to an image). None: this kind's bytes are not
        bundled (a bundle's apply then blocks its resources). Default: None."""
        return None

    def explain(self, ctx: Context, resource: Resource) -> str:
        """What creating the resource will do, when the plan should say more than "create"
        (a server: its snapshot, data size and stop window). Default: nothing."""
        return ""

    def converge(self, ctx: Context, resource: Resource, current: Resource, made_here: bool) -> str:
        """Bring ``current`` to ``resource.params``; returns its ID (which may be new, when the
        kind replaced it). ``made_here`` says that this step's own create made it and its
        answer was lost: the rest of the create is to be finished."""
        changed = self.changed_fields(resource.params, current.params)
        frozen = self.conflicting(changed, current)
        if frozen:
            raise ValueError(
                f"{', '.join(sorted(frozen))} of {self.name} {resource.label} differ(s) in the "
                "destination and cannot be changed in place"
            )
        if changed:
            self.update(ctx, resource, current, changed)
        return ctx.ids.id(self.name, resource.identity) or current.cloud_id

    def normalise(self, params: Params) -> Params:
        """Canonical form for comparison: lists of fields with an ``order`` sorted."""
        ordered = [f for f in self.fields if f.order is not None and f.name in params]
        if not ordered:
            return params
        out = dict(params)
        for f in ordered:
            out[f.name] = sorted(params[f.name] or [], key=f.order)
        return out

    def conflicting(self, changed: set[str], current: Resource) -> set[str]:
        """Which changed params cannot be brought about in place; default: the immutable."""
        return changed & self.immutable

    def changed_fields(self, desired: Params, current: Params) -> set[str]:
        want, have = self.normalise(desired), self.normalise(current)
        return {k for k in want if k not in self.write_only and want.get(k) != have.get(k)}

    def shown(self, name: str, value: Any) -> Any:
        """A param's value as plans, reports and the terminal may show it."""
        if name in self.secrets and value not in (None, ""):
            return f"(secret, {len(str(value))} characters)"
        return value

    def resource(
        self, identity: dict[str, Any], params: Params, cloud_id: str, ctx: Context, **facts: Any
    ) -> Resource:
        """Build a read resource and index its ID: the one way kinds report what they read."""
        ctx.ids.add(self.name, cloud_id, identity)
        return Resource(self.name, identity, params, {"id": cloud_id, **facts})


def records(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema of a list of small records with exactly these fields (e.g. fixed IPs)."""
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": list(required),
            "properties": {**required, **(optional or {})},
            "additionalProperties": False,
        },
    }


def has_marker(tags: list[str] | None) -> bool:
    return MARKER_TAG in (tags or [])


def without_marker(tags: list[str] | None) -> list[str]:
    """Tags as exported and compared: ours left out."""
    return sorted(t for t in (tags or []) if t != MARKER_TAG)


def with_marker(params: Params) -> list[str]:
    """Tags as written to the destination: the resource's own, plus ours."""
    return [*params.get("tags", []), MARKER_TAG]

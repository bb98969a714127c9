"""What a resource kind declares, and the contexts the engine hands it.

A kind is a small declarative class: its identity fields, the JSON Schema of its portable
params, the params that hold references to other kinds, which params cannot change after
creation, and four operations - read (list a whole scope at once), create, update and, when
plain equality is wrong for it, normalise. The engine does the rest: ordering, concurrency,
retries, the journal, plans and reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.cloud.connection import scoped
from stackferry.data.monitor import Monitor, SilentMonitor
from stackferry.engine.model import Params, Resource, identity_key

if TYPE_CHECKING:
    from stackferry.data.archive import Archive
    from stackferry.engine.temporaries import Temporaries

# neutron resources stackferry creates carry this tag, so they are recognised as ours even
# when the journal is lost; it is never exported and never compared.
MARKER_TAG = "stackferry"


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


def iter_ref_values(params: Params, path: str) -> Iterator[tuple[dict[str, Any], str]]:
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


@dataclass
class Tenant:
    """The project being migrated, as named in one cloud, with its ID there once known."""

    name: str
    domain: str
    id: str | None = None
    domain_id: str | None = None


class IdIndex:
    """Two-way map between cloud IDs and portable identities, per kind, for one cloud."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[str, str], dict[str, Any]] = {}
        self._by_key: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, cloud_id: str, identity: dict[str, Any]) -> None:
        with self._lock:
            self._by_id[(kind, cloud_id)] = identity
            self._by_key[identity_key(kind, identity)] = cloud_id

    def identity(self, kind: str, cloud_id: str) -> dict[str, Any] | None:
        return self._by_id.get((kind, cloud_id))

    def id(self, kind: str, identity: dict[str, Any]) -> str | None:
        return self._by_key.get(identity_key(kind, identity))

    def of_kind(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """(ID, identity) of every resource of ``kind`` read or created so far."""
        with self._lock:
            return [(i, ident) for (k, i), ident in self._by_id.items() if k == kind]


@dataclass
class DataPlane:
    """What kinds that move bytes need besides the destination: the source cloud to read
    from, where to keep a second copy, and where to report progress."""

    source: Connection | None = None
    archive: Archive | None = None
    monitor: Monitor = field(default_factory=SilentMonitor)

    def source_conn(self) -> Connection:
        if self.source is None:
            raise LookupError("moving data needs the source cloud: give --src")
        return self.source


@dataclass
class Context:
    """One cloud as a kind sees it: a connection, the tenant, and the ID index so far."""

    conn: Connection
    tenant: Tenant
    ids: IdIndex = field(default_factory=IdIndex)
    is_admin: bool = False
    project_conns: dict[str, Connection] = field(default_factory=dict)
    temporaries: Temporaries | None = None
    connection_hook: Callable[[Connection], None] | None = None  # e.g. to count its calls
    data: DataPlane = field(default_factory=DataPlane)
    cache: dict[str, Any] = field(default_factory=dict)  # per-run lookups kinds share
    _project_lock: threading.Lock = field(default_factory=threading.Lock)

    def project_conn(self) -> Connection:
        """A connection scoped to the tenant project, for APIs that take the project from the
        token (nova server groups, for instance). An admin without a role there is given the
        member role for the rest of the run: recorded first, taken away at the end."""
        pid = self.project_id
        with self._project_lock:
            if pid not in self.project_conns:
                try:
                    conn = scoped(self.conn, pid)
                except Exception:
                    if self.temporaries is None or not self.is_admin:
                        raise PermissionError(
                            f"this needs a token scoped to project {self.tenant.name} "
                            f"({pid}): give your user a role there, or use admin "
                            "credentials"
                        ) from None
                    conn = self._grant_member_and_scope(pid)
                if self.connection_hook:
                    self.connection_hook(conn)
                self.project_conns[pid] = conn
            return self.project_conns[pid]

    def _grant_member_and_scope(self, pid: str) -> Connection:
        assert self.temporaries is not None
        idn = sdk.identity(self.conn)
        user_id = str(self.conn.current_user_id)
        role = idn.find_role("member", ignore_missing=False)
        self.temporaries.record(
            f"project_role:{pid}:{user_id}:{role.id}",
            f"member role of stackferry's user on project {self.tenant.name}",
            "project_role",
            {"project_id": pid, "user_id": user_id, "role_id": role.id},
        )
        idn.assign_project_role_to_user(pid, user_id, role.id)
        return scoped(self.conn, pid)

    def ref(self, kind: str, cloud_id: str | None) -> dict[str, Any] | None:
        """The identity for an ID read from this cloud (None stays None)."""
        if cloud_id is None:
            return None
        identity = self.ids.identity(kind, cloud_id)
        if identity is None:
            raise LookupError(f"{kind} {cloud_id} is referenced but was not read")
        return identity

    def resolve(self, kind: str, identity: dict[str, Any] | None) -> str | None:
        """The ID in this cloud of a referenced resource (None stays None)."""
        if identity is None:
            return None
        cloud_id = self.ids.id(kind, identity)
        if cloud_id is None:
            raise LookupError(f"{identity_key(kind, identity)} does not exist here")
        return cloud_id

    @property
    def project_id(self) -> str:
        if self.tenant.id is None:
            raise LookupError(f"project {self.tenant.name} does not exist here yet")
        return self.tenant.id


class Kind:
    name: ClassVar[str]
    plural: ClassVar[str]
    description: ClassVar[str] = ""
    identity_fields: ClassVar[tuple[str, ...]] = ("name",)
    # JSON Schema of identity fields that need more than "a name or a reference".
    identity_schema: ClassVar[dict[str, Any]] = {}
    params_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    refs: ClassVar[tuple[RefSpec, ...]] = ()
    # Params that cannot be changed in place: a difference there is a conflict, not an update.
    immutable: ClassVar[frozenset[str]] = frozenset()
    # Kinds that must be applied before this one though no param references them.
    after: ClassVar[tuple[str, ...]] = ()
    # Kinds whose resources live inside the tenant project (need its destination ID).
    in_project: ClassVar[bool] = True
    needs_admin: ClassVar[bool] = False

    # Optional declarations, read by the engine with defaults when absent:
    #   lookup_only = True      read to resolve references, never exported nor created
    #   defines_tenant = True   this kind's resource named like the tenant is the tenant
    #   mapping_category = "…"  the mapping file's table that renames this kind's names
    #   mapped_values = ((path, category), ...)  plain params renamed by the mapping
    #   gates_tenant = True     every resource inside the tenant waits for this kind's (quotas)
    #   mapped_facts = ("fact", ...)  facts reported side by side (e.g. old -> new address)
    #   prune_within = "path"   destination-only resources inside a migrated parent (the ref
    #                           at this path) are deleted; needs ``delete``
    #   moves_data = True       create/update stream bytes from the source (ctx.data); the
    #                           resource's ``facts["size"]`` is how many

    @classmethod
    def depends_on(cls) -> set[str]:
        return ({r.kind for r in cls.refs} | set(cls.after)) - {cls.name}

    def extra_needs(self, resource: Resource) -> list[str]:
        """Keys of resources this one needs that no param references (e.g. its domain)."""
        return []

    def soft_needs(self, resource: Resource) -> list[str]:
        """Keys of resources this one should wait for when the plan makes them, and can do
        without otherwise (e.g. the image a volume was made from)."""
        return []

    def read(self, ctx: Context) -> list[Resource]:
        """Every resource of this kind in ctx's scope, with list calls (never one GET each).
        Must add each resource's ID to ``ctx.ids`` and put it in ``facts["id"]``."""
        raise NotImplementedError

    def create(self, ctx: Context, resource: Resource) -> str:
        """Create the resource (references already resolvable in ``ctx``); return its ID."""
        raise NotImplementedError

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        """Bring ``current`` to ``resource.params`` for the params named in ``changed``."""
        raise NotImplementedError

    def delete(self, ctx: Context, current: Resource) -> None:
        """Only for kinds with ``prune_within``: remove a destination-only resource."""
        raise NotImplementedError

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
        """Canonical form for comparison (sorted lists, defaults filled); default: as is."""
        return params

    def conflicting(self, changed: set[str], current: Resource) -> set[str]:
        """Which changed params cannot be brought about in place; default: the immutable."""
        return changed & self.immutable

    def changed_fields(self, desired: Params, current: Params) -> set[str]:
        want, have = self.normalise(desired), self.normalise(current)
        return {k for k in want if want.get(k) != have.get(k)}

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

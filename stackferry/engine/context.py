"""What the engine hands a kind: one cloud, the tenant in it, the IDs read so far, and - for
kinds that move bytes - the data plane. Kinds receive a Context; they never build one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.cloud.connection import scoped
from stackferry.cloud.roles import grant_project_role
from stackferry.data.transfer import DataPlane
from stackferry.engine.journal import Journal
from stackferry.engine.model import identity_key
from stackferry.engine.temporaries import Temporaries


@dataclass
class Tenant:
    """The project being migrated, as named in one cloud, with its ID there once known."""

    name: str
    domain: str
    id: str | None = None
    domain_id: str | None = None


class KeyedLocks:
    """One lock per key (a server's ID, a key name): what concurrent steps must do one at a
    time for the same thing, and may do at once for different ones."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())


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


class SourceChanges:
    """What stackferry changed in the source and has not put back, with what it was before
    (a server stopped for its cutover: its power state). Read from the journal by export, so
    the workdir describes the source as the operator had it; written by apply, to the journal,
    before the change is made."""

    def __init__(
        self, recorded: dict[str, dict[str, Any]] | None = None, journal: Journal | None = None
    ) -> None:
        """``recorded`` as read from a journal (export); or the open ``journal`` (apply)."""
        self._recorded = journal.source_changes() if journal is not None else dict(recorded or {})
        self._journal = journal
        self._lock = threading.Lock()

    @staticmethod
    def key(kind: str, source_id: str) -> str:
        return f"{kind}:{source_id}"

    def before(self, kind: str, source_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._recorded.get(self.key(kind, source_id))

    def changing(self, kind: str, source_id: str, before: dict[str, Any]) -> dict[str, Any]:
        """Record ``before`` unless a state is recorded already; returns the one recorded."""
        if self._journal is None:
            raise RuntimeError("source changes are recorded by apply, which has a journal")
        key = self.key(kind, source_id)
        with self._lock:
            recorded = self._journal.source_changing(key, before)
            self._recorded[key] = recorded
            return recorded

    def restored(self, kind: str, source_id: str) -> None:
        key = self.key(kind, source_id)
        with self._lock:
            if self._journal is not None:
                self._journal.source_restored(key)
            self._recorded.pop(key, None)


class Kept:
    """What a kind keeps between runs, by key (see ``Journal.keep``): written to the journal
    during apply; a read-only copy of it for plan (writing there is a mistake)."""

    def __init__(
        self, recorded: dict[str, dict[str, Any]] | None = None, journal: Journal | None = None
    ) -> None:
        self._recorded = dict(recorded or {})
        self._journal = journal

    def get(self, key: str) -> dict[str, Any] | None:
        if self._journal is not None:
            return self._journal.kept(key)
        found = self._recorded.get(key)
        return dict(found) if found is not None else None

    def put(self, key: str, value: dict[str, Any] | None) -> None:
        if self._journal is None:
            raise RuntimeError("only apply keeps state between runs: it has the journal")
        self._journal.keep(key, value)


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
    notes: list[str] = field(default_factory=list)  # what the operator should know (read)
    label: str = ""  # the cloud's name, for messages
    source_changes: SourceChanges = field(default_factory=SourceChanges)
    # What the operator chose for kinds that ask (``--cutover``), by option name.
    options: dict[str, str] = field(default_factory=dict)
    # The source resources this run creates in the destination, as SourceChanges keys: a
    # kind can tell whether something it touches moves too (a volume's server).
    creating: frozenset[str] = frozenset()
    kept: Kept = field(default_factory=Kept)  # work that spans runs
    _project_lock: threading.Lock = field(default_factory=threading.Lock)

    def will_create(self, kind: str, source_id: str) -> bool:
        return SourceChanges.key(kind, source_id) in self.creating

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
        grant_project_role(self.conn, pid, user_id, role.id)
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

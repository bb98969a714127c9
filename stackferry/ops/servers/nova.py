"""What nova says about servers and their migrations, through openstacksdk: the one
adapter to nova the cold-migration rooms use (``Nova``), and its openstacksdk form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from openstack import utils as sdk_utils

from stackferry.cloud import nova, sdk

#: Migration statuses after which nova does nothing more with the migration.
FINAL_MIGRATION = frozenset(
    {"confirmed", "reverted", "error", "failed", "done", "completed", "cancelled"}
)
#: Nova cold-migrates only servers in these states (vm_state active or stopped).
MOVABLE = frozenset({"ACTIVE", "SHUTOFF"})
#: Statuses in which nova is in the middle of moving the server.
MOVING = frozenset({"RESIZE", "MIGRATING", "REVERT_RESIZE"})
TARGET_HOST_MICROVERSION = "2.56"


# ---- what nova says -------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationRecord:
    """One row of ``os-migrations``, the part that matters here."""

    id: str
    type: str  # 'migration' (cold), 'resize', 'live-migration', 'evacuation'
    status: str
    source: str | None
    dest: str | None
    created_at: str = ""

    @property
    def in_flight(self) -> bool:
        return self.status not in FINAL_MIGRATION


@dataclass(frozen=True)
class ServerView:
    """A server as nova shows it to an admin, with its latest migration when it was read."""

    id: str
    name: str
    project_id: str
    status: str
    task_state: str | None
    host: str | None
    fault: str | None = None
    migration: MigrationRecord | None = None


class Nova(Protocol):
    """The compute calls the state machine needs; :class:`SdkNova` on a cloud, fakes in tests."""

    def server(self, server_id: str) -> ServerView:
        """The server, without its migration (raises NotFoundException when gone)."""
        ...

    def latest_migration(self, server_id: str) -> MigrationRecord | None: ...

    def migrate(self, server_id: str, host: str | None) -> None: ...

    def confirm(self, server_id: str) -> None: ...

    def revert(self, server_id: str) -> None: ...

    def failure_details(self, server_id: str) -> str | None:
        """What nova recorded about the latest migrate action's failure (instance actions)."""
        ...


class Inventory(Nova, Protocol):
    """The listing calls planning needs, on top of :class:`Nova`."""

    def probe_admin(self) -> None:
        """Make one admin-only read call; raises ForbiddenException when the policy refuses."""
        ...

    def compute_hosts(self) -> dict[str, str]:
        """nova-compute hosts -> '' when usable, else why not (disabled, down)."""
        ...

    def servers_on(self, host: str, project_id: str | None) -> list[ServerView]: ...

    def migrations_from(self, host: str) -> list[MigrationRecord]:
        """Cold migrations whose source is ``host``, in any status (see migration_server_id)."""
        ...

    def migration_server_id(self, migration: MigrationRecord) -> str: ...

    def find_server(self, name_or_id: str) -> ServerView | None: ...

    def project_id(self, name_or_id: str) -> str: ...

    def supports_target_host(self) -> bool: ...


def _latest(records: Iterable[MigrationRecord]) -> MigrationRecord | None:
    return max(records, key=lambda m: m.created_at, default=None)


def _view(server: Any) -> ServerView:
    return ServerView(
        id=str(server.id),
        name=str(server.name or ""),
        project_id=str(server.project_id or ""),
        status=str(server.status or ""),
        task_state=server.task_state or None,
        host=server.compute_host or None,
        fault=nova.fault(server),
    )


def _record(migration: Any) -> MigrationRecord:
    return MigrationRecord(
        id=str(migration.id),
        type=str(migration.migration_type or "migration"),
        status=str(migration.status or ""),
        source=migration.source_compute or None,
        dest=migration.dest_compute or None,
        created_at=str(migration.created_at or ""),
    )


class SdkNova:
    """:class:`Inventory` on an openstacksdk connection (admin, all projects)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.compute = conn.compute
        self._server_of: dict[str, str] = {}

    def server(self, server_id: str) -> ServerView:
        return _view(self.compute.get_server(server_id))

    def latest_migration(self, server_id: str) -> MigrationRecord | None:
        return _latest(_record(m) for m in self.compute.migrations(server_id=server_id))

    def migrate(self, server_id: str, host: str | None) -> None:
        self.compute.migrate_server(server_id, host=host)

    def confirm(self, server_id: str) -> None:
        self.compute.confirm_server_resize(server_id)

    def revert(self, server_id: str) -> None:
        self.compute.revert_server_resize(server_id)

    def failure_details(self, server_id: str) -> str | None:
        actions = [a for a in self.compute.server_actions(server_id) if a.action == "migrate"]
        if not actions:
            return None
        latest = max(actions, key=lambda a: str(a.start_time or ""))
        action = self.compute.get_server_action(latest.request_id, server_id)
        details = [str(e.details) for e in action.events or [] if e.details]
        return details[0] if details else (action.message or None)

    def probe_admin(self) -> None:
        next(iter(self.compute.migrations(limit=1)), None)

    def compute_hosts(self) -> dict[str, str]:
        hosts: dict[str, str] = {}
        for service in self.compute.services(binary="nova-compute"):
            problems = []
            if service.status != "enabled":
                reason = f" ({service.disabled_reason})" if service.disabled_reason else ""
                problems.append(f"disabled{reason}")
            if service.state != "up":
                problems.append("down")
            hosts[str(service.host)] = ", ".join(problems)
        return hosts

    def servers_on(self, host: str, project_id: str | None) -> list[ServerView]:
        query: dict[str, Any] = {"all_projects": True, "compute_host": host}
        if project_id:
            query["project_id"] = project_id
        return [_view(s) for s in self.compute.servers(**query)]

    def migrations_from(self, host: str) -> list[MigrationRecord]:
        records = []
        for m in self.compute.migrations(source_compute=host, migration_type="migration"):
            record = _record(m)
            self._server_of[record.id] = str(m.server_id)
            records.append(record)
        return records

    def migration_server_id(self, migration: MigrationRecord) -> str:
        return self._server_of[migration.id]

    def find_server(self, name_or_id: str) -> ServerView | None:
        server = self.compute.find_server(name_or_id, ignore_missing=True, all_projects=True)
        return _view(server) if server is not None else None

    def project_id(self, name_or_id: str) -> str:
        return str(sdk.identity(self.conn).find_project(name_or_id, ignore_missing=False).id)

    def supports_target_host(self) -> bool:
        return bool(sdk_utils.supports_microversion(self.compute, TARGET_HOST_MICROVERSION))


def with_migration(view: ServerView, migration: MigrationRecord | None) -> ServerView:
    values = asdict(view)
    values["migration"] = migration
    return ServerView(**values)

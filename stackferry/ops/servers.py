"""Cold migration of servers inside one cloud: `servers migrate` and `hosts drain`.

Nova keeps all the state a cold migration needs: the server's status and task state, its host,
and a migration record (``os-migrations``) that goes pre-migrating → … → finished (the server in
VERIFY_RESIZE on its new host) → confirming/reverting → confirmed/reverted, or error. So there is
no journal: each server runs a small state machine that reads nova on every step and decides
from what it sees (:func:`decide`, pure and unit-tested). A re-run after an interruption
therefore finishes what was in flight — a server in VERIFY_RESIZE is confirmed (or reverted),
one in RESIZE is waited for — and never starts a second migration of a server that has one.

Drain finds its servers in two places, because a server in the middle of a migration may
already report its new host: the servers on the host, and the unfinished migrations whose
source is the host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Protocol, TypeVar

from openstack import exceptions as sdk_exceptions
from openstack import utils as sdk_utils

from stackferry.cloud import sdk
from stackferry.cloud.retry import (
    OPERATIONS,
    RetriesExhausted,
    RetryPolicy,
    is_transient,
    status_of,
)
from stackferry.errors import StackferryError

#: Migration statuses after which nova does nothing more with the migration.
FINAL_MIGRATION = frozenset(
    {"confirmed", "reverted", "error", "failed", "done", "completed", "cancelled"}
)
#: Nova cold-migrates only servers in these states (vm_state active or stopped).
MOVABLE = frozenset({"ACTIVE", "SHUTOFF"})
#: Statuses in which nova is in the middle of moving the server.
MOVING = frozenset({"RESIZE", "MIGRATING", "REVERT_RESIZE"})
TARGET_HOST_MICROVERSION = "2.56"
NO_VALID_HOST = "No valid host"
SCHEDULER = "scheduler's choice"
POLICY_HINT = (
    "Cold migration is admin-only under nova's default policy: use admin credentials (an admin "
    "entry in clouds.yaml, --cloud/OS_CLOUD), or have the cloud's policy allow "
    "os_compute_api:os-migrate-server:migrate, os_compute_api:os-migrations:index and "
    "os_compute_api:servers:detail:get_all_tenants for this user."
)


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


def _fault(server: Any) -> str | None:
    fault = getattr(server, "fault", None)
    if isinstance(fault, dict):
        return str(fault.get("message") or "") or None
    return None


def _view(server: Any) -> ServerView:
    return ServerView(
        id=str(server.id),
        name=str(server.name or ""),
        project_id=str(server.project_id or ""),
        status=str(server.status or ""),
        task_state=server.task_state or None,
        host=server.compute_host or None,
        fault=_fault(server),
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


# ---- what to do, from what nova says --------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """What the operator asked for; the same for every server of one run."""

    leave_host: str | None = None  # drain: every server must end up off this host
    target_host: str | None = None  # --to-host
    revert: bool = False  # --revert: migrate, then revert (a rehearsal)


@dataclass
class Memory:
    """What this run has done to one server; nova's state is read afresh on every step."""

    issued: list[str] = field(default_factory=list)  # 'migrate', 'confirm', 'revert'
    migration_id: str | None = None  # the migration this run follows (started or found)
    before_migrate: str | None = None  # the latest migration's id when this run asked for one
    wrong: str | None = None  # why the result was judged wrong (and reverted)
    landed_on: str | None = None  # where the server was in VERIFY_RESIZE
    resumed: bool = False  # found a migration in flight from an earlier run


class Do(StrEnum):
    MIGRATE = "migrate"
    WAIT = "wait"
    CONFIRM = "confirm"
    REVERT = "revert"
    DONE = "done"  # nothing more to do: see Decision.outcome
    SKIP = "skip"
    FAIL = "fail"


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    UNCHANGED = "unchanged"  # nothing needed doing
    SKIPPED = "skipped"
    FAILED = "failed"
    PLANNED = "planned"  # --dry-run


@dataclass(frozen=True)
class Decision:
    do: Do
    why: str = ""
    outcome: Outcome | None = None  # for DONE


def adopt(view: ServerView, memory: Memory) -> str | None:
    """The migration this run should follow from now on, if it does not follow one yet: the one
    it started, or one found in flight (an earlier run's, or an operator's) — never a stale
    record of a server that is no longer moving."""
    mig = view.migration
    if memory.migration_id is not None or mig is None or mig.type != "migration":
        return None
    if "migrate" in memory.issued:
        return mig.id if mig.id != memory.before_migrate else None
    if not memory.issued and mig.in_flight and view.status in MOVING | {"VERIFY_RESIZE"}:
        return mig.id
    return None


def judge(host: str | None, migration: MigrationRecord, goal: Goal) -> str | None:
    """Why a server in VERIFY_RESIZE on ``host`` is not where it was asked to go, or None."""
    if goal.target_host and host != goal.target_host:
        return f"landed on {host}, not on {goal.target_host} as asked"
    if host is not None and host == migration.source:
        return f"still on its source host {host}"
    if goal.leave_host and host == goal.leave_host:
        return f"still on {goal.leave_host}, the host being drained"
    return None


def decide(view: ServerView, goal: Goal, memory: Memory) -> Decision:
    """The next step for one server, from nova's state and what this run did so far."""
    last = memory.issued[-1] if memory.issued else None
    if view.status == "ERROR":
        fault = view.fault or "nova recorded no fault"
        if last:
            return Decision(Do.FAIL, f"went to ERROR after this run's {last}: {fault}")
        return Decision(Do.SKIP, f"in ERROR, not migrated ({fault}); repair or reset it first")
    if view.status in MOVING or view.task_state:
        return Decision(Do.WAIT, _moving(view))
    if view.status == "VERIFY_RESIZE":
        return _verify_resize(view, goal, memory)
    if view.status not in MOVABLE:
        if last:
            return Decision(Do.FAIL, f"status {view.status} after this run's {last}")
        return Decision(
            Do.SKIP, f"status {view.status}: nova cold-migrates only ACTIVE or SHUTOFF servers"
        )
    return _settled(view, goal, memory)


def _moving(view: ServerView) -> str:
    task = f" ({view.task_state})" if view.task_state else ""
    return f"nova: {view.status}{task} on {view.host}"


def _verify_resize(view: ServerView, goal: Goal, memory: Memory) -> Decision:
    mig = view.migration
    if mig is None or mig.type != "migration":
        return Decision(
            Do.SKIP,
            "awaiting confirmation of a resize to another flavor, not of a migration: "
            "confirm or revert it yourself",
        )
    if mig.status != "finished" or {"confirm", "revert"} & set(memory.issued):
        return Decision(Do.WAIT, f"nova: migration {mig.status} on {view.host}")
    if goal.leave_host and mig.source != goal.leave_host and "migrate" not in memory.issued:
        # A migration *into* the host being drained: not this drain's to settle.
        return Decision(
            Do.SKIP,
            f"awaiting confirmation of a migration from {mig.source} to {view.host}, which "
            "this run did not start: confirm or revert it first",
        )
    if memory.migration_id != mig.id:
        return Decision(Do.FAIL, "another migration of this server was started meanwhile")
    wrong = judge(view.host, mig, goal)
    if wrong:
        return Decision(Do.REVERT, wrong)
    if goal.revert:
        return Decision(Do.REVERT, "as asked (--revert)")
    return Decision(Do.CONFIRM, f"on {view.host}")


def _settled(view: ServerView, goal: Goal, memory: Memory) -> Decision:
    """ACTIVE or SHUTOFF with no task: before any migration, or after one ended."""
    mig = view.migration
    if memory.migration_id is not None:
        if mig is None or mig.id != memory.migration_id:
            return Decision(Do.FAIL, "another migration of this server was started meanwhile")
        if mig.status == "confirmed":
            wrong = judge(view.host, mig, goal)
            if wrong and "confirm" not in memory.issued:
                return Decision(Do.FAIL, f"{wrong}, and it was confirmed outside this run")
            return Decision(Do.DONE, f"on {view.host}", Outcome.CONFIRMED)
        if mig.status == "reverted":
            if memory.wrong:
                return Decision(Do.FAIL, f"{memory.wrong}; reverted to {view.host}")
            if goal.revert or "revert" in memory.issued:
                return Decision(Do.DONE, f"back on {view.host}", Outcome.REVERTED)
            if "migrate" in memory.issued:
                return Decision(Do.FAIL, "the migration was reverted outside this run")
            return _fresh(view, goal)  # an earlier run's rehearsal, or someone's: start over
        if mig.status in ("error", "failed"):
            return Decision(Do.FAIL, f"nova's migration {mig.id} ended in {mig.status}")
        return Decision(Do.WAIT, f"nova: migration {mig.status} on {view.host}")
    if "migrate" in memory.issued:
        return Decision(
            Do.FAIL, f"nova accepted the migration but recorded none; still on {view.host}"
        )
    return _fresh(view, goal)


def _fresh(view: ServerView, goal: Goal) -> Decision:
    if goal.leave_host and view.host != goal.leave_host:
        return Decision(Do.DONE, f"already off {goal.leave_host}", Outcome.UNCHANGED)
    if goal.target_host and view.host == goal.target_host:
        return Decision(Do.DONE, f"already on {goal.target_host}", Outcome.UNCHANGED)
    return Decision(Do.MIGRATE, f"to {goal.target_host or SCHEDULER}")


# ---- planning: which servers ----------------------------------------------------------------


def preflight(nova: Inventory, cloud: str, goal: Goal, need_host: str | None = None) -> None:
    """Refuse, before anything is attempted, what cannot work: credentials the policy refuses,
    an unknown or unusable host, a target host on a nova too old to take one."""
    _forbidden_is_operator_error(cloud, nova.probe_admin)
    if goal.target_host and not nova.supports_target_host():
        raise StackferryError(
            f"cloud {cloud}: --to-host needs compute API microversion "
            f"{TARGET_HOST_MICROVERSION} (nova Queens or newer); this nova is older"
        )
    hosts = _forbidden_is_operator_error(cloud, nova.compute_hosts)
    known = ", ".join(sorted(hosts)) or "none"
    for name, role in ((need_host, "host"), (goal.target_host, "target host")):
        if name and name not in hosts:
            raise StackferryError(f"cloud {cloud}: no compute {role} {name}; hosts: {known}")
    if goal.target_host:
        if goal.target_host == goal.leave_host:
            raise StackferryError("--to-host is the host being drained")
        if hosts[goal.target_host]:
            raise StackferryError(
                f"cloud {cloud}: target host {goal.target_host} is "
                f"{hosts[goal.target_host]}: the scheduler would refuse it"
            )


T = TypeVar("T")


def _forbidden_is_operator_error(cloud: str, call: Callable[[], T]) -> T:
    """A listing the policy refuses means the credentials cannot do the job: exit 2, now."""
    try:
        return call()
    except sdk_exceptions.ForbiddenException as exc:
        raise StackferryError(
            f"cloud {cloud}: {_http_message(exc)} (HTTP 403). {POLICY_HINT}"
        ) from None


def servers_to_drain(
    nova: Inventory, cloud: str, host: str, project: str | None
) -> list[ServerView]:
    """Servers on ``host``, and servers still moving off it (whose new host nova may already
    report), in one project or all; those that already left are not listed."""

    def listing() -> list[ServerView]:
        project_id = nova.project_id(project) if project else None
        found = {v.id: v for v in nova.servers_on(host, project_id)}
        for record in nova.migrations_from(host):
            server_id = nova.migration_server_id(record)
            if not record.in_flight or server_id in found:
                continue
            try:
                view = nova.server(server_id)
            except sdk_exceptions.NotFoundException:
                continue  # deleted meanwhile
            if project_id is None or view.project_id == project_id:
                found[view.id] = _with(view, record)  # followed even if it ends meanwhile
        return sorted(found.values(), key=lambda v: (v.name, v.id))

    try:
        return _forbidden_is_operator_error(cloud, listing)
    except (sdk_exceptions.NotFoundException, sdk_exceptions.DuplicateResource) as exc:
        raise StackferryError(f"cloud {cloud}: project {project}: {_http_message(exc)}") from None


def servers_named(nova: Inventory, cloud: str, refs: Sequence[str]) -> list[ServerView]:
    """The servers named (name or ID, any project); an unknown or ambiguous name is an error."""
    found: dict[str, ServerView] = {}
    for ref in refs:
        try:
            view = _forbidden_is_operator_error(cloud, partial(nova.find_server, ref))
        except sdk_exceptions.DuplicateResource:
            raise StackferryError(
                f"cloud {cloud}: several servers are named {ref!r}: give its ID"
            ) from None
        if view is None:
            raise StackferryError(f"cloud {cloud}: no server {ref!r} (by name or ID)")
        found.setdefault(view.id, view)
    return list(found.values())


# ---- running: one state machine per server, a bounded pool ----------------------------------


@dataclass
class ServerResult:
    """Where one server went and what was done; a row of the report."""

    id: str
    name: str
    project_id: str
    from_host: str | None
    to_host: str | None  # where it is at the end
    landed_on: str | None  # where it was in VERIFY_RESIZE (differs from to_host if reverted)
    status: str
    outcome: Outcome
    actions: list[str]
    note: str
    migration_id: str | None = None
    resumed: bool = False
    seconds: float = 0.0

    @classmethod
    def before(cls, view: ServerView, actions: list[str], note: str) -> ServerResult:
        """A server as it stands before anything succeeded (failed until proven otherwise)."""
        return cls(
            id=view.id,
            name=view.name,
            project_id=view.project_id,
            from_host=view.host,
            to_host=view.host,
            landed_on=None,
            status=view.status,
            outcome=Outcome.FAILED,
            actions=actions,
            note=note,
        )

    @property
    def action(self) -> str:
        return "+".join(self.actions) or "none"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": str(self.outcome), "action": self.action}


Listener = Callable[[str, str, str | None, bool], None]  # server ID, doing what, host, finished


@dataclass
class Runner:
    """Runs the per-server state machines, at most ``parallel`` at a time."""

    nova: Nova
    goal: Goal
    parallel: int = 4
    timeout: float = 900.0  # per server, from when its turn comes
    poll: float = 2.0
    listener: Listener = field(default=lambda server_id, text, host, final: None)
    stop: threading.Event = field(default_factory=threading.Event)
    # Transient API errors, or conflicts (the state changed under us), in a row per server.
    policy: RetryPolicy = OPERATIONS

    def run(self, servers: Sequence[ServerView]) -> list[ServerResult]:
        """Every server's result, in the order given. On Ctrl-C, the servers still moving stop
        being watched at their next poll (nova carries on; a re-run settles them) and those not
        started yet are reported as such."""
        pool = ThreadPoolExecutor(max_workers=max(1, self.parallel), thread_name_prefix="move")
        futures = [pool.submit(self.one, s) for s in servers]
        try:
            wait(futures)
        except KeyboardInterrupt:
            self.stop.set()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [
            f.result() if not f.cancelled() else self._not_started(s)
            for f, s in zip(futures, servers, strict=True)
        ]

    def _not_started(self, view: ServerView) -> ServerResult:
        return ServerResult.before(view, [], "not started: interrupted")

    def dry_run(self, servers: Sequence[ServerView]) -> list[ServerResult]:
        """What each server would go through, from one look at it; nothing is changed."""
        results = []
        for listed in servers:
            memory = Memory()
            view = self._observe(listed.id, memory)
            memory.migration_id = adopt(view, memory)
            decision = decide(view, self.goal, memory)
            results.append(self._planned(view, decision, memory))
        return results

    def _planned(self, view: ServerView, decision: Decision, memory: Memory) -> ServerResult:
        source = view.migration.source if memory.migration_id and view.migration else view.host
        target = self.goal.target_host or SCHEDULER
        then = "revert" if self.goal.revert else "confirm"
        notes = {
            Do.MIGRATE: (f"would migrate to {target}, then {then}", target),
            Do.CONFIRM: (f"would confirm (in VERIFY_RESIZE on {view.host})", view.host),
            Do.REVERT: (f"would revert: {decision.why}", source),
            Do.WAIT: (f"would wait ({decision.why}), then settle it", view.host),
        }
        note, where = notes.get(decision.do, (decision.why, view.host))
        outcome = {Do.SKIP: Outcome.SKIPPED, Do.FAIL: Outcome.FAILED, Do.DONE: Outcome.UNCHANGED}
        return ServerResult(
            view.id,
            view.name,
            view.project_id,
            source,
            where,
            None,
            view.status,
            outcome.get(decision.do, Outcome.PLANNED),
            [],
            note,
            memory.migration_id,
            memory.migration_id is not None,
        )

    def one(self, listed: ServerView) -> ServerResult:
        """Drive one server to a final state; never raises (a failure is a result)."""
        started = time.monotonic()
        memory = Memory()
        result = ServerResult.before(listed, memory.issued, "")
        self.listener(listed.id, "starting", listed.host, False)
        try:
            self._follow(listed, memory, result)
            self._drive(listed, memory, result, started)
        except Exception as exc:  # one server's surprise must not stop the others
            result.outcome, result.note = Outcome.FAILED, f"unexpected error: {exc!r}"
        result.seconds = round(time.monotonic() - started, 1)
        result.resumed, result.migration_id = memory.resumed, memory.migration_id
        result.landed_on = memory.landed_on
        self.listener(listed.id, f"{result.outcome}: {result.note}", result.to_host, True)
        return result

    def _drive(
        self, listed: ServerView, memory: Memory, result: ServerResult, started: float
    ) -> None:
        deadline = started + self.timeout
        troubles = self.policy.tracker(
            f"server {listed.name or listed.id}", _worth_retrying, self._pause
        )
        view = listed
        while True:
            if self.stop.is_set():
                result.note = "interrupted; re-run to finish what is in flight"
                return
            try:
                view = self._observe(listed.id, memory)
                troubles.reset()
                self._follow(view, memory, result)
                decision = decide(view, self.goal, memory)
                self.listener(listed.id, _state_text(view, decision), view.host, False)
                result.status, result.to_host = view.status, view.host
                if decision.do in (Do.DONE, Do.SKIP, Do.FAIL):
                    self._finish(view, decision, memory, result)
                    return
                if time.monotonic() > deadline:
                    result.note = (
                        f"timed out after {self.timeout:.0f} s ({decision.why}); re-run to continue"
                    )
                    return
                if decision.do is Do.WAIT:
                    self.stop.wait(self.poll)
                    continue
                if str(decision.do) in memory.issued:  # never twice: above all, not migrate
                    result.note = f"would {decision.do} a second time ({decision.why}); stopped"
                    return
                self._act(view, decision, memory)
            except sdk_exceptions.NotFoundException:
                result.note = "the server was deleted meanwhile"
                return
            except sdk_exceptions.ForbiddenException as exc:
                result.note = f"{_http_message(exc)} (HTTP 403). {POLICY_HINT}"
                return
            except RetriesExhausted as exc:
                result.note = str(exc)
                return
            except sdk_exceptions.HttpException as exc:
                if NO_VALID_HOST.lower() in str(exc).lower():
                    result.note = self._no_valid_host(_http_message(exc))
                    return
                try:
                    troubles.failed(exc)  # the state changed under us, or nova hiccuped
                except sdk_exceptions.HttpException:
                    result.note = f"HTTP {exc.status_code}: {_http_message(exc)}"
                    return
                except RetriesExhausted as gave_up:
                    result.note = str(gave_up)
                    return
            except Exception as exc:
                try:
                    troubles.failed(exc)
                except RetriesExhausted as gave_up:
                    result.note = str(gave_up)
                    return

    def _pause(self, seconds: float) -> None:
        """Wait before trying again, but no longer than polling does, and not when stopped."""
        self.stop.wait(min(seconds, self.poll))

    def _observe(self, server_id: str, memory: Memory) -> ServerView:
        view = self.nova.server(server_id)
        # While nova is busy with a migration this run follows, its record adds nothing.
        busy = view.status in MOVING and (memory.migration_id or "migrate" in memory.issued)
        return view if busy else _with(view, self.nova.latest_migration(server_id))

    def _follow(self, view: ServerView, memory: Memory, result: ServerResult) -> None:
        adopted = adopt(view, memory)
        if adopted is None:
            return
        memory.migration_id = adopted
        if "migrate" not in memory.issued:
            memory.resumed = True
            if view.migration and view.migration.source:
                result.from_host = view.migration.source

    def _act(self, view: ServerView, decision: Decision, memory: Memory) -> None:
        if decision.do is Do.MIGRATE:
            memory.before_migrate = view.migration.id if view.migration else ""
            memory.migration_id = None  # follow the new one, once nova records it
            self.nova.migrate(view.id, self.goal.target_host)
            memory.issued.append("migrate")
        elif decision.do is Do.CONFIRM:
            memory.landed_on = view.host
            self.nova.confirm(view.id)
            memory.issued.append("confirm")
        elif decision.do is Do.REVERT:
            memory.landed_on = view.host
            if decision.why != "as asked (--revert)":
                memory.wrong = decision.why
            self.nova.revert(view.id)
            memory.issued.append("revert")

    def _finish(
        self, view: ServerView, decision: Decision, memory: Memory, result: ServerResult
    ) -> None:
        result.status, result.to_host, result.note = view.status, view.host, decision.why
        if decision.do is Do.DONE:
            result.outcome = decision.outcome or Outcome.UNCHANGED
            if result.outcome is Outcome.CONFIRMED and memory.landed_on is None:
                memory.landed_on = view.host
        elif decision.do is Do.SKIP:
            result.outcome = Outcome.SKIPPED
        else:
            result.outcome = Outcome.FAILED
            mig = view.migration
            failed = mig is not None and mig.status in ("error", "failed")
            if mig is not None and failed and mig.id == memory.migration_id:
                result.note = self._migration_failed(view.id, mig)

    def _migration_failed(self, server_id: str, mig: MigrationRecord) -> str:
        try:
            details = self.nova.failure_details(server_id)
        except Exception:  # the explanation is a bonus; the failure stands without it
            details = None
        if details and NO_VALID_HOST.lower() in details.lower():
            return self._no_valid_host(details)
        return (
            f"nova's migration {mig.id} ended in {mig.status}: "
            f"{details or 'see `openstack server event list`'}"
        )

    def _no_valid_host(self, details: str) -> str:
        if self.goal.target_host:
            return (
                f"target host {self.goal.target_host} is unsuitable for this server: the "
                f"scheduler rejected it ({details.strip()})"
            )
        return (
            "the scheduler found no other host for this server: no other host has room or "
            f"passes its filters, e.g. anti-affinity or availability zone ({details.strip()})"
        )


def _with(view: ServerView, migration: MigrationRecord | None) -> ServerView:
    values = asdict(view)
    values["migration"] = migration
    return ServerView(**values)


def _state_text(view: ServerView, decision: Decision) -> str:
    if decision.do is Do.WAIT:
        return decision.why
    if decision.do is Do.MIGRATE:
        return f"migrating from {view.host} {decision.why}"
    if decision.do is Do.CONFIRM:
        return f"VERIFY_RESIZE on {view.host}: confirming"
    if decision.do is Do.REVERT:
        return f"VERIFY_RESIZE on {view.host}: reverting ({decision.why})"
    return decision.why


def _worth_retrying(exc: BaseException) -> bool:
    """Transient, or a 409: nova refused because the server's state moved on; look again."""
    return is_transient(exc) or status_of(exc) == 409


def _http_message(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    return str(details or exc).strip()


def summary(results: Iterable[ServerResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.outcome)] = counts.get(str(r.outcome), 0) + 1
    return counts

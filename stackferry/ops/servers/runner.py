"""Carrying a cold migration out: one state machine per server on a bounded pool, each
reading nova and acting on the decision, through the retry policy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from openstack import exceptions as sdk_exceptions

from stackferry.cloud.connection import api_message
from stackferry.cloud.retry import (
    OPERATIONS,
    RetriesExhausted,
    RetryPolicy,
    is_transient,
    status_of,
)
from stackferry.ops.servers.decide import (
    SCHEDULER,
    Decision,
    Do,
    Goal,
    Memory,
    Outcome,
    adopt,
    decide,
)
from stackferry.ops.servers.nova import (
    MOVING,
    MigrationRecord,
    Nova,
    ServerView,
    with_migration,
)
from stackferry.ops.servers.select import POLICY_HINT

# Nova gives no code for a scheduling failure, in its API's answer or the server's fault:
# its message is the only sign, so this one decision reads text.
NO_VALID_HOST = "No valid host"


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
                result.note = f"{api_message(exc)}. {POLICY_HINT}"
                return
            except RetriesExhausted as exc:
                result.note = str(exc)
                return
            except sdk_exceptions.HttpException as exc:
                if NO_VALID_HOST.lower() in str(exc).lower():
                    result.note = self._no_valid_host(api_message(exc))
                    return
                try:
                    troubles.failed(exc)  # the state changed under us, or nova hiccuped
                except sdk_exceptions.HttpException:
                    result.note = api_message(exc)
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
        return view if busy else with_migration(view, self.nova.latest_migration(server_id))

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
            if decision.landed_wrong:
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


def summary(results: Iterable[ServerResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.outcome)] = counts.get(str(r.outcome), 0) + 1
    return counts

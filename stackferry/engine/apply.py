"""Apply: carry out a plan concurrently, in dependency order, through the retry policy.

Resources run as soon as everything they reference exists, on a bounded pool of workers.
A failure is recorded with the API's message and blocks only what depends on it.

A write whose answer is lost (a 5xx, a dropped connection) may have happened: before trying
again, the resource is looked for, and what is found is brought in line (``Kind.converge``)
instead of being made a second time. What a step reports done is never removed by the
clean-up of temporaries at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum

from stackferry.cloud.connection import api_message
from stackferry.cloud.retry import OPERATIONS, RetryPolicy, wait_until
from stackferry.engine.context import Context
from stackferry.engine.journal import Journal
from stackferry.engine.kind import Kind, Progressed
from stackferry.engine.model import Resource
from stackferry.engine.plan import WRITES, Action, Plan, Step
from stackferry.engine.registry import Registry


class State(StrEnum):
    """How a step of the plan ended (``running`` while it runs)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    PROGRESSED = "progressed"  # moved forward, not complete (a warm pass): not a failure
    WAITING = "waiting"  # needs what only progressed: made by the run that completes it


class Gate(StrEnum):
    GO = "go"  # everything it needs exists
    WAIT = "wait"  # something it needs is still pending or running
    BLOCKED = "blocked"  # something it needs did not succeed


Progress = Callable[[Step, State], None]
UNSUCCESSFUL = (State.FAILED, State.BLOCKED)
NOT_THERE = (*UNSUCCESSFUL, State.PROGRESSED, State.WAITING)  # what needs it cannot go


@dataclass
class Outcome:
    state: dict[str, State] = field(default_factory=dict)
    destination_id: dict[str, str] = field(default_factory=dict)
    error: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(s in (*UNSUCCESSFUL, State.CONFLICT) for s in self.state.values())


class Vanished(Exception):
    """The resource a step was to change is no longer in the destination."""


class Executor:
    def __init__(
        self,
        registry: Registry,
        ctx: Context,
        journal: Journal,
        parallel: int = 8,
        progress: Progress | None = None,
        policy: RetryPolicy = OPERATIONS,
    ) -> None:
        self.registry, self.ctx, self.journal = registry, ctx, journal
        self.parallel = max(1, parallel)
        self.progress = progress or (lambda step, state: None)
        self.policy = policy

    def run(self, plan: Plan) -> Outcome:
        outcome = Outcome()
        try:
            self._run(plan, outcome)
        finally:
            if self.ctx.temporaries is not None:
                # What a step reported done stays, whatever else was recorded about it.
                self.ctx.temporaries.release(set(outcome.destination_id.values()))
                self.ctx.temporaries.clean()  # also what a killed earlier run left behind
        return outcome

    def _run(self, plan: Plan, outcome: Outcome) -> None:
        pending: dict[str, Step] = {}
        for step in plan.steps:
            if step.action in WRITES:
                pending[step.key] = step
            else:
                state = {Action.UNCHANGED: State.UNCHANGED, Action.CONFLICT: State.CONFLICT}.get(
                    step.action, State.BLOCKED
                )
                self._settle(
                    outcome,
                    step,
                    state,
                    step.current.id if step.current else None,
                    step.reason or None,
                )
        running: dict[Future[str], Step] = {}
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="apply") as pool:
            while pending or running:
                for key, step in list(pending.items()):
                    gate = self._gate(step, outcome, pending, running)
                    if gate is Gate.WAIT:
                        continue
                    del pending[key]
                    if gate is Gate.BLOCKED:
                        bad = [k for k in step.needs if outcome.state.get(k) in NOT_THERE]
                        failed = [k for k in bad if outcome.state.get(k) in UNSUCCESSFUL]
                        self._settle(
                            outcome,
                            step,
                            State.BLOCKED if failed else State.WAITING,
                            None,
                            "depends on "
                            + ", ".join(failed or bad)
                            + (", which did not succeed" if failed else ", not complete yet"),
                        )
                        continue
                    self.journal.step_started(
                        step.key, step.resource.kind, step.action, step.resource.id
                    )
                    self.progress(step, State.RUNNING)
                    running[pool.submit(self._perform, step)] = step
                if not running:
                    if pending:  # nothing runs and nothing can start: a dependency cycle
                        for step in pending.values():
                            self._settle(outcome, step, State.BLOCKED, None, "dependency cycle")
                        pending.clear()
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    try:
                        destination_id = future.result()
                    except Progressed as exc:
                        self._settle(outcome, step, State.PROGRESSED, None, str(exc))
                    except Exception as exc:
                        self._settle(outcome, step, State.FAILED, None, api_message(exc))
                    else:
                        self._settle(outcome, step, State.DONE, destination_id, None)

    def _gate(
        self,
        step: Step,
        outcome: Outcome,
        pending: dict[str, Step],
        running: dict[Future[str], Step],
    ) -> Gate:
        """A resource in conflict exists (only its fields differ): what needs it can go."""
        in_flight = {s.key for s in running.values()}
        for key in step.needs:
            state = outcome.state.get(key)
            conflict = state == State.CONFLICT and key not in outcome.destination_id
            if state in NOT_THERE or conflict:
                return Gate.BLOCKED
            if key in pending or key in in_flight:
                return Gate.WAIT
        return Gate.GO

    def _perform(self, step: Step) -> str:
        """One step, tried again while it fails in a transient way; before each new try the
        destination is looked at again, so a write that happened is not repeated."""
        kind = self.registry[step.resource.kind]
        attempts = self.policy.tracker(f"{step.action} {kind.name} {step.resource.label}")
        current, made_here, look = step.current, False, False
        while True:
            try:
                if look:  # what the last try left: looked at inside the try, so a read
                    current = self._look(kind, step.resource)  # failing is retried too
                    look = False
                if step.action == Action.DELETE:
                    if current is not None:
                        kind.delete(self.ctx, current)
                    return str(step.resource.id)
                # A replace, or what this step made and left unfinished in a field that
                # cannot change in place (an upload cut short): made again.
                replacing = step.action == Action.REPLACE or made_here
                if current is not None and replacing and self._stale(kind, step.resource, current):
                    kind.delete(self.ctx, current)
                    current = None
                if current is not None and not kind.ready(current):
                    current = self._until_ready(kind, step.resource)
                if current is None:
                    if step.action == Action.UPDATE:
                        raise Vanished(
                            f"{kind.name} {step.resource.label} was removed from the "
                            "destination during the run; re-run to create it again"
                        )
                    made_here = True
                    new_id = kind.create(self.ctx, step.resource)
                else:
                    new_id = kind.converge(self.ctx, step.resource, current, made_here)
                break
            except Exception as exc:
                attempts.failed(exc)  # sleeps before the next try, or raises
                look = True
        self.ctx.ids.add(kind.name, new_id, step.resource.identity)
        tenant = self.ctx.tenant
        if kind.defines_tenant and step.resource.identity == kind.tenant_identity(
            tenant.name, tenant.domain
        ):
            tenant.id = new_id
        return str(new_id)

    def _until_ready(self, kind: Kind, resource: Resource) -> Resource | None:
        """A resource still building is waited for, never changed halfway (None: gone)."""
        found: Resource | None = wait_until(
            lambda: self._look(kind, resource),
            lambda r: r is None or kind.ready(r),
            f"{kind.name} {resource.label} to settle",
            kind.ready_timeout,
        )
        return found

    @staticmethod
    def _stale(kind: Kind, resource: Resource, current: Resource) -> bool:
        changed = kind.changed_fields(resource.params, current.params)
        return bool(kind.conflicting(changed, current) & kind.replaceable)

    def _look(self, kind: Kind, resource: Resource) -> Resource | None:
        """What the destination has under this identity now."""
        found = next((r for r in kind.read(self.ctx) if r.key == resource.key), None)
        if found is None:
            found = next(
                (r for r in kind.find(self.ctx, [resource]) if r.key == resource.key), None
            )
        return found if found is not None and found.id else None

    def _settle(
        self,
        outcome: Outcome,
        step: Step,
        state: State,
        destination_id: str | None,
        error: str | None,
    ) -> None:
        outcome.state[step.key] = state
        if destination_id:
            outcome.destination_id[step.key] = destination_id
        if error:
            outcome.error[step.key] = error
        if state in (State.DONE, State.FAILED, State.PROGRESSED):  # started: close its record
            self.journal.step_finished(step.key, state, destination_id, error)
        else:
            self.journal.step_skipped(
                step.key, step.resource.kind, step.action, state, step.resource.id, error
            )
        self.progress(step, state)

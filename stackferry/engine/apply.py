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
from typing import Any

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


class BulkFailed(Exception):
    """A bulk create failed: whatever it made or not, each of its resources goes on its own."""


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
        running: dict[Future[Any], list[Step]] = {}  # one step, or a bulk create's
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="apply") as pool:
            while pending or running:
                ready: list[Step] = []
                for key, step in list(pending.items()):
                    gate = self._gate(step, outcome, pending, running, ready)
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
                    ready.append(step)
                for group in self._batches(ready):
                    for step in group:
                        self.journal.step_started(
                            step.key, step.resource.kind, step.action, step.resource.id
                        )
                        self.progress(step, State.RUNNING)
                    if len(group) == 1:
                        running[pool.submit(self._perform, group[0])] = group
                    else:
                        running[pool.submit(self._perform_many, group)] = group
                if not running:
                    if pending:  # nothing runs and nothing can start: a dependency cycle
                        for step in pending.values():
                            self._settle(outcome, step, State.BLOCKED, None, "dependency cycle")
                        pending.clear()
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    group = running.pop(future)
                    try:
                        result = future.result()
                    except Progressed as exc:
                        self._settle(outcome, group[0], State.PROGRESSED, None, str(exc))
                    except BulkFailed:  # each on its own, looking first at what it made
                        for step in group:
                            running[pool.submit(self._perform, step, True)] = [step]
                    except Exception as exc:
                        self._settle(outcome, group[0], State.FAILED, None, api_message(exc))
                    else:
                        ids = result if isinstance(result, list) else [result]
                        for step, destination_id in zip(group, ids, strict=True):
                            self._settle(outcome, step, State.DONE, destination_id, None)

    def _batches(self, ready: list[Step]) -> list[list[Step]]:
        """Steps that may start now: creates of a kind with ``bulk_size`` together (by its
        ``bulk_group``), in batches of that size; every other step alone."""
        alone: list[list[Step]] = []
        bulk: dict[tuple[str, str], list[Step]] = {}
        for step in ready:
            kind = self.registry[step.resource.kind]
            if kind.bulk_size and step.action == Action.CREATE and step.current is None:
                group = (kind.name, kind.bulk_group(step.resource))
                bulk.setdefault(group, []).append(step)
            else:
                alone.append([step])
        for (name, _), steps in bulk.items():
            size = self.registry[name].bulk_size
            alone += [steps[i : i + size] for i in range(0, len(steps), size)]
        return alone

    def _gate(
        self,
        step: Step,
        outcome: Outcome,
        pending: dict[str, Step],
        running: dict[Future[Any], list[Step]],
        starting: list[Step],
    ) -> Gate:
        """A resource in conflict exists (only its fields differ): what needs it can go.
        ``starting``: steps found ready in this round, not submitted yet."""
        in_flight = {s.key for group in running.values() for s in group}
        in_flight |= {s.key for s in starting}
        for key in step.needs:
            state = outcome.state.get(key)
            conflict = state == State.CONFLICT and key not in outcome.destination_id
            if state in NOT_THERE or conflict:
                return Gate.BLOCKED
            if key in pending or key in in_flight:
                return Gate.WAIT
        return Gate.GO

    def _perform_many(self, steps: list[Step]) -> list[str]:
        """Creates of one kind in one call; if it fails in any way (its answer may be lost
        after it made them all), BulkFailed: each is then carried out on its own."""
        kind = self.registry[steps[0].resource.kind]
        try:
            ids = kind.create_many(self.ctx, [s.resource for s in steps])
        except Exception as exc:
            raise BulkFailed(api_message(exc)) from exc
        for step, new_id in zip(steps, ids, strict=True):
            self.ctx.ids.add(kind.name, new_id, step.resource.identity)
        return [str(i) for i in ids]

    def _perform(self, step: Step, look_first: bool = False) -> str:
        """One step, tried again while it fails in a transient way; before each new try the
        destination is looked at again, so a write that happened is not repeated
        (``look_first``: before the first try too, after a bulk create that failed)."""
        kind = self.registry[step.resource.kind]
        attempts = self.policy.tracker(f"{step.action} {kind.name} {step.resource.label}")
        current, made_here, look = step.current, look_first, look_first
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

"""Apply: carry out a plan concurrently, in dependency order, retrying transient errors.

Resources run as soon as everything they reference exists, on a bounded pool of workers.
A failure is recorded with the API's message and blocks only what depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from stackferry.cloud import is_transient
from stackferry.engine.journal import Journal
from stackferry.engine.plan import WRITES, Plan, Step
from stackferry.engine.registry import Registry
from stackferry.kinds.base import Context

Progress = Callable[[Step, str], None]


def api_message(exc: BaseException) -> str:
    """The cloud's own words, without the SDK's request dump."""
    details = getattr(exc, "details", None)
    status = getattr(exc, "status_code", None)
    text = (
        str(details or exc).strip().splitlines()[0]
        if str(details or exc).strip()
        else type(exc).__name__
    )
    return f"HTTP {status}: {text}" if status else f"{type(exc).__name__}: {text}"


@dataclass
class Outcome:
    state: dict[str, str] = field(default_factory=dict)  # key -> done/failed/blocked/...
    destination_id: dict[str, str] = field(default_factory=dict)
    error: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(s in ("failed", "blocked", "conflict") for s in self.state.values())


def retrying(call: Callable[[], Any], attempts: int = 5, first_delay: float = 0.5) -> Any:
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class Executor:
    def __init__(
        self,
        registry: Registry,
        ctx: Context,
        journal: Journal,
        parallel: int = 8,
        progress: Progress | None = None,
        tenant_kind: str | None = None,
    ) -> None:
        self.registry, self.ctx, self.journal = registry, ctx, journal
        self.parallel = max(1, parallel)
        self.progress = progress or (lambda step, state: None)
        self.tenant_kind = tenant_kind

    def run(self, plan: Plan) -> Outcome:
        try:
            return self._run(plan)
        finally:
            if self.ctx.temporaries is not None:
                self.ctx.temporaries.clean()  # also what a killed earlier run left behind

    def _run(self, plan: Plan) -> Outcome:
        outcome = Outcome()
        pending: dict[str, Step] = {}
        for step in plan.steps:
            if step.action in WRITES:
                pending[step.key] = step
            else:
                state = {"unchanged": "unchanged", "conflict": "conflict"}.get(
                    step.action, "blocked"
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
                    if gate == "wait":
                        continue
                    del pending[key]
                    if gate == "blocked":
                        bad = [
                            k
                            for k in step.needs
                            if outcome.state.get(k) in ("failed", "blocked", "conflict")
                        ]
                        self._settle(
                            outcome,
                            step,
                            "blocked",
                            None,
                            "depends on " + ", ".join(bad) + ", which did not succeed",
                        )
                        continue
                    self.journal.step_started(
                        step.key, step.resource.kind, step.action, step.resource.id
                    )
                    self.progress(step, "running")
                    running[pool.submit(self._perform, step)] = step
                if not running:
                    if pending:  # nothing runs and nothing can start: a dependency cycle
                        for step in pending.values():
                            self._settle(outcome, step, "blocked", None, "dependency cycle")
                        pending.clear()
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    try:
                        destination_id = future.result()
                    except Exception as exc:
                        self._settle(outcome, step, "failed", None, api_message(exc))
                    else:
                        self._settle(outcome, step, "done", destination_id, None)
        return outcome

    def _gate(
        self,
        step: Step,
        outcome: Outcome,
        pending: dict[str, Step],
        running: dict[Future[str], Step],
    ) -> str:
        in_flight = {s.key for s in running.values()}
        for key in step.needs:
            state = outcome.state.get(key)
            if state in ("failed", "blocked", "conflict"):
                return "blocked"
            if key in pending or key in in_flight:
                return "wait"
        return "go"

    def _perform(self, step: Step) -> str:
        kind = self.registry[step.resource.kind]
        if step.action == "delete":
            assert step.current is not None
            retrying(lambda: kind.delete(self.ctx, step.current))  # type: ignore[arg-type]
            return str(step.current.id)
        if step.action == "update":
            assert step.current is not None
            retrying(
                lambda: kind.update(
                    self.ctx,
                    step.resource,
                    step.current,  # type: ignore[arg-type]
                    set(step.changes),
                )
            )
            # An update may replace the resource (e.g. an image whose upload was cut short).
            return str(self.ctx.ids.id(kind.name, step.resource.identity) or step.current.id)

        def create() -> str:
            try:
                return kind.create(self.ctx, step.resource)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # The create may have happened before the error: look before trying again.
                found = next((r for r in kind.read(self.ctx) if r.key == step.key), None)
                if found is None or not found.id:
                    raise
                # Made, but perhaps not finished (a create can be several calls): converge.
                changed = kind.changed_fields(step.resource.params, found.params)
                if changed:
                    kind.update(self.ctx, step.resource, found, changed)
                # The update may have replaced it (an image whose upload was cut short).
                return self.ctx.ids.id(kind.name, step.resource.identity) or found.id

        new_id = retrying(create)
        self.ctx.ids.add(kind.name, new_id, step.resource.identity)
        if kind.name == self.tenant_kind and step.resource.identity == {
            "name": self.ctx.tenant.name,
            "domain": self.ctx.tenant.domain,
        }:
            self.ctx.tenant.id = new_id
        return str(new_id)

    def _settle(
        self,
        outcome: Outcome,
        step: Step,
        state: str,
        destination_id: str | None,
        error: str | None,
    ) -> None:
        outcome.state[step.key] = state
        if destination_id:
            outcome.destination_id[step.key] = destination_id
        if error:
            outcome.error[step.key] = error
        if state in ("done", "failed"):  # the step was started: close its journal record
            self.journal.step_finished(step.key, state, destination_id, error)
        else:
            self.journal.step_skipped(
                step.key, step.resource.kind, step.action, state, step.resource.id, error
            )
        self.progress(step, state)

"""What to do with one server, decided from what nova shows now: pure, unit-tested."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from stackferry.ops.servers.nova import MOVABLE, MOVING, MigrationRecord, ServerView

SCHEDULER = "scheduler's choice"


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
    landed_wrong: bool = False  # for REVERT: not where it was asked to go (else: as asked)


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
        return Decision(Do.REVERT, wrong, landed_wrong=True)
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

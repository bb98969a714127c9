"""Cold migration's decisions and runner, on a fake nova (the real thing: tests/cloud)."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from openstack import exceptions

from stackferry.cli.main import cli
from stackferry.errors import StackferryError
from stackferry.ops.servers import select as ops
from stackferry.ops.servers.decide import Decision, Do, Goal, Memory, Outcome, adopt, decide, judge
from stackferry.ops.servers.nova import MigrationRecord, ServerView
from stackferry.ops.servers.runner import Runner, ServerResult

NO_VALID_HOST = "No valid host was found. No valid host found for cold migrate"
POLICY = "Policy doesn't allow os_compute_api:os-migrate-server:migrate to be performed."


def http_error(cls: type[exceptions.HttpException], status: int, details: str) -> Exception:
    response = requests.Response()
    response.status_code = status
    return cls(message=details, response=response, details=details)


def view(
    status: str = "ACTIVE",
    host: str | None = "h1",
    task_state: str | None = None,
    migration: MigrationRecord | None = None,
    fault: str | None = None,
) -> ServerView:
    return ServerView("s1", "vm", "p1", status, task_state, host, fault, migration)


def mig(
    status: str = "finished", source: str = "h1", dest: str = "h2", kind: str = "migration"
) -> MigrationRecord:
    return MigrationRecord("m1", kind, status, source, dest, "2026-01-01T00:00:00")


DRAIN = Goal(leave_host="h1")


# ---- decide: one decision per nova state ------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "goal", "memory", "do", "why"),
    [
        # before anything: move what can move, leave the rest with a reason
        (view(), DRAIN, Memory(), Do.MIGRATE, "scheduler's choice"),
        (view("SHUTOFF"), DRAIN, Memory(), Do.MIGRATE, "scheduler's choice"),
        (view(), Goal(target_host="h3"), Memory(), Do.MIGRATE, "to h3"),
        (view(host="h2"), DRAIN, Memory(), Do.DONE, "already off h1"),
        (view(host="h3"), Goal(target_host="h3"), Memory(), Do.DONE, "already on h3"),
        (view("ERROR", fault="disk gone"), DRAIN, Memory(), Do.SKIP, "in ERROR, not migrated"),
        (view("PAUSED"), DRAIN, Memory(), Do.SKIP, "only ACTIVE or SHUTOFF"),
        # nova is busy: wait, whoever started it
        (view("RESIZE", task_state="resize_prep"), DRAIN, Memory(), Do.WAIT, "RESIZE"),
        (view("MIGRATING", task_state="migrating"), DRAIN, Memory(), Do.WAIT, "MIGRATING"),
        (view("ACTIVE", task_state="image_snapshot"), DRAIN, Memory(), Do.WAIT, "snapshot"),
        # VERIFY_RESIZE: settle the migration that is followed
        (view("VERIFY_RESIZE", "h2", migration=mig()), DRAIN, Memory(migration_id="m1"),
         Do.CONFIRM, "on h2"),
        (view("VERIFY_RESIZE", "h2", migration=mig()), Goal(leave_host="h1", revert=True),
         Memory(migration_id="m1"), Do.REVERT, "--revert"),
        (view("VERIFY_RESIZE", "h2", migration=mig()), Goal(target_host="h3"),
         Memory(migration_id="m1"), Do.REVERT, "landed on h2, not on h3"),
        (view("VERIFY_RESIZE", "h2", migration=mig("confirming")), DRAIN,
         Memory(migration_id="m1"), Do.WAIT, "confirming"),
        (view("VERIFY_RESIZE", "h2", migration=mig()), DRAIN,
         Memory(["migrate", "confirm"], "m1"), Do.WAIT, "finished"),  # never confirm twice
        (view("VERIFY_RESIZE", "h2", migration=mig(kind="resize")), DRAIN, Memory(),
         Do.SKIP, "resize to another flavor"),
        (view("VERIFY_RESIZE", "h1", migration=mig(source="h9", dest="h1")), DRAIN,
         Memory(migration_id="m1"), Do.SKIP, "from h9 to h1"),
        # back to ACTIVE: how did the followed migration end?
        (view(host="h2", migration=mig("confirmed")), DRAIN,
         Memory(["migrate", "confirm"], "m1"), Do.DONE, "on h2"),
        (view(migration=mig("reverted")), Goal(leave_host="h1", revert=True),
         Memory(["migrate", "revert"], "m1"), Do.DONE, "back on h1"),
        (view(migration=mig("reverted")), DRAIN,
         Memory(["migrate", "revert"], "m1", wrong="landed on h5"), Do.FAIL, "landed on h5"),
        (view(migration=mig("error", dest="")), DRAIN, Memory(["migrate"], "m1"),
         Do.FAIL, "ended in error"),
        (view(migration=None), DRAIN, Memory(["migrate"], before_migrate=""),
         Do.FAIL, "recorded none"),
        (view("ERROR", host="h2", fault="boom"), DRAIN, Memory(["migrate"], "m1"),
         Do.FAIL, "went to ERROR after this run's migrate: boom"),
        # an earlier run's rehearsal (reverted) of a server that must still leave: start over
        (view(migration=mig("reverted")), DRAIN, Memory(migration_id="m1"),
         Do.MIGRATE, "scheduler's choice"),
    ],
)  # fmt: skip
def test_decide(server: ServerView, goal: Goal, memory: Memory, do: Do, why: str) -> None:
    decision = decide(server, goal, memory)
    assert decision.do is do, decision
    assert why in decision.why, decision


def test_decide_done_says_the_outcome() -> None:
    confirmed = decide(
        view(host="h2", migration=mig("confirmed")), DRAIN, Memory(["confirm"], "m1")
    )
    assert confirmed == Decision(Do.DONE, "on h2", Outcome.CONFIRMED)
    unchanged = decide(view(host="h2"), DRAIN, Memory())
    assert unchanged.outcome is Outcome.UNCHANGED


def test_adopt_follows_in_flight_migrations_but_not_stale_records() -> None:
    in_flight = view("VERIFY_RESIZE", "h2", migration=mig())
    assert adopt(in_flight, Memory()) == "m1"
    assert adopt(view("RESIZE", migration=mig("migrating")), Memory()) == "m1"
    # a record stuck in a non-final state while the server is plainly ACTIVE: not followed
    assert adopt(view(host="h2", migration=mig("post-migrating")), Memory()) is None
    assert adopt(in_flight, Memory(migration_id="other")) is None
    assert adopt(view("VERIFY_RESIZE", migration=mig(kind="resize")), Memory()) is None
    # after this run's migrate: the record nova made for it, not the one before
    assert adopt(in_flight, Memory(["migrate"], before_migrate="m1")) is None
    assert adopt(in_flight, Memory(["migrate"], before_migrate="m0")) == "m1"


def test_judge() -> None:
    assert judge("h2", mig(), Goal()) is None
    assert judge("h2", mig(), Goal(target_host="h2")) is None
    assert judge("h2", mig(), Goal(target_host="h3")) == "landed on h2, not on h3 as asked"
    assert judge("h1", mig(), Goal()) == "still on its source host h1"
    assert "being drained" in str(judge("h1", mig(source="h0"), Goal(leave_host="h1")))


# ---- a fake nova that moves servers the way nova does -----------------------------------------


@dataclass
class FakeServer:
    id: str
    name: str
    host: str
    project_id: str = "p1"
    status: str = "ACTIVE"
    task_state: str | None = None
    fault: str | None = None
    ticks: int = 0  # polls left until the current step completes
    source: str | None = None  # where it came from, while in VERIFY_RESIZE
    dest: str | None = None  # where it is going, while in RESIZE


@dataclass
class FakeNova:
    """Nova's cold migration as a state machine advanced by polls; records every write."""

    hosts: dict[str, str] = field(default_factory=lambda: {"h1": "", "h2": "", "h3": ""})
    servers: dict[str, FakeServer] = field(default_factory=dict)
    migrations: list[tuple[str, MigrationRecord]] = field(default_factory=list)  # server, record
    calls: list[tuple[str, str]] = field(default_factory=list)
    lands_on: dict[str, str] = field(default_factory=dict)  # server -> host regardless of asked
    no_valid_host: set[str] = field(default_factory=set)
    forbidden: bool = False
    stuck: set[str] = field(default_factory=set)  # never leave RESIZE
    steps: int = 2  # polls per step
    barrier: threading.Barrier | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def add(self, name: str, host: str = "h1", **kw: Any) -> FakeServer:
        server = FakeServer(f"id-{name}", name, host, **kw)
        self.servers[server.id] = server
        return server

    def record(self, server_id: str, status: str, source: str, dest: str | None) -> None:
        n = next(self.ids)
        rec = MigrationRecord(f"m{n}", "migration", status, source, dest, f"2026-01-01T00:{n:02}")
        self.migrations.append((server_id, rec))

    def _set_latest(self, server_id: str, **changes: Any) -> None:
        i = max(i for i, (s, _) in enumerate(self.migrations) if s == server_id)
        self.migrations[i] = (server_id, replace(self.migrations[i][1], **changes))

    def _view(self, s: FakeServer) -> ServerView:
        return ServerView(s.id, s.name, s.project_id, s.status, s.task_state, s.host, s.fault)

    def server(self, server_id: str) -> ServerView:
        with self.lock:
            s = self.servers.get(server_id)
            if s is None:
                raise http_error(exceptions.NotFoundException, 404, "gone")
            self._advance(s)
            return self._view(s)

    def _advance(self, s: FakeServer) -> None:
        if s.ticks > 0:
            s.ticks -= 1
            return
        if s.status == "RESIZE" and s.id not in self.stuck:
            dest = self.lands_on.get(s.id) or s.dest or ""
            s.status, s.task_state, s.source, s.host = "VERIFY_RESIZE", None, s.host, dest
            self._set_latest(s.id, status="finished", dest=dest)
        elif s.status == "VERIFY_RESIZE" and self.latest_migration(s.id).status == "confirming":
            s.status = "ACTIVE"
            self._set_latest(s.id, status="confirmed")
        elif s.status == "REVERT_RESIZE":
            s.status, s.task_state, s.host = "ACTIVE", None, s.source or s.host
            self._set_latest(s.id, status="reverted")

    def latest_migration(self, server_id: str) -> MigrationRecord:
        return max(
            (m for s, m in self.migrations if s == server_id),
            key=lambda m: m.created_at,
            default=None,
        )  # type: ignore[return-value]

    def migrate(self, server_id: str, host: str | None) -> None:
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        with self.lock:
            self.calls.append(("migrate", server_id))
            if self.forbidden:
                raise http_error(exceptions.ForbiddenException, 403, POLICY)
            s = self.servers[server_id]
            if s.id in self.no_valid_host:
                self.record(s.id, "error", s.host, None)
                return
            other = host or next(h for h in sorted(self.hosts) if h != s.host)
            s.status, s.task_state, s.dest, s.ticks = "RESIZE", "resize_prep", other, self.steps
            self.record(s.id, "pre-migrating", s.host, None)

    def confirm(self, server_id: str) -> None:
        with self.lock:
            self.calls.append(("confirm", server_id))
            self._set_latest(server_id, status="confirming")
            self.servers[server_id].ticks = self.steps

    def revert(self, server_id: str) -> None:
        with self.lock:
            self.calls.append(("revert", server_id))
            s = self.servers[server_id]
            s.status, s.task_state, s.ticks = "REVERT_RESIZE", "resize_reverting", self.steps
            self._set_latest(server_id, status="reverting")

    def failure_details(self, server_id: str) -> str | None:
        return NO_VALID_HOST if server_id in self.no_valid_host else None

    # Inventory
    def probe_admin(self) -> None:
        if self.forbidden:
            raise http_error(exceptions.ForbiddenException, 403, POLICY)

    def compute_hosts(self) -> dict[str, str]:
        return dict(self.hosts)

    def servers_on(self, host: str, project_id: str | None) -> list[ServerView]:
        return [
            self._view(s)
            for s in self.servers.values()
            if s.host == host and project_id in (None, s.project_id)
        ]

    def migrations_from(self, host: str) -> list[MigrationRecord]:
        return [m for _, m in self.migrations if m.source == host]

    def migration_server_id(self, migration: MigrationRecord) -> str:
        return next(s for s, m in self.migrations if m.id == migration.id)

    def find_server(self, name_or_id: str) -> ServerView | None:
        found = [s for s in self.servers.values() if name_or_id in (s.id, s.name)]
        if len(found) > 1:
            raise exceptions.DuplicateResource(f"more than one {name_or_id}")
        return self._view(found[0]) if found else None

    def project_id(self, name_or_id: str) -> str:
        return name_or_id

    def supports_target_host(self) -> bool:
        return True

    def writes(self, server_id: str) -> list[str]:
        return [c for c, s in self.calls if s == server_id]

    def records(self, server_id: str) -> list[MigrationRecord]:
        return [m for s, m in self.migrations if s == server_id]


def runner(nova: FakeNova, goal: Goal = DRAIN, **kw: Any) -> Runner:
    return Runner(nova, goal, **{"poll": 0, "timeout": 5, **kw})


def drain(nova: FakeNova, goal: Goal = DRAIN, **kw: Any) -> list[ServerResult]:
    chosen = ops.servers_to_drain(nova, "c", goal.leave_host or "h1", None)
    return runner(nova, goal, **kw).run(chosen)


# ---- the runner ---------------------------------------------------------------------------------


def test_drain_moves_every_server_once_with_bounded_concurrency() -> None:
    nova = FakeNova(hosts={"h1": "", "h2": ""}, barrier=threading.Barrier(3))
    for i in range(6):
        nova.add(f"vm{i}")
    nova.add("elsewhere", host="h2")
    active: set[str] = set()
    most = 0

    def listener(server_id: str, text: str, host: str | None, final: bool) -> None:
        nonlocal most
        with nova.lock:
            (active.discard if final else active.add)(server_id)
            most = max(most, len(active))

    results = drain(nova, parallel=3, listener=listener)
    assert [r.name for r in results] == [f"vm{i}" for i in range(6)]
    assert {r.outcome for r in results} == {Outcome.CONFIRMED}
    assert all(r.from_host == "h1" and r.to_host == "h2" and r.status == "ACTIVE" for r in results)
    assert all(r.action == "migrate+confirm" and not r.resumed for r in results)
    assert all([m.status for m in nova.records(r.id)] == ["confirmed"] for r in results)
    assert most == 3  # the barrier in migrate proves 3 at once; never more
    assert nova.writes("id-elsewhere") == []


def test_revert_leaves_servers_where_they_were() -> None:
    nova = FakeNova()
    for i in range(3):
        nova.add(f"vm{i}")
    results = drain(nova, Goal(leave_host="h1", revert=True))
    assert {r.outcome for r in results} == {Outcome.REVERTED}
    assert all(r.to_host == "h1" and r.landed_on == "h2" for r in results)
    assert all(nova.writes(r.id) == ["migrate", "revert"] for r in results)
    assert all([m.status for m in nova.records(r.id)] == ["reverted"] for r in results)


def test_rerun_finishes_what_was_in_flight_without_a_second_migration() -> None:
    nova = FakeNova(hosts={"h1": "", "h2": ""})
    waiting = nova.add("waiting", host="h2", status="VERIFY_RESIZE")  # reports its new host
    nova.record(waiting.id, "finished", "h1", "h2")
    waiting.source = "h1"
    moving = nova.add("moving", status="RESIZE", task_state="resize_migrating", dest="h2", ticks=3)
    nova.record(moving.id, "migrating", "h1", None)
    confirming = nova.add("confirming", host="h2", status="VERIFY_RESIZE", ticks=1)
    nova.record(confirming.id, "confirming", "h1", "h2")
    gone = nova.add("gone", host="h2")
    nova.record(gone.id, "confirmed", "h1", "h2")  # already left: not touched
    nova.add("untouched")

    results = {r.name: r for r in drain(nova)}
    assert set(results) == {"waiting", "moving", "confirming", "untouched"}
    assert {r.outcome for r in results.values()} == {Outcome.CONFIRMED}
    assert nova.writes(waiting.id) == ["confirm"]
    assert nova.writes(moving.id) == ["confirm"]
    assert nova.writes(confirming.id) == []  # an earlier run's confirm is not repeated
    assert nova.writes("id-untouched") == ["migrate", "confirm"]
    assert nova.writes(gone.id) == []
    assert all(len(nova.records(s.id)) == 1 for s in nova.servers.values())
    assert results["waiting"].resumed and results["waiting"].from_host == "h1"
    assert not results["untouched"].resumed


def test_rerun_with_revert_reverts_a_server_waiting_in_verify_resize() -> None:
    nova = FakeNova()
    server = nova.add("vm", host="h2", status="VERIFY_RESIZE", source="h1")
    nova.record(server.id, "finished", "h1", "h2")
    [result] = runner(nova, Goal(revert=True)).run(ops.servers_named(nova, "c", ["vm"]))
    assert result.outcome is Outcome.REVERTED and result.to_host == "h1" and result.resumed
    assert nova.writes(server.id) == ["revert"]


def test_no_valid_host_says_which_server_and_why() -> None:
    nova = FakeNova()
    nova.add("stuck-vm")
    nova.add("fine")
    nova.no_valid_host.add("id-stuck-vm")
    results = {r.name: r for r in drain(nova)}
    failed = results["stuck-vm"]
    assert failed.outcome is Outcome.FAILED and failed.to_host == "h1"
    assert "scheduler found no other host" in failed.note and "No valid host" in failed.note
    assert results["fine"].outcome is Outcome.CONFIRMED

    nova = FakeNova()
    nova.add("vm")
    nova.no_valid_host.add("id-vm")
    [result] = runner(nova, Goal(target_host="h3")).run(ops.servers_named(nova, "c", ["vm"]))
    assert "target host h3 is unsuitable" in result.note


def test_no_valid_host_answered_at_once_by_the_api() -> None:
    nova = FakeNova()
    nova.add("vm")

    def refuse(server_id: str, host: str | None) -> None:
        raise http_error(exceptions.BadRequestException, 400, NO_VALID_HOST)

    nova.migrate = refuse  # type: ignore[method-assign]
    [result] = drain(nova)
    assert result.outcome is Outcome.FAILED and "scheduler found no other host" in result.note


def test_policy_refusal_per_server_names_admin_credentials() -> None:
    nova = FakeNova()
    nova.add("vm")
    nova.forbidden = True
    [result] = runner(nova).run([nova.server("id-vm")])
    assert result.outcome is Outcome.FAILED
    assert "HTTP 403" in result.note and "admin credentials" in result.note


def test_wrong_landing_is_reverted_and_failed() -> None:
    nova = FakeNova(lands_on={"id-vm": "h2"})
    nova.add("vm")
    [result] = runner(nova, Goal(target_host="h3")).run([nova.server("id-vm")])
    assert result.outcome is Outcome.FAILED
    assert result.note == "landed on h2, not on h3 as asked; reverted to h1"
    assert result.action == "migrate+revert" and result.to_host == "h1"


def test_error_servers_are_skipped_untouched() -> None:
    nova = FakeNova()
    nova.add("broken", status="ERROR", fault="disk lost")
    [result] = drain(nova)
    assert result.outcome is Outcome.SKIPPED and "disk lost" in result.note
    assert nova.calls == []


def test_timeout_per_server() -> None:
    nova = FakeNova(stuck={"id-vm"})
    nova.add("vm")
    [result] = runner(nova, timeout=0.05).run([nova.server("id-vm")])
    assert result.outcome is Outcome.FAILED and "timed out" in result.note
    assert "re-run" in result.note


def test_stop_leaves_servers_to_the_next_run() -> None:
    nova = FakeNova()
    nova.add("vm")
    r = runner(nova)
    r.stop.set()
    [result] = r.run([nova.server("id-vm")])
    assert result.outcome is Outcome.FAILED and "interrupted" in result.note
    assert nova.calls == []


def test_conflict_is_retried_after_looking_again() -> None:
    nova = FakeNova()
    nova.add("vm")
    real = nova.migrate
    answers = iter([http_error(exceptions.ConflictException, 409, "task_state busy")])

    def once_busy(server_id: str, host: str | None) -> None:
        error = next(answers, None)
        if error is not None:
            raise error
        real(server_id, host)

    nova.migrate = once_busy  # type: ignore[method-assign]
    [result] = drain(nova)
    assert result.outcome is Outcome.CONFIRMED
    assert len(nova.records("id-vm")) == 1


def test_dry_run_changes_nothing_and_says_where() -> None:
    nova = FakeNova()
    nova.add("vm")
    nova.add("broken", status="ERROR")
    waiting = nova.add("waiting", host="h2", status="VERIFY_RESIZE", source="h1")
    nova.record(waiting.id, "finished", "h1", "h2")
    chosen = ops.servers_to_drain(nova, "c", "h1", None)
    results = {r.name: r for r in runner(nova).dry_run(chosen)}
    assert nova.calls == []
    assert (
        results["vm"].outcome is Outcome.PLANNED and results["vm"].to_host == "scheduler's choice"
    )
    assert results["broken"].outcome is Outcome.SKIPPED
    assert "would confirm" in results["waiting"].note
    targeted = runner(nova, Goal(leave_host="h1", target_host="h3")).dry_run(chosen)
    assert {r.name: r.to_host for r in targeted}["vm"] == "h3"


# ---- planning and refusals --------------------------------------------------------------------


def test_drain_lists_one_project_and_those_moving_off_the_host() -> None:
    nova = FakeNova()
    nova.add("mine")
    nova.add("theirs", project_id="p2")
    moving = nova.add("moving", host="h2", status="VERIFY_RESIZE")
    nova.record(moving.id, "finished", "h1", "h2")
    nova.record("id-deleted", "finished", "h1", "h2")  # its server is gone: ignored
    names = [v.name for v in ops.servers_to_drain(nova, "c", "h1", "p1")]
    assert names == ["mine", "moving"]


def test_servers_named_refuses_unknown_and_ambiguous_names() -> None:
    nova = FakeNova()
    nova.add("a")
    nova.servers["id-a2"] = FakeServer("id-a2", "a", "h1")
    nova.add("b")
    assert [v.id for v in ops.servers_named(nova, "c", ["id-b", "b"])] == ["id-b"]
    with pytest.raises(StackferryError, match="no server 'nope'"):
        ops.servers_named(nova, "c", ["nope"])
    with pytest.raises(StackferryError, match="several servers are named 'a'"):
        ops.servers_named(nova, "c", ["a"])


@pytest.mark.parametrize(
    ("hosts", "goal", "host", "message"),
    [
        ({"h1": ""}, Goal(leave_host="hx"), "hx", "no compute host hx; hosts: h1"),
        ({"h1": "", "h2": ""}, Goal(target_host="hz"), None, "no compute target host hz"),
        ({"h1": "", "h2": "disabled (maint)"}, Goal(target_host="h2"), None, "disabled (maint)"),
        ({"h1": ""}, Goal(leave_host="h1", target_host="h1"), "h1", "host being drained"),
    ],
)
def test_preflight_refuses_bad_hosts(
    hosts: dict[str, str], goal: Goal, host: str | None, message: str
) -> None:
    with pytest.raises(StackferryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ops.preflight(FakeNova(hosts=hosts), "c", goal, host)


def test_preflight_refuses_credentials_the_policy_refuses() -> None:
    with pytest.raises(StackferryError, match="admin credentials") as info:
        ops.preflight(FakeNova(forbidden=True), "c1", Goal(leave_host="h1"), "h1")
    assert "HTTP 403" in str(info.value) and "os-migrate-server:migrate" in str(info.value)


def test_preflight_refuses_target_host_on_old_nova() -> None:
    nova = FakeNova()
    nova.supports_target_host = lambda: False  # type: ignore[method-assign]
    with pytest.raises(StackferryError, match=r"2\.56"):
        ops.preflight(nova, "c", Goal(target_host="h2"), None)


# ---- the command --------------------------------------------------------------------------------


@pytest.fixture
def fake_cloud(monkeypatch: pytest.MonkeyPatch) -> FakeNova:
    import stackferry.cli.servers as command

    nova = FakeNova(hosts={"h1": "", "h2": ""})
    monkeypatch.setattr(command, "connect", lambda cloud, counter, label: object())
    monkeypatch.setattr(command, "SdkNova", lambda conn: nova)
    nova.steps = 0  # each poll completes a step: the command's 2 s polls never wait
    return nova


def test_cli_drain_reports_and_exits_1_when_a_server_failed(
    fake_cloud: FakeNova, tmp_path: Path
) -> None:
    fake_cloud.add("ok")
    fake_cloud.add("refused")
    fake_cloud.no_valid_host.add("id-refused")
    report = tmp_path / "r" / "report.json"
    result = CliRunner().invoke(
        cli,
        ["hosts", "drain", "h1", "--cloud", "c", "--report", str(report), "-q"],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 1, result.output
    assert "1 confirmed, 1 failed" in result.output
    document = json.loads(report.read_text())
    assert document["summary"] == {"confirmed": 1, "failed": 1}
    assert {s["name"]: s["outcome"] for s in document["servers"]} == {
        "ok": "confirmed",
        "refused": "failed",
    }
    assert document["host"] == "h1" and "api_calls_by_method" in document
    assert oct(report.stat().st_mode & 0o777) == "0o600"


def test_cli_policy_refusal_exits_2_before_anything(fake_cloud: FakeNova) -> None:
    fake_cloud.add("vm")
    fake_cloud.forbidden = True
    result = CliRunner().invoke(cli, ["servers", "migrate", "vm", "--cloud", "c"])
    assert result.exit_code == 2
    assert "admin credentials" in result.output
    assert fake_cloud.calls == []


def test_cli_dry_run_writes_nothing(fake_cloud: FakeNova, tmp_path: Path) -> None:
    fake_cloud.add("vm")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli,
        ["hosts", "drain", "h1", "--cloud", "c", "--dry-run", "--report", str(report)],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "would migrate to scheduler's choice" in result.output
    assert fake_cloud.calls == [] and not report.exists()

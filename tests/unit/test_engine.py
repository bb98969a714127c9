"""The engine's planning and execution, on an in-memory cloud (kinds are tested on the lab)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from openstack import exceptions

from stackferry.engine.apply import Executor
from stackferry.engine.context import Context, Kept
from stackferry.engine.journal import Journal
from stackferry.engine.kind import Kind, Progressed, RefSpec
from stackferry.engine.model import Resource, identity_key
from stackferry.engine.plan import Adoption, Owners, Step, make_plan, read_destination
from stackferry.engine.read import read_cloud
from stackferry.engine.registry import Registry
from stackferry.errors import StackferryError
from tests.unit.fakes import Box, FakeCloud, FakeKind, Item, context


def box(name: str, size: int = 1, colour: str = "red") -> Resource:
    return Resource("box", {"name": name}, {"size": size, "colour": colour})


def item(box_name: str, name: str) -> Resource:
    return Resource("item", {"box": box_name, "name": name}, {"box": {"name": box_name}})


def plan_for(cloud: FakeCloud, desired: list[Resource], **kinds: Kind):
    registry = Registry(kinds.values() or [Box(cloud), Item(cloud)])
    ctx = context(cloud)
    current = read_destination(registry.ordered, ctx)
    by_kind: dict[str, list[Resource]] = {}
    for r in desired:
        by_kind.setdefault(r.kind, []).append(r)
    return registry, ctx, make_plan(registry, registry.ordered, by_kind, current, None)


def run(
    tmp_path: Path, cloud: FakeCloud, desired: list[Resource], parallel: int = 4, **kinds: Kind
):
    registry, ctx, plan = plan_for(cloud, desired, **kinds)
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start_run("apply")
    outcome = Executor(registry, ctx, journal, parallel).run(plan)
    return plan, outcome, journal


def test_registry_orders_by_references_and_refuses_cycles() -> None:
    cloud = FakeCloud()
    assert Registry([Item(cloud), Box(cloud)]).names == ["box", "item"]

    class A(Box):
        name, plural, refs = "a", "as", (RefSpec("b", "b"),)

    class B(Box):
        name, plural, refs = "b", "bs", (RefSpec("a", "a"),)

    with pytest.raises(StackferryError, match="cycle"):
        Registry([A(cloud), B(cloud)])


def test_plan_actions(tmp_path: Path) -> None:
    cloud = FakeCloud()
    cloud.add("box", {"name": "same"}, {"size": 1, "colour": "red"})
    cloud.add("box", {"name": "recolour"}, {"size": 1, "colour": "red"})
    cloud.add("box", {"name": "resize"}, {"size": 1, "colour": "red"})
    desired = [
        box("same"),
        box("recolour", colour="blue"),
        box("resize", size=2),
        box("new"),
        Resource("item", {"box": "nowhere", "name": "lost"}, {"box": {"name": "nowhere"}}),
    ]
    _, _, plan = plan_for(cloud, desired)
    actions = {s.resource.label: s.action for s in plan.steps}
    assert actions == {
        "same": "unchanged",
        "recolour": "update",
        "resize": "conflict",
        "new": "create",
        "nowhere/lost": "blocked",
    }
    update = next(s for s in plan.steps if s.action == "update")
    assert update.changes == {"colour": ("red", "blue")}
    blocked = next(s for s in plan.steps if s.action == "blocked")
    assert identity_key("box", {"name": "nowhere"}) in blocked.reason


def test_apply_creates_dependencies_first_then_rerun_writes_nothing(tmp_path: Path) -> None:
    cloud = FakeCloud()
    desired = [item("b1", "x"), item("b1", "y"), box("b1"), box("b2"), item("b2", "z")]
    _, outcome, journal = run(tmp_path, cloud, desired)
    assert not outcome.failed
    assert cloud.writes == 5 and len(cloud.objects) == 5
    assert {s.state for s in journal.steps()} == {"done"}
    cloud.writes = 0
    _, outcome, _ = run(tmp_path, cloud, desired)
    assert cloud.writes == 0
    assert set(outcome.state.values()) == {"unchanged"}


def test_failure_blocks_only_its_dependents(tmp_path: Path) -> None:
    cloud = FakeCloud()
    cloud.fail_create.add("bad")
    desired = [box("bad"), item("bad", "inside"), box("good"), item("good", "fine")]
    plan, outcome, journal = run(tmp_path, cloud, desired)
    assert outcome.failed
    states = {s.resource.label: outcome.state[s.key] for s in plan.steps}
    assert states == {"bad": "failed", "good": "done", "bad/inside": "blocked", "good/fine": "done"}
    assert "cannot create bad" in outcome.error[box("bad").key]
    recorded = {r.key: r.state for r in journal.steps()}
    assert recorded[item("bad", "inside").key] == "blocked"


def test_independent_resources_run_concurrently(tmp_path: Path) -> None:
    cloud = FakeCloud()
    barrier = threading.Barrier(4)  # each create waits until 4 are in flight at once
    desired = [box(f"b{i}") for i in range(8)]
    _, outcome, _ = run(tmp_path, cloud, desired, parallel=4, box=Box(cloud, barrier))
    assert set(outcome.state.values()) == {"done"}, outcome.error


def test_transient_error_after_create_does_not_duplicate(tmp_path: Path) -> None:
    cloud = FakeCloud()
    cloud.transient_once.add("flaky")
    _, outcome, _ = run(tmp_path, cloud, [box("flaky")])
    assert outcome.state[box("flaky").key] == "done"
    assert [o["identity"] for _, o in cloud.of_kind("box")] == [{"name": "flaky"}]


def test_prune_deletes_only_inside_migrated_parents(tmp_path: Path) -> None:
    cloud = FakeCloud()
    b1 = cloud.add("box", {"name": "b1"}, {"size": 1, "colour": "red"})
    cloud.add("box", {"name": "other"}, {"size": 1, "colour": "red"})
    cloud.add("item", {"box": "b1", "name": "stray"}, {"box": {"name": "b1"}})
    cloud.add("item", {"box": "other", "name": "kept"}, {"box": {"name": "other"}})
    del b1
    plan, _, _ = run(tmp_path, cloud, [box("b1"), item("b1", "wanted")])
    deleted = [s.resource.label for s in plan.steps if s.action == "delete"]
    assert deleted == ["b1/stray"]
    names = sorted(o["identity"]["name"] for _, o in cloud.of_kind("item"))
    assert names == ["kept", "wanted"]


def test_journal_reports_steps_left_running(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.start_run("apply")
    journal.step_started("box:a", "box", "create", "src-1")
    journal.close()  # the process "died" here
    again = Journal(tmp_path / "j.sqlite")
    again.start_run("apply")
    left = again.interrupted()
    assert [(r.key, r.action, r.state) for r in left] == [("box:a", "create", "running")]
    assert oct((tmp_path / "j.sqlite").stat().st_mode & 0o777) == "0o600"


def test_only_brings_the_tenant_along_and_skip_removes_it() -> None:
    from stackferry.kinds.catalog import registry

    reg = registry()
    assert [k.name for k in reg.select(["networks"]) if not getattr(k, "lookup_only", False)] == [
        "domain",
        "project",
        "network",
    ]
    chosen = [k.name for k in reg.select(["networks"], ["projects"])]
    assert "project" not in chosen and "network" in chosen
    with pytest.raises(StackferryError, match="unknown kind"):
        reg.select(["netwerks"])


def test_a_volume_waits_for_its_image_only_when_the_plan_makes_that_image() -> None:
    from stackferry.kinds.image import Image
    from stackferry.kinds.volume import Volume

    registry = Registry([Image(), Volume()])
    data = {"size": 1, "checksum": "m", "os_hash_algo": "sha512", "os_hash_value": "h"}
    image = Resource("image", {"name": "cirros"}, {"visibility": "private", "data": data})
    volume = Resource(
        "volume", {"name": "boot"}, {"size": 1, "image_metadata": {"image_name": "cirros"}}
    )
    both = make_plan(registry, registry.ordered, {"image": [image], "volume": [volume]}, {}, None)
    step = next(s for s in both.steps if s.resource.kind == "volume")
    assert step.needs == [image.key] and step.action == "create"
    alone = make_plan(registry, registry.ordered, {"volume": [volume]}, {}, None)
    assert [(s.action, s.needs) for s in alone.steps] == [("create", [])]


# --- what stackferry did not make ----------------------------------------------------------


def _owners(**kw: object) -> Owners:
    return Owners(**kw)  # type: ignore[arg-type]


def _plan_with(cloud: FakeCloud, desired: list[Resource], owners: Owners) -> dict[str, Step]:
    registry = Registry([Box(cloud), Item(cloud)])
    ctx = context(cloud)
    current = read_destination(registry.ordered, ctx)
    by_kind: dict[str, list[Resource]] = {}
    for r in desired:
        by_kind.setdefault(r.kind, []).append(r)
    plan = make_plan(registry, registry.ordered, by_kind, current, None, owners)
    return {s.resource.label: s for s in plan.steps}


def test_what_stackferry_did_not_make_is_a_conflict_unless_the_journal_or_operator_owns_it() -> (
    None
):
    cloud = FakeCloud()
    cloud.add("box", {"name": "theirs"}, {"size": 1, "colour": "red"}, ours=False)
    cloud.add("box", {"name": "same"}, {"size": 1, "colour": "red"}, ours=False)
    cloud.add("box", {"name": "marked"}, {"size": 1, "colour": "red"})
    desired = [box("theirs", colour="blue"), box("same"), box("marked", colour="blue")]

    steps = _plan_with(cloud, desired, _owners())
    assert steps["theirs"].action == "conflict"
    assert "stackferry did not make it" in steps["theirs"].reason
    assert "--adopt box:'theirs'" in steps["theirs"].reason
    assert steps["same"].action == "unchanged"  # nothing to change: nothing taken over
    assert steps["marked"].action == "update"  # our marker is on it

    journal = {box("theirs").key}  # a run of this workdir started its create
    assert _plan_with(cloud, desired, _owners(journal=journal))["theirs"].action == "update"
    registry = Registry([Box(cloud), Item(cloud)])
    adopt = Adoption.parse(registry, ["boxes:th*"])
    assert _plan_with(cloud, desired, _owners(adopt=adopt))["theirs"].action == "update"
    with pytest.raises(StackferryError, match="unknown kind"):
        Adoption.parse(registry, ["crates"])


def test_parts_of_a_parent_stackferry_did_not_make_are_neither_added_nor_pruned() -> None:
    cloud = FakeCloud()
    cloud.add("box", {"name": "theirs"}, {"size": 1, "colour": "red"}, ours=False)
    cloud.add("item", {"box": "theirs", "name": "their-rule"}, {"box": {"name": "theirs"}})
    desired = [box("theirs"), item("theirs", "wanted")]

    steps = _plan_with(cloud, desired, _owners())
    assert steps["theirs"].action == "conflict"
    assert "1 to add, 1 the source lacks" in steps["theirs"].reason
    assert steps["theirs/wanted"].action == "blocked"
    assert "their-rule" not in " ".join(k for k, s in steps.items() if s.action == "delete")

    adopted = _plan_with(cloud, desired, _owners(journal={box("theirs").key}))
    assert adopted["theirs"].action == "unchanged"
    assert adopted["theirs/wanted"].action == "create"
    assert adopted["theirs/their-rule"].action == "delete"


def test_apply_refuses_a_plan_with_problems_unless_partial(tmp_path: Path) -> None:
    from stackferry.engine.run import PlanRefused, refuse_problems

    cloud = FakeCloud()
    cloud.add("box", {"name": "theirs"}, {"size": 1, "colour": "red"}, ours=False)
    registry = Registry([Box(cloud), Item(cloud)])
    current = read_destination(registry.ordered, context(cloud))
    desired = {"box": [box("theirs", colour="blue"), box("new")], "item": [item("ghost", "x")]}
    plan = make_plan(registry, registry.ordered, desired, current, None)
    with pytest.raises(PlanRefused, match="1 conflict, 1 blocked"):
        refuse_problems(plan, partial=False)
    refuse_problems(plan, partial=True)  # then apply does the rest and reports these


def test_a_create_whose_answer_was_lost_is_converged_once_found(tmp_path: Path) -> None:
    """The engine looks before trying again, and hands what it found to converge()."""
    cloud = FakeCloud()
    cloud.transient_once.add("flaky")
    converged: list[bool] = []

    class Watched(Box):
        def converge(self, ctx, resource, current, made_here):
            converged.append(made_here)
            return super().converge(ctx, resource, current, made_here)

    _, outcome, _ = run(tmp_path, cloud, [box("flaky")], box=Watched(cloud), item=Item(cloud))
    assert outcome.state[box("flaky").key] == "done"
    assert converged == [True] and len(cloud.of_kind("box")) == 1


def test_a_look_that_fails_transiently_after_a_lost_answer_is_tried_again(tmp_path: Path) -> None:
    """The read that looks for what a lost write made is part of the retried attempt: a 503
    to it (a fault, or a concurrent step's temporary vanishing under it) is not the step's
    end. Before, the look ran outside the try, and the step failed though the box was made."""
    cloud = FakeCloud()
    cloud.transient_once.add("flaky")
    reads: list[int] = []

    class FlakyLook(Box):
        def read(self, ctx):
            reads.append(1)
            if len(reads) == 2:  # the plan's read is the first; the look after the 503 next
                raise exceptions.HttpException(message="503 on the look", http_status=503)
            return super().read(ctx)

    _, outcome, _ = run(tmp_path, cloud, [box("flaky")], box=FlakyLook(cloud), item=Item(cloud))
    assert outcome.state[box("flaky").key] == "done", outcome.error
    assert len(reads) >= 3 and len(cloud.of_kind("box")) == 1


def test_a_step_that_progressed_is_not_a_failure_but_what_needs_it_waits(tmp_path: Path) -> None:
    """A warm pass moves a resource forward without completing it: the step says how far,
    the run does not fail, and what references it is blocked, not made on a half thing."""

    class Warm(Box):
        def create(self, ctx, resource):
            raise Progressed("warm pass 1: 42 bytes sent")

    cloud = FakeCloud()
    _, outcome, journal = run(
        tmp_path, cloud, [box("b"), item("b", "i")], box=Warm(cloud), item=Item(cloud)
    )
    assert outcome.state[box("b").key] == "progressed"
    assert outcome.error[box("b").key] == "warm pass 1: 42 bytes sent"
    assert outcome.state[item("b", "i").key] == "waiting" and not outcome.failed
    assert "not complete yet" in outcome.error[item("b", "i").key]
    assert [r.state for r in journal.steps() if r.key == box("b").key] == ["progressed"]


def test_what_a_kind_keeps_between_runs_is_in_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    kept = Kept(journal=journal)
    kept.put("rbd-sync:v-1", {"base": "s1", "passes": 1})
    assert Kept(Journal.kept_at(tmp_path / "journal.sqlite")).get("rbd-sync:v-1") == {
        "base": "s1",
        "passes": 1,
    }
    with pytest.raises(RuntimeError):
        Kept({}).put("x", {})  # plan reads, never writes
    kept.put("rbd-sync:v-1", None)
    assert kept.get("rbd-sync:v-1") is None and Journal.kept_at(tmp_path / "nothing") == {}


def test_temporaries_recorded_under_an_id_a_step_reported_done_are_kept(tmp_path: Path) -> None:
    from stackferry.engine.temporaries import UNDO, Temporaries

    journal = Journal(tmp_path / "journal.sqlite")
    temporaries = Temporaries(journal, {"destination": object()})  # type: ignore[dict-item]
    temporaries.record("image:a", "image a until verified", "image_id", {"id": "a"})
    temporaries.record("image:b", "image b until verified", "image_id", {"id": "b"})
    removed: list[str] = []
    temporaries.release({"a"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(UNDO, "image_id", lambda conn, spec: removed.append(spec["id"]))
        temporaries.clean()
    assert removed == ["b"]


def test_only_and_skip_of_the_same_kind_is_refused() -> None:
    from stackferry.kinds.catalog import registry

    with pytest.raises(StackferryError, match="both --only and --skip"):
        registry().select(["networks"], ["network"])


def test_replace_is_a_plan_action_for_what_stackferry_made_and_apply_carries_it_out(
    tmp_path: Path,
) -> None:
    class Disc(Box):
        name, plural = "disc", "discs"
        replaceable = frozenset({"size"})

    cloud = FakeCloud()
    cloud.add("disc", {"name": "ours"}, {"size": 1, "colour": "red"})
    cloud.add("disc", {"name": "theirs"}, {"size": 1, "colour": "red"}, ours=False)
    desired = [
        Resource("disc", {"name": "ours"}, {"size": 2, "colour": "red"}),
        Resource("disc", {"name": "theirs"}, {"size": 2, "colour": "red"}),
    ]
    plan, outcome, _ = run(tmp_path, cloud, desired, disc=Disc(cloud))
    actions = {s.resource.label: s.action for s in plan.steps}
    assert actions == {"ours": "replace", "theirs": "conflict"}
    assert "deleted and made again" in plan.steps[0].reason
    assert outcome.state[desired[0].key] == "done"
    sizes = {o["identity"]["name"]: o["params"]["size"] for _, o in cloud.of_kind("disc")}
    assert sizes == {"ours": 2, "theirs": 1}  # made again; theirs untouched
    assert len(cloud.of_kind("disc")) == 2


def test_claims_take_what_a_kind_owns_out_of_another_kinds_read() -> None:

    class Case(Box):
        name, plural = "case", "cases"
        claims = ("box",)

        def claimed(self, resource: Resource) -> set[str]:
            return set(resource.params.get("holds", []))

    cloud = FakeCloud()
    inside = cloud.add("box", {"name": "inside"}, {"size": 1})
    cloud.add("box", {"name": "loose"}, {"size": 1})
    cloud.add("case", {"name": "c"}, {"holds": [inside]})
    found = read_cloud([Box(cloud), Case(cloud)], context(cloud))
    assert [r.identity["name"] for r in found["box"]] == ["loose"]


def test_a_kind_whose_optional_service_the_cloud_lacks_is_left_out_with_a_note() -> None:

    class NoServices:
        def has_service(self, service: str) -> bool:
            return False

    class Disc(Box):
        name, plural = "disc", "discs"
        service = "image"
        optional_service = True

    class Tape(Box):
        name, plural = "tape", "tapes"
        service = "block-storage"

    cloud = FakeCloud()
    ctx = context(cloud)
    ctx.conn = NoServices()  # type: ignore[assignment]
    found = read_cloud([Disc(cloud)], ctx)
    assert found == {"disc": []} and "no image service" in ctx.notes[0]
    with pytest.raises(StackferryError, match=r"no block-storage service.*--skip tapes"):
        read_cloud([Tape(cloud)], ctx)


def test_a_resource_still_building_is_waited_for_before_it_is_changed(tmp_path: Path) -> None:
    cloud = FakeCloud()
    made = cloud.add("box", {"name": "b"}, {"size": 1, "colour": "red", "building": 2})

    class Slow(Box):
        def ready(self, current: Resource) -> bool:
            return not current.params.get("building")

        def read(self, ctx):
            found = super().read(ctx)
            obj = self.cloud.objects[made]["params"]
            if obj.get("building"):
                obj["building"] -= 1  # it settles after two looks
            return found

        def changed_fields(self, desired, current):
            current = {k: v for k, v in current.items() if k != "building"}
            return super().changed_fields(desired, current)

    desired = [Resource("box", {"name": "b"}, {"size": 1, "colour": "blue"})]
    _, outcome, _ = run(tmp_path, cloud, desired, box=Slow(cloud), item=Item(cloud))
    assert outcome.state[desired[0].key] == "done"
    assert cloud.objects[made]["params"]["colour"] == "blue"
    assert "building" not in cloud.objects[made]["params"]  # updated only once it settled


class Crate(FakeKind):
    name = "crate"
    plural = "crates"
    params_schema = Box.params_schema


def test_kinds_are_read_at_once_each_after_what_it_references() -> None:
    """Box and Crate reference nothing: both reads must be under way at the same time (the
    barrier waits for two); Item references boxes: it is read once the boxes' IDs are known."""
    cloud = FakeCloud()
    box_id = cloud.add("box", {"name": "b"}, {"size": 1})
    cloud.add("crate", {"name": "c"}, {"size": 2})
    cloud.add("item", {"box": {"name": "b"}, "name": "i"}, {"box": {"name": "b"}})
    meeting = threading.Barrier(2)
    seen: list[str | None] = []

    class MeetingBox(Box):
        def read(self, ctx: Context) -> list[Resource]:
            meeting.wait(timeout=5)  # raises BrokenBarrierError if read alone
            return super().read(ctx)

    class MeetingCrate(Crate):
        def read(self, ctx: Context) -> list[Resource]:
            meeting.wait(timeout=5)
            return super().read(ctx)

    class CheckedItem(Item):
        def read(self, ctx: Context) -> list[Resource]:
            seen.append(ctx.ids.id("box", {"name": "b"}))
            return super().read(ctx)

    kinds: list[Kind] = [MeetingBox(cloud), MeetingCrate(cloud), CheckedItem(cloud)]
    found = read_cloud(kinds, context(cloud))
    assert seen == [box_id]
    assert list(found) == ["box", "crate", "item"]  # in the kinds' order, whatever finished first
    assert [len(v) for v in found.values()] == [1, 1, 1]


def test_a_read_that_fails_fails_the_whole_read() -> None:
    cloud = FakeCloud()

    class Broken(Crate):
        def read(self, ctx: Context) -> list[Resource]:
            raise LookupError("network n-1 is outside the tenant")

    with pytest.raises(StackferryError, match="reading crates in the cloud: network n-1"):
        read_cloud([Box(cloud), Broken(cloud), Item(cloud)], context(cloud))


class BulkItem(Item):
    """Items neutron-style: many in one call, all or nothing."""

    bulk_size = 3
    calls: list[int]
    boxes: list[set[str]]
    lose_answer = False  # the call makes them all, then its answer is lost
    refuse = False  # the call makes nothing

    def bulk_group(self, resource: Resource) -> str:
        return str(resource.identity["box"])  # as neutron: one group's rules a call

    def create_many(self, ctx: Context, resources: list[Resource]) -> list[str]:
        self.boxes.append({r.identity["box"] for r in resources})
        self.calls.append(len(resources))
        if self.refuse:
            raise exceptions.ConflictException(message="409: one of them exists")
        self.cloud.writes += 1
        ids = [self.cloud.add(self.name, r.identity, dict(r.params)) for r in resources]
        if self.lose_answer:
            raise exceptions.HttpException(message="502 after the POST", http_status=502)
        return ids


def _bulk(cloud: FakeCloud, **settings: bool) -> BulkItem:
    kind = BulkItem(cloud)
    kind.calls, kind.boxes = [], []
    for name, value in settings.items():
        setattr(kind, name, value)
    return kind


def test_creates_of_a_bulk_kind_ready_together_go_in_calls_of_its_size(tmp_path: Path) -> None:
    cloud = FakeCloud()
    items = _bulk(cloud)
    desired = [box("b"), *(item("b", f"i{n}") for n in range(5))]
    _, outcome, _ = run(tmp_path, cloud, desired, box=Box(cloud), item=items)
    assert not outcome.failed and set(outcome.state.values()) == {"done"}
    assert sorted(items.calls) == [2, 3]  # five items, batches of three: two calls
    assert len(cloud.of_kind("item")) == 5


def test_a_bulk_create_whose_answer_is_lost_converges_without_duplicates(tmp_path: Path) -> None:
    """The POST made them all and its answer was lost: each is looked for and found, none
    is made twice, all are done in the same run, and a re-run has nothing to do."""
    cloud = FakeCloud()
    items = _bulk(cloud, lose_answer=True)
    desired = [box("b"), *(item("b", f"i{n}") for n in range(3))]
    _, outcome, _ = run(tmp_path, cloud, desired, box=Box(cloud), item=items)
    assert not outcome.failed and set(outcome.state.values()) == {"done"}
    assert items.calls == [3]
    assert sorted(o["identity"]["name"] for _, o in cloud.of_kind("item")) == ["i0", "i1", "i2"]
    found = {i for i, _ in cloud.of_kind("item")}
    assert {outcome.destination_id[r.key] for r in desired[1:]} == found
    cloud.writes = 0
    _, again, _ = run(tmp_path, cloud, desired, box=Box(cloud), item=_bulk(cloud))
    assert set(again.state.values()) == {"unchanged"} and cloud.writes == 0


def test_a_refused_bulk_create_is_carried_out_one_by_one(tmp_path: Path) -> None:
    cloud = FakeCloud()
    items = _bulk(cloud, refuse=True)
    desired = [box("b"), *(item("b", f"i{n}") for n in range(3))]
    _, outcome, _ = run(tmp_path, cloud, desired, box=Box(cloud), item=items)
    assert not outcome.failed and set(outcome.state.values()) == {"done"}
    assert items.calls == [3] and len(cloud.of_kind("item")) == 3  # made by create(), singly


def test_bulk_creates_go_together_only_within_their_group(tmp_path: Path) -> None:
    cloud = FakeCloud()
    for name in "ab":  # there already: all four items are ready at once
        cloud.add("box", {"name": name}, {"size": 1, "colour": "red"})
    items = _bulk(cloud)
    desired = [box("a"), box("b"), *(item(b, f"i{n}") for b in "ab" for n in range(2))]
    _, outcome, _ = run(tmp_path, cloud, desired, box=Box(cloud), item=items)
    assert not outcome.failed and len(cloud.of_kind("item")) == 4
    assert sorted(map(sorted, items.boxes)) == [["a"], ["b"]]  # one call a box, never mixed

"""The engine's planning and execution, on an in-memory cloud (kinds are tested on the lab)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stackferry.engine.apply import Executor
from stackferry.engine.errors import StackferryError
from stackferry.engine.journal import Journal
from stackferry.engine.model import Resource, identity_key
from stackferry.engine.plan import make_plan, read_destination
from stackferry.engine.registry import Registry
from stackferry.kinds.base import Kind, RefSpec
from tests.unit.fakes import Box, FakeCloud, Item, context


def box(name: str, size: int = 1, colour: str = "red") -> Resource:
    return Resource("box", {"name": name}, {"size": size, "colour": colour})


def item(box_name: str, name: str) -> Resource:
    return Resource("item", {"box": box_name, "name": name}, {"box": {"name": box_name}})


def plan_for(cloud: FakeCloud, desired: list[Resource], **kinds: Kind):
    registry = Registry(kinds.values() or [Box(cloud), Item(cloud)])
    ctx = context(cloud)
    current = read_destination(registry, registry.ordered, ctx)
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

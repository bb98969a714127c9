"""Finishing a migration, on in-memory clouds: the order of a retirement, what it selects,
the refusal when verify is not equal, what --dry-run leaves alone, and what the journal
knows once the markers are gone. (The kinds' own unmark and delete run on the lab.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from openstack import exceptions

from stackferry.cli import finish as finish_cli
from stackferry.cli.common import explain
from stackferry.cli.main import cli
from stackferry.engine import finish
from stackferry.engine.context import Context, Tenant
from stackferry.engine.journal import Journal
from stackferry.engine.kind import Kind, RefSpec
from stackferry.engine.model import Resource
from stackferry.engine.plan import Owners, make_plan, read_destination
from stackferry.engine.registry import Registry
from stackferry.engine.run import Difference, Verification
from stackferry.engine.workdir import Workdir
from stackferry.kinds.catalog import registry as product_registry
from stackferry.kinds.neutron import NeutronKind
from tests.unit.fakes import ConnKind, FakeCloud


class Crate(ConnKind):
    name, plural = "crate", "crates"
    retire = True

    def retirable(self, resource: Resource) -> str:
        return "shared with others" if resource.params.get("shared") else ""


class Label(ConnKind):
    """Parts of a crate (``prune_within``), as rules are of a group."""

    name, plural = "label", "labels"
    identity_fields = ("crate", "name")
    refs = (RefSpec("crate", "crate"),)
    prune_within = "crate"
    retire = True


class Folder(ConnKind):
    """Folders in folders: within the kind, a child goes before its parent."""

    name, plural = "folder", "folders"
    refs = (RefSpec("parent", "folder"),)
    retire = True


class Badge(ConnKind):
    """Never retired (an identity thing, say)."""

    name, plural = "badge", "badges"
    kept_because = "badges are everyone's"


def kinds() -> Registry:
    return Registry([Crate(), Label(), Folder(), Badge()])


def res(kind: str, name: str, cloud_id: str | None = None, **params: Any) -> Resource:
    identity: dict[str, Any] = {"name": name}
    if kind == "label":
        identity = {"crate": params["crate"]["name"], "name": name}
    return Resource(kind, identity, params, {"id": cloud_id} if cloud_id else {})


def ctx_of(cloud: FakeCloud) -> Context:
    return Context(conn=cloud, tenant=Tenant("t", "d"))  # type: ignore[arg-type]


def test_a_retirement_goes_in_reverse_dependency_order_children_before_parents() -> None:
    reg = kinds()
    assert reg.names.index("crate") < reg.names.index("label")
    crate = res("crate", "c", "1")
    label = res("label", "l", "2", crate={"name": "c"})
    root = res("folder", "root", "3", parent=None)
    middle = res("folder", "middle", "4", parent={"name": "root"})
    leaf = res("folder", "leaf", "5", parent={"name": "middle"})
    ordered = finish.deletion_order(reg, [crate, root, middle, label, leaf])
    labels = [r.label for r in ordered]
    assert labels.index("c/l") < labels.index("c")  # the part before what it is in
    assert labels.index("leaf") < labels.index("middle") < labels.index("root")


def test_the_product_retires_the_tenants_things_and_keeps_shared_and_identity_ones() -> None:
    reg = product_registry()
    retired = {k.name for k in reg.ordered if k.retire}
    assert retired == {
        "server_group", "qos_policy", "address_group", "security_group", "image",
        "role_assignment", "keypair", "network", "security_group_rule", "volume", "subnet",
        "router", "port", "floating_ip", "server",
    }  # fmt: skip
    for kind in reg.ordered:
        if not kind.retire and not kind.lookup_only:
            assert kind.kept_because != Kind.kept_because, f"{kind.name} says why it stays"
    order = [k.name for k in reversed(reg.ordered)]
    # a server before its ports, a router (its interfaces) before the subnets, rules before
    # their groups, subnets before their network
    assert order.index("server") < order.index("port") < order.index("subnet")
    assert order.index("router") < order.index("subnet") < order.index("network")
    assert order.index("security_group_rule") < order.index("security_group")


def test_a_kind_that_retires_needs_delete_and_a_marker_needs_unmark() -> None:
    with pytest.raises(TypeError, match="retire needs delete"):

        class NoDelete(Kind):
            name, plural, retire = "nodelete", "nodeletes", True

    with pytest.raises(TypeError, match=r"marked\(\) and unmark\(\) go together"):

        class HalfMarked(Kind):
            name, plural = "half", "halves"

            def marked(self, current: Resource) -> bool:
                return True

    with pytest.raises(TypeError, match="names its collection"):

        class Untagged(NeutronKind):
            name, plural, sdk_name = "untagged", "untaggeds", "untagged"


def test_only_the_workdirs_resources_of_retiring_kinds_are_selected() -> None:
    reg = kinds()
    workdir = {
        "crate": [res("crate", "a", "s1"), res("crate", "b", "s2"), res("crate", "gone", "s9")],
        "badge": [res("badge", "x", "s3")],
        "folder": [res("folder", "again", "s4", parent=None), res("folder", "f", "s6")],
    }
    live = {
        "crate": [
            res("crate", "a", "s1"),
            res("crate", "b", "s2", shared=True),  # the kind keeps it now
            res("crate", "new", "s5"),  # made after the export: not the migration's
        ],
        "badge": [res("badge", "x", "s3")],
        "folder": [res("folder", "again", "s7", parent=None), res("folder", "f", "s6")],
    }
    plan = finish.plan_retirement(reg, reg.ordered, workdir, live)
    assert [r.label for r in plan.delete] == ["f", "a"]
    left = {r.label: why for r, why in plan.left}
    assert left["b"] == "shared with others"
    assert left["x"] == "badges are everyone's"
    assert "made again since the export" in left["again"]  # same name, another ID
    assert "new" not in left and "gone" not in left
    only_folders = finish.plan_retirement(reg, [reg["folder"]], workdir, live)
    assert [r.label for r in only_folders.delete] == ["f"]


def test_what_retire_source_compares_is_the_live_source_within_the_workdir() -> None:
    reg = kinds()
    workdir = {
        "crate": [res("crate", "a", "s1", size=1), res("crate", "half", "s2", size=1)],
        "label": [],
        "folder": [res("folder", "deleted", "s3")],
    }
    live = {
        "crate": [
            res("crate", "a", "s1", size=2),  # changed since the export: compared as it is
            res("crate", "half", "s2", size=0),  # its retirement started: as exported
            res("crate", "other", "s4"),
        ],
        "label": [
            res("label", "added", "s5", crate={"name": "a"}),  # inside a migrated crate
            res("label", "elsewhere", "s6", crate={"name": "other"}),
        ],
        "folder": [],
    }
    view = finish.verified_source(reg, workdir, live, {res("crate", "half").key})
    assert {r.label: r.params.get("size") for r in view["crate"]} == {"a": 2, "half": 1}
    assert [r.label for r in view["label"]] == ["a/added"]
    assert [r.label for r in view["folder"]] == ["deleted"]  # no longer in the source


def _verification(problem: str) -> Verification:
    return Verification([Difference("crate", {"name": "a"}, problem)], 3, [])


def test_finishing_is_refused_unless_verify_is_equal(tmp_path: Path) -> None:
    finish.refuse_unless_equal(_verification("extra"), None, "changed")  # extras: equal
    report = tmp_path / "reports" / "verify-1.json"
    with pytest.raises(finish.FinishRefused) as refused:
        finish.refuse_unless_equal(_verification("different"), report, "deleted")
    message, code = explain(refused.value)
    assert code == 2  # nothing was attempted, as for a plan with problems
    assert "1 difference(s)" in message and str(report) in message
    assert "nothing was deleted" in message


def test_the_journal_owns_what_lost_its_marker_so_a_later_plan_does_not_conflict(
    tmp_path: Path,
) -> None:
    """Made by a run whose journal was lost (the marker alone said so), then unmarked by
    finish: a later plan updates it and creates nothing; verify's matches only are touched."""
    dst, reg = FakeCloud(), kinds()
    dst.add("crate", {"name": "a"}, {"size": 1})
    dst.add("crate", {"name": "theirs"}, {"size": 1})  # marked, but not the workdir's
    ctx = ctx_of(dst)
    found = {"crate": Crate().read(ctx)}
    result = Verification([], 1, [{"kind": "crate", "identity": {"name": "a"}}])
    state = Journal.finish_state_at(tmp_path / "journal.sqlite")
    plan = finish.plan_finish(reg, result, found, state)
    assert [r.label for r in plan.markers] == ["a"]
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start_run("finish")
    done = finish.finish_destination(reg, plan, ctx, journal, {"destination": dst})  # type: ignore[dict-item]
    assert done.complete and [r.label for r in done.unmarked] == ["a"]
    assert [o["ours"] for _, o in dst.of_kind("crate")] == [False, True]
    desired = {"crate": [res("crate", "a", size=2)]}
    current = read_destination(reg.ordered, ctx)
    (step,) = make_plan(reg, reg.ordered, desired, current, None, Owners()).steps
    assert step.action == "conflict"  # nothing on it says it is stackferry's any more
    owners = Owners(Journal.owned_at(tmp_path / "journal.sqlite"))
    (step,) = make_plan(reg, reg.ordered, desired, current, None, owners).steps
    assert step.action == "update"  # the journal does
    finishes = Journal.finish_state_at(tmp_path / "journal.sqlite").finishes
    assert [(f.command, f.removed["markers"]) for f in finishes] == [("finish", ["crate a"])]


def test_each_deletion_is_journalled_before_it_is_made_and_a_refusal_does_not_stop_the_rest(
    tmp_path: Path,
) -> None:
    src, reg = FakeCloud(), kinds()
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.start_run("retire-source")
    seen: list[str] = []

    class Watched(Crate):
        name, plural = "crate", "crates"

        def delete(self, ctx: Context, current: Resource) -> None:
            db = sqlite3.connect(path)
            (state,) = db.execute(
                "SELECT state FROM retired WHERE key = ?", (current.key,)
            ).fetchone()
            seen.append(f"{current.label}:{state}")
            if current.label == "busy":
                raise exceptions.ConflictException(message="in use", http_status=409)
            super().delete(ctx, current)

    reg = Registry([Watched(), Label(), Folder(), Badge()])
    ids = {name: src.add("crate", {"name": name}, {}) for name in ("a", "busy", "c")}
    delete = [Resource("crate", {"name": n}, {}, {"id": ids[n]}) for n in ("a", "busy", "c")]
    delete.append(Resource("crate", {"name": "gone"}, {}, {"id": "id-404"}))
    done = finish.retire(reg, finish.Retirement(delete, []), ctx_of(src), journal)
    assert seen == ["a:deleting", "busy:deleting", "c:deleting", "gone:deleting"]
    assert [r.label for r in done.deleted] == ["a", "c"] and [r.label for r in done.gone] == [
        "gone"
    ]
    assert [(r.label, "in use" in why) for r, why in done.failed] == [("busy", True)]
    assert [o["identity"]["name"] for _, o in src.of_kind("crate")] == ["busy"]
    state = Journal.finish_state_at(path)
    assert state.retired == {r.key for r in delete} - {delete[1].key}
    assert state.retiring == {r.key for r in delete}
    assert state.finishes == []  # a retirement with a failure is not the source's finish


# --- the command, on two in-memory clouds -------------------------------------------------


@pytest.fixture
def two_clouds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A source and a destination with the same crates and labels (the destination's marked),
    a workdir exported from the source, and `finish` wired to them."""
    reg = kinds()
    clouds = {"src": FakeCloud(), "dst": FakeCloud()}
    for name, cloud in clouds.items():
        ours = name == "dst"
        cloud.add("crate", {"name": "a"}, {"size": 1}, ours=ours)
        cloud.add("crate", {"name": "b"}, {"size": 2}, ours=ours)
        cloud.add("label", {"crate": "a", "name": "l"}, {"crate": {"name": "a"}}, ours=ours)
        cloud.add("badge", {"name": "x"}, {}, ours=False)
    workdir = tmp_path / "work"
    wd = Workdir(workdir)
    src_ctx = ctx_of(clouds["src"])
    wd.resources = {k.name: k.read(src_ctx) for k in reg.ordered}
    wd.save(reg, Tenant("t", "d"), "src", reg.ordered)
    connected: list[str] = []

    def connect(name: str, *args: Any) -> FakeCloud:
        connected.append(name)
        return clouds[name]

    monkeypatch.setattr(finish_cli, "make_registry", lambda: reg)
    monkeypatch.setattr(finish_cli, "connect", connect)
    return {"clouds": clouds, "workdir": workdir, "connected": connected}


def _finish(workdir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["finish", "--dst", "dst", "--workdir", str(workdir), *args], env={"COLUMNS": "200"}
    )


def _state(cloud: FakeCloud) -> list[tuple[str, bool]]:
    return sorted((f"{o['kind']} {o['identity']}", o["ours"]) for o in cloud.objects.values())


def test_dry_runs_change_nothing_and_write_nothing(two_clouds: dict[str, Any]) -> None:
    src, dst = two_clouds["clouds"]["src"], two_clouds["clouds"]["dst"]
    workdir: Path = two_clouds["workdir"]
    files = sorted(p.name for p in workdir.rglob("*"))
    before = (_state(src), _state(dst))
    dry = _finish(workdir, "--dry-run", "-v")
    assert dry.exit_code == 0, dry.output
    assert "marker   crate a" in dry.output and "marker   label a/l" in dry.output
    assert "marker   badge" not in dry.output  # not marked: nothing to take off
    retire = _finish(workdir, "--retire-source", "--src", "src", "--dry-run", "-v")
    assert retire.exit_code == 0, retire.output
    assert "delete   label a/l" in retire.output and "leave    badge x" in retire.output
    assert retire.output.index("delete   label a/l") < retire.output.index("delete   crate a")
    assert (src.writes, dst.writes) == (0, 0)
    assert (_state(src), _state(dst)) == before
    assert sorted(p.name for p in workdir.rglob("*")) == files  # no journal, no report


def test_finish_refuses_when_not_equal_then_finishes_then_retires_only_the_workdirs(
    two_clouds: dict[str, Any],
) -> None:
    src, dst = two_clouds["clouds"]["src"], two_clouds["clouds"]["dst"]
    workdir: Path = two_clouds["workdir"]
    b = next(i for i, o in dst.of_kind("crate") if o["identity"]["name"] == "b")
    dst.objects[b]["params"] = {"size": 3}
    for args in ((), ("--retire-source", "--src", "src", "--yes")):
        refused = _finish(workdir, *args)
        assert refused.exit_code == 2, refused.output
        assert "verify found 1 difference(s)" in refused.output
        assert "verify report" in refused.output
    assert (src.writes, dst.writes) == (0, 0)
    assert not Journal.owned_at(workdir / "journal.sqlite")
    dst.objects[b]["params"] = {"size": 2}

    done = _finish(workdir)
    assert done.exit_code == 0, done.output
    assert not any(o["ours"] for o in dst.objects.values())
    again = _finish(workdir)
    assert again.exit_code == 0 and "nothing to remove" in again.output
    assert "was finished at" in again.output and dst.writes == 3

    late = src.add("crate", {"name": "late"}, {"size": 9})  # made after the export
    src.add("label", {"crate": "b", "name": "new"}, {"crate": {"name": "b"}})  # inside b
    refused = _finish(workdir, "--retire-source", "--src", "src", "--yes")
    assert refused.exit_code == 2 and "1 difference(s)" in refused.output  # b would take it
    del src.objects[next(i for i, o in src.of_kind("label") if o["identity"]["name"] == "new")]

    retired = _finish(workdir, "--retire-source", "--src", "src", "--yes")
    assert retired.exit_code == 0, retired.output
    assert sorted(o["identity"]["name"] for o in src.objects.values()) == ["late", "x"]
    assert late in src.objects and dst.writes == 3  # the destination untouched
    rerun = _finish(workdir, "--retire-source", "--src", "src", "--yes")
    assert rerun.exit_code == 0 and "nothing to delete" in rerun.output


def test_retire_source_without_a_terminal_needs_yes_and_asks_no_cloud(
    two_clouds: dict[str, Any],
) -> None:
    result = _finish(two_clouds["workdir"], "--retire-source", "--src", "src")
    assert result.exit_code == 2 and "give --yes" in result.output
    assert two_clouds["connected"] == []
    result = _finish(two_clouds["workdir"], "--retire-source")
    assert result.exit_code == 2 and "--retire-source needs --src" in result.output


def test_finish_takes_the_options_verify_takes() -> None:
    def options(name: str) -> set[str]:
        return {o for p in cli.commands[name].params for o in p.opts}

    assert options("verify") <= options("finish"), options("verify") - options("finish")

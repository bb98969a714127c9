"""images move-store: the decisions and the mover, against an in-memory glance that behaves as
glance 33 does (asynchronous copy-image tasks holding an import lock, the failed-import mark,
403 for policy and for the last copy). The real glance is exercised in
tests/cloud/test_ops_image_stores.py."""

from __future__ import annotations

import copy
import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stackferry.cloud.connection import error_text
from stackferry.errors import StackferryError
from stackferry.ops.image_stores import decide as decisions
from stackferry.ops.image_stores import mover, select
from stackferry.ops.image_stores.api import Reply
from stackferry.ops.image_stores.decide import Decision, decide
from stackferry.ops.image_stores.mover import MoveOptions, Mover

FS, FS2 = "fs", "fs2"
NOW = datetime.now(UTC)
NOT_AUTHORIZED = "You are not authorized to complete {} action."


def image(n: int, stores: str = FS, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "name": f"img-{n}",
        "status": "active",
        "stores": stores,
        "checksum": f"md5-{n}",
        "os_hash_algo": "sha512",
        "os_hash_value": f"sha-{n}",
        "size": 1000 + n,
        "protected": False,
        "owner": "p1",
        "updated_at": "2026-01-01T00:00:00Z",
        "custom": f"value-{n}",
        **extra,
    }


class FakeGlance:
    """Glance multi-store: copy-image runs as a task that finishes after ``task_steps`` looks
    at the image; the images are dicts shaped as glance's API returns them."""

    def __init__(self, images: list[dict[str, Any]], stores: tuple[str, ...] = (FS, FS2)) -> None:
        self.data = {i["id"]: copy.deepcopy(i) for i in images}
        self.store_names = stores
        self.methods = ["glance-direct", "web-download", "copy-image"]
        self.multi_store = True
        self.task_steps = 2
        self.fail_copy: set[str] = set()  # image IDs whose copy fails
        self.edit_during_copy: dict[str, dict[str, Any]] = {}  # someone edits the image
        self.deny: set[str] = set()  # "copy_image" / "delete_image_location"
        self.lost: set[str] = set()  # image IDs whose task glance loses (stays pending)
        self.tasks: dict[str, dict[str, Any]] = {}  # task ID -> {image, store, left, status}
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    # --- the ImageApi protocol ---

    def stores(self) -> list[dict[str, Any]] | None:
        if not self.multi_store:
            return None
        return [
            {"id": s, **({"default": "true"} if i == 0 else {})}
            for i, s in enumerate(self.store_names)
        ]

    def import_methods(self) -> list[str]:
        return list(self.methods)

    def get(self, image_id: str) -> dict[str, Any] | None:
        with self.lock:
            self.calls.append(("GET", image_id))
            self._advance(image_id)
            found = self.data.get(image_id)
            return copy.deepcopy(found) if found else None

    def images(self, owner: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(i)
                for i in self.data.values()
                if (owner is None or i["owner"] == owner) and (name is None or i["name"] == name)
            ]

    def task(self, task_id: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_id)
        if task is None:
            return {"id": task_id, "status": "missing"}
        return {"id": task_id, "status": task["status"], "updated_at": task["updated_at"]}

    def copy(self, image_id: str, store: str) -> Reply:
        with self.lock:
            self.calls.append(("POST", image_id))
            if "copy_image" in self.deny:
                return Reply(403, NOT_AUTHORIZED.format("copy_image"))
            img = self.data[image_id]
            if img.get(decisions.LOCK) and not self.tasks[img[decisions.LOCK]].get("stale"):
                return Reply(409, "Image has active task")
            if store in decisions.store_list(img):
                return Reply(400, f"Image is already present at store '{store}'")
            self.start_task(image_id, store)
            return Reply(202)

    def remove(self, image_id: str, store: str) -> Reply:
        with self.lock:
            self.calls.append(("DELETE", image_id))
            if "delete_image_location" in self.deny:
                return Reply(403, NOT_AUTHORIZED.format("delete_image_location"))
            img = self.data[image_id]
            stores = decisions.store_list(img)
            if len(stores) == 1:
                return Reply(403, "Cannot delete image data from the only store containing it.")
            if store not in stores:
                return Reply(404, f"Image {image_id} is not stored in store {store}.")
            img["stores"] = ",".join(sorted(stores - {store}))
            img["updated_at"] = "2026-01-02T00:00:00Z"
            return Reply(204)

    # --- simulation ---

    def start_task(self, image_id: str, store: str, **task: Any) -> str:
        task_id = f"task-{next(self.ids)}"
        img = self.data[image_id]
        img[decisions.LOCK] = task_id
        img[decisions.IMPORTING] = store
        failed = decisions.store_list(img, decisions.FAILED_IMPORT) - {
            store
        }  # glance clears the old mark
        img[decisions.FAILED_IMPORT] = ",".join(sorted(failed))
        status = "pending" if image_id in self.lost else "processing"
        self.tasks[task_id] = {"image": image_id, "store": store, "left": self.task_steps}
        self.tasks[task_id] |= {"status": status, "updated_at": NOW.isoformat(), **task}
        return task_id

    def _advance(self, image_id: str) -> None:
        img = self.data.get(image_id)
        if not img or not img.get(decisions.LOCK):
            return
        task = self.tasks[img[decisions.LOCK]]
        if task["status"] != "processing":
            return
        task["left"] -= 1
        if task["left"] > 0:
            return
        del img[decisions.LOCK]
        img[decisions.IMPORTING] = ""
        if image_id in self.fail_copy:
            task["status"] = "failure"
            img[decisions.FAILED_IMPORT] = task["store"]
        else:
            task["status"] = "success"
            img["stores"] = ",".join(sorted(decisions.store_list(img) | {task["store"]}))
            img.update(self.edit_during_copy.get(image_id, {}))
        img["updated_at"] = "2026-01-02T00:00:00Z"

    def writes(self) -> int:
        return sum(1 for method, _ in self.calls if method != "GET")

    def stores_of(self, image_id: str) -> frozenset[str]:
        return decisions.store_list(self.data[image_id])


def run(glance: FakeGlance, **options: Any) -> mover.Outcome:
    chosen = select.select_images(glance, FS, FS2)
    return Mover(glance, MoveOptions(FS, FS2, poll=0, task_poll=0, **options)).run(chosen)


def by_id(outcome: mover.Outcome) -> dict[str, mover.ImageResult]:
    return {r.id: r for r in outcome.results}


# --- decisions ---


@pytest.mark.parametrize(
    ("state", "copy_attempted", "action"),
    [
        ({"stores": "fs"}, False, "copy"),
        ({"stores": "fs2"}, False, "done"),
        ({"stores": "fs,fs2"}, False, "remove"),
        ({"stores": "fs2,fs"}, True, "remove"),
        ({"stores": "fs3"}, False, "skip"),
        ({"stores": ""}, False, "skip"),
        ({"stores": "fs", decisions.LOCK: "t1", decisions.IMPORTING: "fs2"}, False, "wait"),
        ({"stores": "fs,fs2", decisions.LOCK: "t1", decisions.IMPORTING: "fs3"}, False, "wait"),
        ({"stores": "fs2", decisions.LOCK: "t1"}, False, "done"),
        ({"stores": "fs", decisions.FAILED_IMPORT: "fs2"}, True, "failed"),
        ({"stores": "fs", decisions.FAILED_IMPORT: "fs2"}, False, "copy"),  # earlier run: retry
        ({"stores": "fs", decisions.IMPORTING: "fs2"}, False, "copy"),  # stale mark, no lock
        ({"stores": "fs", "status": "deactivated"}, False, "blocked"),
        ({"stores": "fs,fs2", "status": "deactivated"}, False, "blocked"),
        ({"stores": "fs2", "status": "deactivated"}, False, "done"),
    ],
)
def test_decide(state: dict[str, Any], copy_attempted: bool, action: str) -> None:
    assert decide(image(1, **state), FS, FS2, copy_attempted).action == action


def test_decide_reasons_name_the_stores() -> None:
    assert decide(image(1, stores="fs2"), FS, FS2) == Decision("done", "already on fs2")
    assert "not on fs (stores: fs3)" in decide(image(1, stores="fs3"), FS, FS2).reason
    failed = decide(image(1, **{decisions.FAILED_IMPORT: "fs2"}), FS, FS2, copy_attempted=True)
    assert decisions.FAILED_IMPORT in failed.reason and "intact on fs" in failed.reason
    assert "reactivate" in decide(image(1, status="deactivated"), FS, FS2).reason


@pytest.mark.parametrize(
    ("task", "stale"),
    [
        (None, False),  # glance does not show it: assume it is alive
        ({"status": "missing"}, True),
        ({"status": "processing", "updated_at": "2000-01-01T00:00:00Z"}, True),
        ({"status": "processing", "updated_at": (NOW - timedelta(minutes=59)).isoformat()}, False),
        ({"status": "processing", "updated_at": (NOW - timedelta(minutes=61)).isoformat()}, True),
        ({"status": "pending", "updated_at": (NOW - timedelta(minutes=119)).isoformat()}, False),
        ({"status": "pending", "updated_at": (NOW - timedelta(minutes=121)).isoformat()}, True),
        ({"status": "failure", "updated_at": "2026-01-01T00:00:00"}, True),  # naive: UTC
        ({"status": "weird", "updated_at": "2000-01-01T00:00:00Z"}, False),
    ],
)
def test_lock_is_stale_as_glance_judges_it(task: dict[str, Any] | None, stale: bool) -> None:
    assert decisions.lock_is_stale(task, NOW) is stale


def test_a_stale_lock_does_not_make_the_mover_wait() -> None:
    locked = image(1, **{decisions.LOCK: "t1"})
    assert decide(locked, FS, FS2).action == "wait"
    assert decide(locked, FS, FS2, lock_stale=True).action == "copy"
    both = dict(locked, stores="fs,fs2")
    assert decide(both, FS, FS2, lock_stale=True).action == "remove"


def test_differences_ignore_only_glances_own_bookkeeping() -> None:
    before = image(1)
    after = dict(
        before, stores="fs2", updated_at="later", **{decisions.LOCK: "t", decisions.IMPORTING: ""}
    )
    assert decisions.differences(before, after) == []
    assert decisions.differences(before, dict(after, checksum="other")) == ["checksum"]
    assert decisions.differences(before, dict(after, custom="edited", size=1)) == ["custom", "size"]
    gone = {k: v for k, v in after.items() if k != "custom"}
    assert decisions.differences(before, gone) == ["custom"]


def test_error_text_from_html_and_json() -> None:
    page = (
        "<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 "
        "Forbidden</h1>\n  Image is already present at store &#x27;fs2&#x27;<br /><br />\n"
        "\n </body>\n</html>"
    )
    assert error_text(page) == "Image is already present at store 'fs2'"
    assert error_text('{"message": "nope"}') == "nope"
    assert error_text('{"NeutronError": {"type": "X", "message": "in use"}}') == "in use"
    assert error_text("") == ""


# --- checks before anything is done ---


def test_check_stores_accepts_known_stores() -> None:
    assert select.check_stores(FakeGlance([]), "c1", FS, FS2) == [FS, FS2]


def test_unknown_store_lists_the_clouds_stores() -> None:
    with pytest.raises(StackferryError, match=r"unknown store nfs; .* fs \(default\), fs2"):
        select.check_stores(FakeGlance([]), "c1", "nfs", FS2)


def test_same_store_twice_is_refused() -> None:
    with pytest.raises(StackferryError, match="both fs"):
        select.check_stores(FakeGlance([]), "c1", FS, FS)


def test_without_multi_store_says_what_to_enable() -> None:
    glance = FakeGlance([])
    glance.multi_store = False
    with pytest.raises(StackferryError) as error:
        select.check_stores(glance, "c1", FS, FS2)
    for needed in ("multi-store", "enabled_backends", "default_backend", "copy-image"):
        assert needed in str(error.value)


def test_without_copy_image_method_says_what_to_enable() -> None:
    glance = FakeGlance([])
    glance.methods = ["glance-direct"]
    with pytest.raises(StackferryError, match="enabled_import_methods"):
        select.check_stores(glance, "c1", FS, FS2)


def test_select_sweeps_images_on_either_store_sorted_by_name() -> None:
    glance = FakeGlance(
        [image(3), image(1, stores="fs2"), image(2, stores="fs3"), image(4, stores="")]
    )
    assert [i["name"] for i in select.select_images(glance, FS, FS2)] == ["img-1", "img-3"]


def test_select_named_images_by_name_or_id_within_the_project() -> None:
    glance = FakeGlance([image(1), image(2), image(3, owner="p2")])
    ids = [i["id"] for i in select.select_images(glance, FS, FS2, "p1", ["img-2", image(1)["id"]])]
    assert ids == [image(1)["id"], image(2)["id"]]
    with pytest.raises(StackferryError, match="no image 'img-3' in project p1"):
        select.select_images(glance, FS, FS2, "p1", ["img-3"])
    with pytest.raises(StackferryError, match="no image"):
        select.select_images(glance, FS, FS2, None, ["missing"])


def test_select_refuses_an_ambiguous_name() -> None:
    glance = FakeGlance([image(1), image(2, name="img-1")])
    with pytest.raises(StackferryError, match="several images are named 'img-1'"):
        select.select_images(glance, FS, FS2, None, ["img-1"])


# --- the mover ---


def test_moves_keeping_id_checksum_and_properties() -> None:
    originals = [image(1), image(2, protected=True, os_hidden=True)]
    glance = FakeGlance(originals)
    outcome = run(glance)
    assert outcome.ok
    for original in originals:
        result = by_id(outcome)[original["id"]]
        assert result.result == decisions.MOVED, result
        assert result.action == "copy to fs2, removal from fs"
        assert result.checksum_before == result.checksum_after == original["checksum"]
        assert result.hash_before == result.hash_after == original["os_hash_value"]
        assert result.stores_before == ["fs"] and result.stores_after == ["fs2"]
        assert glance.stores_of(original["id"]) == {FS2}
        assert decisions.differences(original, glance.data[original["id"]]) == []
    assert by_id(outcome)[originals[1]["id"]].protected
    assert glance.writes() == 4  # one copy and one removal each


def test_second_run_skips_everything_and_writes_nothing() -> None:
    glance = FakeGlance([image(1), image(2)])
    run(glance)
    writes = glance.writes()
    outcome = run(glance)
    assert outcome.ok
    assert [(r.result, r.reason) for r in outcome.results] == [
        (decisions.SKIPPED, "already on fs2")
    ] * 2
    assert glance.writes() == writes


def test_image_on_both_stores_only_loses_its_old_copy() -> None:
    glance = FakeGlance([image(1, stores="fs,fs2")])
    outcome = run(glance)
    (result,) = outcome.results
    assert (result.result, result.action) == (decisions.MOVED, "removal from fs")
    assert glance.stores_of(result.id) == {FS2}
    assert [m for m, _ in glance.calls if m != "GET"] == ["DELETE"]


def test_import_in_flight_from_a_killed_run_is_waited_for_not_repeated() -> None:
    glance = FakeGlance([image(1)])
    glance.start_task(image(1)["id"], FS2)  # an earlier run's copy, still running
    glance.task_steps = 3
    outcome = run(glance)
    (result,) = outcome.results
    assert result.result == decisions.MOVED
    assert glance.stores_of(result.id) == {FS2}
    assert [m for m, _ in glance.calls if m != "GET"] == ["DELETE"]


def test_failed_copy_is_reported_and_the_old_copy_kept() -> None:
    glance = FakeGlance([image(1), image(2)])
    glance.fail_copy.add(image(1)["id"])
    outcome = run(glance)
    results = by_id(outcome)
    assert not outcome.ok
    failed = results[image(1)["id"]]
    assert failed.result == decisions.FAILED and decisions.FAILED_IMPORT in failed.reason
    assert glance.stores_of(failed.id) == {FS}
    assert ("DELETE", failed.id) not in glance.calls
    assert results[image(2)["id"]].result == decisions.MOVED  # one failure does not stop the others


def test_failure_mark_from_an_earlier_run_does_not_fail_a_retry() -> None:
    glance = FakeGlance([image(1, **{decisions.FAILED_IMPORT: "fs2"})])
    outcome = run(glance)
    assert outcome.results[0].result == decisions.MOVED


def test_image_edited_during_the_copy_keeps_its_old_copy() -> None:
    glance = FakeGlance([image(1)])
    glance.edit_during_copy[image(1)["id"]] = {"custom": "edited"}
    outcome = run(glance)
    (result,) = outcome.results
    assert result.result == decisions.FAILED and "custom" in result.reason
    assert glance.stores_of(result.id) == {FS, FS2}
    assert ("DELETE", result.id) not in glance.calls


def test_inactive_image_is_blocked_and_untouched() -> None:
    glance = FakeGlance([image(1, status="deactivated"), image(2)])
    outcome = run(glance)
    results = by_id(outcome)
    assert results[image(1)["id"]].result == decisions.BLOCKED
    assert results[image(2)["id"]].result == decisions.MOVED
    assert not outcome.ok
    assert all(i != image(1)["id"] for m, i in glance.calls if m != "GET")


def test_policy_refusing_the_copy_stops_the_run_before_any_change() -> None:
    glance = FakeGlance([image(1), image(2), image(3)])
    glance.deny.add("copy_image")
    outcome = run(glance)
    assert outcome.denied is not None and "admin credentials" in outcome.denied
    assert "copy_image" in outcome.denied
    assert {r.result for r in outcome.results} == {decisions.NOT_ATTEMPTED}
    assert glance.writes() == 1  # the first refusal stops the run
    assert all(glance.stores_of(i["id"]) == {FS} for i in (image(1), image(2), image(3)))


def test_policy_refusing_the_removal_stops_the_run_leaving_both_copies() -> None:
    glance = FakeGlance([image(1), image(2)])
    glance.deny.add("delete_image_location")
    outcome = run(glance)
    assert outcome.denied is not None and "delete_image_location" in outcome.denied
    assert glance.stores_of(image(1)["id"]) == {FS, FS2}
    assert glance.stores_of(image(2)["id"]) == {FS}  # not attempted


def test_dry_run_plans_and_writes_nothing() -> None:
    glance = FakeGlance([image(1), image(2, stores="fs,fs2"), image(3, stores="fs2")])
    outcome = run(glance, dry_run=True)
    assert [(r.result, r.action) for r in outcome.results] == [
        (decisions.PLANNED, "copy, then remove the old copy"),
        (decisions.PLANNED, "remove the old copy"),
        (decisions.SKIPPED, "none"),
    ]
    assert glance.writes() == 0
    assert glance.stores_of(image(1)["id"]) == {FS}


def test_a_task_glance_never_starts_is_reported_not_waited_for_forever() -> None:
    glance = FakeGlance([image(1)])
    glance.lost.add(image(1)["id"])
    outcome = run(glance, stuck_after=0.05, timeout=30)
    (result,) = outcome.results
    assert result.result == decisions.FAILED
    assert "still pending" in result.reason and "intact on fs" in result.reason
    assert glance.stores_of(result.id) == {FS}


def test_a_dead_task_holding_the_lock_is_taken_over_once_glance_allows_it() -> None:
    glance = FakeGlance([image(1)])
    three_hours_ago = (NOW - timedelta(hours=3)).isoformat()
    glance.start_task(image(1)["id"], FS2, stale=True, updated_at=three_hours_ago, left=10**9)
    outcome = run(glance, timeout=30)
    (result,) = outcome.results
    assert result.result == decisions.MOVED, result
    assert glance.stores_of(result.id) == {FS2}
    assert [m for m, _ in glance.calls if m != "GET"] == ["POST", "DELETE"]


def test_a_copy_slower_than_the_timeout_is_reported() -> None:
    glance = FakeGlance([image(1)])
    glance.task_steps = 10**9
    outcome = run(glance, timeout=0.05)
    (result,) = outcome.results
    assert result.result == decisions.FAILED and "more than 0 s" in result.reason
    assert glance.stores_of(result.id) == {FS}


def test_image_deleted_before_its_turn_is_skipped() -> None:
    glance = FakeGlance([image(1)])
    chosen = select.select_images(glance, FS, FS2)
    del glance.data[image(1)["id"]]
    outcome = Mover(glance, MoveOptions(FS, FS2, poll=0)).run(chosen)
    assert (outcome.results[0].result, outcome.results[0].reason) == (
        decisions.SKIPPED,
        "deleted meanwhile",
    )


def test_parallel_moves_every_image_once() -> None:
    images = [image(n) for n in range(1, 13)]
    glance = FakeGlance(images)
    outcome = run(glance, parallel=4)
    assert outcome.ok and outcome.count(decisions.MOVED) == 12
    assert all(glance.stores_of(i["id"]) == {FS2} for i in images)
    posts = [i for m, i in glance.calls if m == "POST"]
    assert sorted(posts) == sorted(i["id"] for i in images)


def test_report_entry_carries_what_the_operator_needs() -> None:
    glance = FakeGlance([image(1)])
    entry = run(glance).results[0].as_dict()
    assert entry["id"] == image(1)["id"] and entry["name"] == "img-1"
    assert (entry["from"], entry["to"], entry["result"]) == (FS, FS2, decisions.MOVED)
    assert entry["checksum_before"] == entry["checksum_after"] == "md5-1"

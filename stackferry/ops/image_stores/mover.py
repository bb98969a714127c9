"""Carrying a move out: one image at a time per worker, copy, check, remove the old copy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stackferry.cloud.connection import api_message
from stackferry.errors import StackferryError
from stackferry.ops.image_stores.api import ImageApi, Reply
from stackferry.ops.image_stores.decide import (
    BLOCKED,
    FAILED,
    LOCK,
    MOVED,
    NOT_ATTEMPTED,
    PLANNED,
    SKIPPED,
    UNSUCCESSFUL,
    Image,
    decide,
    differences,
    lock_is_stale,
    store_list,
)

# --- carrying the move out -------------------------------------------------------------------


class PermissionDenied(StackferryError):
    """Glance's policy refused the copy or the removal: the whole run stops."""

    def __init__(self, what: str, reply: Reply) -> None:
        self.short = f"glance refused to {what}: HTTP 403: {reply.message}"
        super().__init__(
            f"glance refused to {what} (HTTP 403: {reply.message}). Moving images between "
            "stores needs admin credentials: glance's default policy lets only admins copy "
            "images between stores (copy_image) and remove a store's copy "
            "(delete_image_location). Use admin credentials, or have glance's policy grant "
            "those two rules."
        )


@dataclass
class ImageResult:
    id: str
    name: str
    source: str
    target: str
    result: str = ""
    action: str = ""  # what was (or, with --dry-run, would be) done
    reason: str = ""
    protected: bool = False
    size: int | None = None
    stores_before: list[str] = field(default_factory=list)
    stores_after: list[str] = field(default_factory=list)
    checksum_before: str | None = None
    checksum_after: str | None = None
    hash_before: str | None = None  # os_hash_value (os_hash_algo, e.g. sha512)
    hash_after: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "from": self.source,
            "to": self.target,
            "result": self.result,
            "action": self.action,
            "reason": self.reason,
            "protected": self.protected,
            "size": self.size,
            "stores_before": self.stores_before,
            "stores_after": self.stores_after,
            "checksum_before": self.checksum_before,
            "checksum_after": self.checksum_after,
            "os_hash_value_before": self.hash_before,
            "os_hash_value_after": self.hash_after,
            "seconds": round(self.seconds, 2),
        }


Events = Callable[[ImageResult, str], None]  # (image, phase: copying/removing/waiting/finished)


@dataclass
class MoveOptions:
    source: str
    target: str
    parallel: int = 1
    dry_run: bool = False
    timeout: float = 3600.0  # per image: how long a copy may take before it is reported
    poll: float = 0.5  # seconds between looks at an image while glance copies it
    stuck_after: float = 180.0  # an import task glance has not started by then is lost
    task_poll: float = 5.0  # seconds between looks at the import task while waiting


@dataclass
class Outcome:
    results: list[ImageResult]
    denied: str | None = None  # glance's policy refused: the run stopped

    def count(self, result: str) -> int:
        return sum(1 for r in self.results if r.result == result)

    @property
    def ok(self) -> bool:
        return self.denied is None and not any(r.result in UNSUCCESSFUL for r in self.results)


PLANS = {
    "copy": "copy, then remove the old copy",
    "remove": "remove the old copy",
    "wait": "wait for the running import, then decide",
}


class Mover:
    def __init__(self, api: ImageApi, options: MoveOptions, events: Events | None = None) -> None:
        self.api, self.options = api, options
        self.events: Events = events or (lambda result, phase: None)
        self.stop = threading.Event()
        self.denied: str | None = None
        self._lock = threading.Lock()

    def run(self, images: list[Image]) -> Outcome:
        results = [self._result(i) for i in images]
        if self.options.dry_run:
            for image, result in zip(images, results, strict=True):
                self._plan(image, result)
                self.events(result, "finished")
            return Outcome(results)
        with ThreadPoolExecutor(max(1, self.options.parallel), "move-store") as pool:
            list(pool.map(self._guarded, results))
        return Outcome(results, self.denied)

    def _result(self, image: Image) -> ImageResult:
        o = self.options
        return ImageResult(image["id"], str(image.get("name") or ""), o.source, o.target)

    def _snapshot(self, result: ImageResult, image: Image, before: bool) -> None:
        stores = sorted(store_list(image))
        if before:
            result.stores_before, result.protected = stores, bool(image.get("protected"))
            result.size = image.get("size")
            result.checksum_before, result.hash_before = (
                image.get("checksum"),
                image.get("os_hash_value"),
            )
        else:
            result.stores_after = stores
            result.checksum_after, result.hash_after = (
                image.get("checksum"),
                image.get("os_hash_value"),
            )

    def _plan(self, image: Image, result: ImageResult) -> None:
        self._snapshot(result, image, before=True)
        self._snapshot(result, image, before=False)
        decision = decide(image, self.options.source, self.options.target)
        if decision.action in PLANS:
            result.result, result.action = PLANNED, PLANS[decision.action]
        else:
            result.result = {"done": SKIPPED, "skip": SKIPPED}.get(decision.action, BLOCKED)
            result.action = "none"
        result.reason = decision.reason

    def _guarded(self, result: ImageResult) -> None:
        started = time.monotonic()
        try:
            if self.stop.is_set():
                result.result, result.action = NOT_ATTEMPTED, "none"
                result.reason = "the run stopped: glance refused these credentials"
            else:
                self._move(result)
        except PermissionDenied as exc:
            with self._lock:
                self.denied = self.denied or str(exc)
            self.stop.set()
            result.result, result.reason = NOT_ATTEMPTED, exc.short
        except Exception as exc:
            result.result, result.reason = FAILED, _message(exc)
        finally:
            result.action = result.action or "none"
            result.seconds = time.monotonic() - started
            self.events(result, "finished")

    def _move(self, result: ImageResult) -> None:
        o = self.options
        before = self.api.get(result.id)
        if before is None:
            result.result, result.action, result.reason = SKIPPED, "none", "deleted meanwhile"
            return
        self._snapshot(result, before, before=True)
        current, did = before, list[str]()
        copy_attempted, copies, removals = False, 0, 0
        watch = _TaskWatch(self.api, o)
        deadline = time.monotonic() + o.timeout
        while True:
            stale = bool(current.get(LOCK)) and current.get(LOCK) == watch.stale_lock
            decision = decide(current, o.source, o.target, copy_attempted, stale)
            if decision.action == "done":
                self._snapshot(result, current, before=False)
                result.action = ", ".join(did) or "none"
                result.result = MOVED if did else SKIPPED
                result.reason = f"now only on {o.target}" if did else decision.reason
                changed = differences(before, current) if did else []
                if changed:  # after the removal: it was checked before, so someone edited it
                    result.result = FAILED
                    result.reason = (
                        f"moved, but the image changed during the move ({', '.join(changed)})"
                    )
                return
            if decision.action in ("skip", "blocked", "failed"):
                self._snapshot(result, current, before=False)
                result.result = {"skip": SKIPPED, "blocked": BLOCKED}.get(decision.action, FAILED)
                result.action = ", ".join(did) or "none"
                result.reason = decision.reason
                return
            if decision.action == "wait":
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{decision.reason} for more than {o.timeout:.0f} s; the image is intact "
                        f"on {o.source}. Glance lets a new import take the image over once the "
                        "task has not been updated for 60 min; a re-run then starts one"
                    )
                watch.look(str(current[LOCK]))
                self.events(result, "waiting")
                time.sleep(o.poll)
            elif decision.action == "copy":
                copies += 1
                if copies > 3:
                    raise RuntimeError(f"glance did not start copying to {o.target} (3 requests)")
                self.events(result, "copying")
                reply = self.api.copy(result.id, o.target)
                if reply.ok:
                    copy_attempted = True
                    did.append(f"copy to {o.target}")
                    result.action = ", ".join(did)
                elif reply.status == 403:
                    raise PermissionDenied(f"copy image {result.id}", reply)
                elif reply.status not in (400, 409):  # 400/409: already there, or a task runs
                    raise RuntimeError(f"copy-image: HTTP {reply.status}: {reply.message}")
            elif decision.action == "remove":
                changed = differences(before, current)
                if changed:
                    raise RuntimeError(
                        f"the image changed while it was copied ({', '.join(changed)}): the "
                        f"copy on {o.source} is kept; check the image and re-run"
                    )
                removals += 1
                if removals > 3:
                    raise RuntimeError(f"the copy on {o.source} is still there (3 removals)")
                self.events(result, "removing")
                reply = self.api.remove(result.id, o.source)
                if reply.ok:
                    did.append(f"removal from {o.source}")
                    result.action = ", ".join(did)
                elif reply.status == 403 and not self._only_copy_left(result.id, o.source):
                    raise PermissionDenied(f"remove image {result.id} from {o.source}", reply)
                elif reply.status not in (403, 404):  # the last copy, or already gone: look again
                    raise RuntimeError(
                        f"removing the copy on {o.source}: HTTP {reply.status}: {reply.message}"
                    )
            fresh = self.api.get(result.id)
            if fresh is None:
                raise RuntimeError("the image was deleted (by someone else) during the move")
            current = fresh

    def _only_copy_left(self, image_id: str, store: str) -> bool:
        """Glance answers 403 both to a policy that forbids removing and to removing the
        last copy; the image's stores tell which (its words are not read)."""
        now = self.api.get(image_id)
        return now is not None and store_list(now) <= {store}


class _TaskWatch:
    """Looks at the import task that holds an image, now and then, to tell a lost task from a
    slow one. Glance runs an import task in a thread of its own and does not read that thread's
    errors: a task whose first database write fails (e.g. "database is locked" on a glance that
    keeps its database in SQLite, when several imports start at once) stays 'pending' for good,
    and the image keeps its import lock until glance lets a new import take it over (2 h after
    the task was created)."""

    def __init__(self, api: ImageApi, options: MoveOptions) -> None:
        self.api, self.options = api, options
        self.last_look = -float("inf")
        self.pending_since: dict[str, float] = {}
        self.stale_lock: str | None = None  # a lock glance would let a new import take over

    def look(self, task_id: str) -> None:
        now = time.monotonic()
        if now - self.last_look < self.options.task_poll:
            return
        self.last_look = now
        task = self.api.task(task_id)
        if lock_is_stale(task, datetime.now(UTC)):
            self.stale_lock = task_id
            return
        if task is None or task.get("status") != "pending":
            self.pending_since.pop(task_id, None)
            return
        since = self.pending_since.setdefault(task_id, now)
        if now - since >= self.options.stuck_after:
            raise RuntimeError(
                f"glance's import task {task_id} (created {task.get('created_at')}) is still "
                f"pending after {now - since:.0f} s: glance has not started it, so it is either "
                "queued behind its whole task pool or lost (see the class's note). The image "
                f"is intact on {self.options.source}; glance takes another import only once "
                "the task's lock expires, 2 h after it was created: re-run then"
            )


def _message(exc: BaseException) -> str:
    """Our own explanations (a timeout, a stuck task) as they are; the cloud's after its status."""
    if isinstance(exc, RuntimeError | TimeoutError):
        return " ".join(str(exc).split())
    return api_message(exc)

"""Move Glance images from one storage backend to another inside one cloud.

Glance multi-store does the work: the interoperable image import's ``copy-image`` method copies
an image's bytes into another store under the same image ID, and ``DELETE /v2/stores/{store}/
{image}`` drops one store's copy. Glance checks size, checksum and multihash of the bytes it
writes against the image record before it adds the new location, and refuses to drop the last
copy of an image; stackferry adds its own check that nothing but glance's bookkeeping changed
before it removes the old copy.

Every run starts from what the cloud says now (one decision per image, from its ``stores`` and
``os_glance_*`` fields), so it is idempotent and finishes what an interrupted run left: an image
already only on the target is skipped, one on both stores only has its old copy removed, one
with an import in flight is waited for. The ID and every property are kept; protected images
are moved too (moving never deletes the image, and glance drops a store's copy of a protected
image without unprotecting it).

Glance without multi-store (``GET /v2/info/stores`` answers 404) is refused with what to enable:
the legacy locations-API method (show_multiple_locations) is not implemented.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.cloud.connection import api_message, error_text
from stackferry.cloud.retry import OPERATIONS, TRANSIENT_STATUS, RetryPolicy
from stackferry.errors import StackferryError

Image = dict[str, Any]  # an image as glance's API returns it
GLANCE_OWN_FIELDS = frozenset({"stores", "updated_at"})  # what a copy or removal changes
GLANCE_OWN_PREFIX = "os_glance_"  # import bookkeeping: lock, importing and failed stores
LOCK = "os_glance_import_task"
IMPORTING = "os_glance_importing_to_stores"
FAILED_IMPORT = "os_glance_failed_import"
COPY_METHOD = "copy-image"
UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")

# Results, per image.
MOVED = "moved"  # now only on the target (this run copied it, removed the old copy, or both)
SKIPPED = "skipped"  # nothing to do: already on the target only, or not on the source store
FAILED = "failed"  # tried and did not succeed; the image is intact on the source store
BLOCKED = "blocked"  # cannot be moved as it is (e.g. deactivated); nothing was tried
NOT_ATTEMPTED = "not attempted"  # the run stopped (credentials refused) before reaching it
PLANNED = "planned"  # --dry-run: what a real run would do
UNSUCCESSFUL = frozenset({FAILED, BLOCKED, NOT_ATTEMPTED})


# --- decisions: pure functions of an image as glance shows it --------------------------------


def store_list(image: Image, key: str = "stores") -> frozenset[str]:
    """A comma-separated store list field of an image (``stores``, ``os_glance_*``)."""
    return frozenset(s.strip() for s in str(image.get(key) or "").split(",") if s.strip())


@dataclass(frozen=True)
class Decision:
    action: str  # copy | remove | wait | done | skip | blocked | failed
    reason: str


def decide(
    image: Image,
    source: str,
    target: str,
    copy_attempted: bool = False,
    lock_stale: bool = False,
) -> Decision:
    """The next step for one image, from its current state (and whether glance would let a new
    import take over the task lock it carries, see ``lock_is_stale``)."""
    stores = store_list(image)
    on_source, on_target = source in stores, target in stores
    if on_target and not on_source:
        return Decision("done", f"already on {target}")
    if not on_source:
        where = ", ".join(sorted(stores)) or "none: it has no data"
        return Decision("skip", f"not on {source} (stores: {where})")
    status = image.get("status")
    if status != "active":
        return Decision(
            "blocked",
            f"status {status}: glance copies and removes image data of active images only"
            + ("; reactivate it and re-run" if status == "deactivated" else "; re-run later"),
        )
    if image.get(LOCK) and not lock_stale:  # an import holds it: a killed run's, or another's
        into = ", ".join(sorted(store_list(image, IMPORTING))) or "?"
        return Decision("wait", f"import task {image[LOCK]} is running (into {into})")
    if on_target:
        return Decision("remove", f"on {source} and {target}: remove the copy on {source}")
    if copy_attempted:
        failed = target in store_list(image, FAILED_IMPORT)
        return Decision(
            "failed",
            f"glance's copy-image import into {target} failed"
            + (f" ({FAILED_IMPORT} lists {target})" if failed else "")
            + "; the image is intact on "
            + f"{source}. Glance's API log names the cause; re-run to retry",
        )
    return Decision("copy", f"copy to {target}, then remove the copy on {source}")


LOCK_EXPIRY = timedelta(minutes=60)  # glance 33, ImagesController._enforce_import_lock
LOCK_STATES = frozenset({"pending", "processing", "success", "failure"})


def lock_is_stale(task: dict[str, Any] | None, now: datetime) -> bool:
    """Whether glance lets a new import take over an image's lock held by this task: when the
    task is gone, or has not been updated for an hour (two for a task still pending). None (the
    task cannot be seen) is not stale."""
    if task is None:
        return False
    if task.get("status") == "missing":
        return True
    if task.get("status") not in LOCK_STATES or not task.get("updated_at"):
        return False
    updated = datetime.fromisoformat(str(task["updated_at"]))
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    expiry = LOCK_EXPIRY * (2 if task.get("status") == "pending" else 1)
    return now - updated >= expiry


def differences(before: Image, after: Image) -> list[str]:
    """Fields that differ between two views of an image, apart from glance's own bookkeeping
    (``stores``, ``updated_at``, ``os_glance_*``): checksum, multihash, size, properties..."""

    def relevant(key: str) -> bool:
        return key not in GLANCE_OWN_FIELDS and not key.startswith(GLANCE_OWN_PREFIX)

    keys = {k for k in (*before, *after) if relevant(k)}
    return sorted(k for k in keys if before.get(k) != after.get(k))


# --- glance's API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    message: str = ""  # glance's own words, for an error

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class ImageApi(Protocol):
    """The few calls moving images needs; GlanceApi talks to a real glance."""

    def stores(self) -> list[dict[str, Any]] | None:
        """``GET /v2/info/stores``; None when glance does not run multi-store."""

    def import_methods(self) -> list[str]: ...

    def get(self, image_id: str) -> Image | None: ...

    def images(self, owner: str | None = None, name: str | None = None) -> list[Image]:
        """Every image visible, hidden ones included, optionally of one owner or name."""

    def task(self, task_id: str) -> dict[str, Any] | None:
        """``GET /v2/tasks/{id}``; ``{"status": "missing"}`` when glance has no such task, None
        when it does not show it (the tasks API is admin-only by default)."""

    def copy(self, image_id: str, store: str) -> Reply: ...

    def remove(self, image_id: str, store: str) -> Reply: ...


class GlanceApi:
    """Glance's v2 REST API through the connection's image proxy (relative paths)."""

    PAGE = 200

    def __init__(self, conn: Connection, policy: RetryPolicy = OPERATIONS) -> None:
        self.proxy = sdk.image(conn)
        self.policy = policy

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request. Reads are retried by the transport. The two writes (start a copy, drop
        a store's copy) are harmless to repeat - glance refuses a copy made or running, and
        the mover decides again from the image's state - so they go through the retry policy
        here, on 5xx answers and connection failures alike."""
        if method == "get":
            return self.proxy.get(path, **kwargs)

        def once() -> Any:
            response = getattr(self.proxy, method)(path, **kwargs)
            if response.status_code in TRANSIENT_STATUS:
                raise sdk_exceptions.HttpException(response=response)
            return response

        return self.policy.run(once, f"{method.upper()} glance {path}")

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self._call("get", path, params=params)
        if response.status_code >= 400:
            raise sdk_exceptions.HttpException(
                message=f"GET {path}: HTTP {response.status_code}: " + error_text(response.text),
                response=response,
            )
        return response.json()

    def stores(self) -> list[dict[str, Any]] | None:
        response = self._call("get", "/info/stores")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise StackferryError(
                f"glance answered GET /v2/info/stores with HTTP {response.status_code}: "
                + error_text(response.text)
            )
        return list(response.json().get("stores") or [])

    def import_methods(self) -> list[str]:
        response = self._call("get", "/info/import")
        if response.status_code >= 400:
            return []
        return list(response.json().get("import-methods", {}).get("value") or [])

    def get(self, image_id: str) -> Image | None:
        response = self._call("get", f"/images/{image_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise sdk_exceptions.HttpException(
                message=f"HTTP {response.status_code}: {error_text(response.text)}",
                response=response,
            )
        return dict(response.json())

    def images(self, owner: str | None = None, name: str | None = None) -> list[Image]:
        found: dict[str, Image] = {}
        for hidden in ("false", "true"):  # glance lists hidden images only when asked to
            params: dict[str, Any] = {"limit": self.PAGE, "os_hidden": hidden, "sort": "id:asc"}
            if owner:
                params["owner"] = owner
            if name:
                params["name"] = name
            while True:
                page = list(self._json("/images", params).get("images") or [])
                found.update((i["id"], dict(i)) for i in page)
                if len(page) < self.PAGE:
                    break
                params["marker"] = page[-1]["id"]
        return list(found.values())

    def task(self, task_id: str) -> dict[str, Any] | None:
        response = self._call("get", f"/tasks/{task_id}")
        if response.status_code == 404:
            return {"id": task_id, "status": "missing"}
        return dict(response.json()) if response.status_code == 200 else None

    def copy(self, image_id: str, store: str) -> Reply:
        body = {"method": {"name": COPY_METHOD}, "stores": [store]}
        response = self._call("post", f"/images/{image_id}/import", json=body)
        return Reply(response.status_code, error_text(response.text))

    def remove(self, image_id: str, store: str) -> Reply:
        response = self._call("delete", f"/stores/{store}/{image_id}")
        return Reply(response.status_code, error_text(response.text))


# --- checks before anything is done ----------------------------------------------------------


def check_stores(api: ImageApi, cloud: str, source: str, target: str) -> list[str]:
    """The cloud's store names, once the move is known possible; else a StackferryError naming
    what is missing."""
    if source == target:
        raise StackferryError(f"--from and --to are both {source}: nothing to move")
    stores = api.stores()
    if stores is None:
        raise StackferryError(
            f"cloud {cloud}: glance does not run multi-store (GET /v2/info/stores answers 404), "
            "which moving images between stores needs. Enable it in glance-api.conf: "
            "[DEFAULT] enabled_backends = <name>:<type>, ... (the old and the new backend), "
            "[glance_store] default_backend = <name>, one section per backend with its "
            "settings, and copy-image in [DEFAULT] enabled_import_methods. (Moving through "
            "the legacy locations API, show_multiple_locations = True, is not supported.)"
        )
    names = [str(s.get("id")) for s in stores]
    listed = ", ".join(
        f"{s.get('id')} (default)" if str(s.get("default")).lower() == "true" else str(s.get("id"))
        for s in stores
    )
    unknown = [s for s in (source, target) if s not in names]
    if unknown:
        raise StackferryError(
            f"cloud {cloud}: unknown store {', '.join(unknown)}; its glance has the stores "
            f"{listed or '(none)'}"
        )
    methods = api.import_methods()
    if COPY_METHOD not in methods:
        raise StackferryError(
            f"cloud {cloud}: glance does not offer the {COPY_METHOD} import method (it offers "
            f"{', '.join(methods) or 'none'}). Add {COPY_METHOD} to [DEFAULT] "
            "enabled_import_methods in glance-api.conf."
        )
    return names


def resolve_project(conn: Connection, ref: str) -> tuple[str, str]:
    """(ID, name) of a project given by name or ID; the credentials' own project is known
    without asking keystone (a member may not look projects up)."""
    try:
        auth: Any = conn.session.auth
        access = auth.get_access(conn.session)
        if ref in (access.project_id, access.project_name):
            return str(access.project_id), str(access.project_name)
    except Exception:  # not a project-scoped token: ask keystone below
        pass
    try:
        project = sdk.identity(conn).find_project(ref, ignore_missing=True)
    except sdk_exceptions.DuplicateResource:
        raise StackferryError(
            f"several projects are named {ref!r} (in different domains); give its ID"
        ) from None
    except sdk_exceptions.ForbiddenException:
        raise StackferryError(
            f"project {ref!r}: these credentials may not look projects up; give the "
            "credentials' own project or use admin credentials"
        ) from None
    if project is None:
        raise StackferryError(f"no project {ref!r}")
    return str(project.id), str(project.name)


def select_images(
    api: ImageApi,
    source: str,
    target: str,
    owner: str | None = None,
    refs: Iterable[str] = (),
) -> list[Image]:
    """The images to look at, sorted by name: the ones named (by name or ID; each must exist,
    once, in the project if one is given), else every image on the source or target store."""
    refs = list(refs)
    if not refs:
        chosen = [
            i for i in api.images(owner=owner) if store_list(i) & {source, target}
        ]  # an image only on neither store is none of this command's business
    else:
        chosen_by_id: dict[str, Image] = {}
        for ref in refs:
            image = api.get(ref) if UUID.match(ref) else None
            matches = [image] if image else api.images(owner=owner, name=ref)
            if owner:
                matches = [i for i in matches if i.get("owner") == owner]
            if not matches:
                where = f" in project {owner}" if owner else ""
                raise StackferryError(f"no image {ref!r}{where}")
            if len(matches) > 1:
                ids = ", ".join(sorted(i["id"] for i in matches))
                raise StackferryError(f"several images are named {ref!r} ({ids}); give its ID")
            chosen_by_id[matches[0]["id"]] = matches[0]
        chosen = list(chosen_by_id.values())
    return sorted(chosen, key=lambda i: (str(i.get("name") or ""), i["id"]))


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
                elif reply.status == 403 and "only store" not in reply.message:
                    raise PermissionDenied(f"remove image {result.id} from {o.source}", reply)
                elif reply.status not in (403, 404):  # the last copy, or already gone: look again
                    raise RuntimeError(
                        f"removing the copy on {o.source}: HTTP {reply.status}: {reply.message}"
                    )
            fresh = self.api.get(result.id)
            if fresh is None:
                raise RuntimeError("the image was deleted (by someone else) during the move")
            current = fresh


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

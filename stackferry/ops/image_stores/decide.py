"""What to do with one image, decided from what glance shows now: pure, unit-tested."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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

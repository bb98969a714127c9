"""The glance calls moving images needs, behind a protocol the unit tests fake."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from stackferry.cloud.connection import error_text
from stackferry.cloud.glance import Glance
from stackferry.cloud.retry import OPERATIONS, TRANSIENT_STATUS, RetryPolicy
from stackferry.errors import StackferryError
from stackferry.ops.image_stores.decide import Image

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
    """The mover's calls, on stackferry's glance client (cloud/glance.py)."""

    def __init__(self, conn: Connection, policy: RetryPolicy = OPERATIONS) -> None:
        self.glance = Glance(conn)
        self.policy = policy

    def _write(self, call: Callable[[], Any], what: str) -> Reply:
        """The two writes (start a copy, drop a store's copy) are harmless to repeat - glance
        refuses a copy made or running, and the mover decides again from the image's state -
        so they go through the retry policy, on 5xx answers and connection failures alike."""

        def once() -> Any:
            response = call()
            if response.status_code in TRANSIENT_STATUS:
                raise sdk_exceptions.HttpException(response=response)
            return response

        response = self.policy.run(once, what)
        return Reply(response.status_code, error_text(response.text))

    def stores(self) -> list[dict[str, Any]] | None:
        response = self.glance.response("get", "/info/stores")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise StackferryError(
                f"glance answered GET /v2/info/stores with HTTP {response.status_code}: "
                + error_text(response.text)
            )
        return list(response.json().get("stores") or [])

    def import_methods(self) -> list[str]:
        response = self.glance.response("get", "/info/import")
        if response.status_code >= 400:
            return []
        return list(response.json().get("import-methods", {}).get("value") or [])

    def get(self, image_id: str) -> Image | None:
        return self.glance.find(image_id)

    def images(self, owner: str | None = None, name: str | None = None) -> list[Image]:
        query = {k: v for k, v in (("owner", owner), ("name", name)) if v}
        return self.glance.images(**query)

    def task(self, task_id: str) -> dict[str, Any] | None:
        response = self.glance.response("get", f"/tasks/{task_id}")
        if response.status_code == 404:
            return {"id": task_id, "status": "missing"}
        return dict(response.json()) if response.status_code == 200 else None

    def copy(self, image_id: str, store: str) -> Reply:
        call = partial(self.glance.copy_to_store, image_id, store)
        return self._write(call, f"POST glance /images/{image_id}/import")

    def remove(self, image_id: str, store: str) -> Reply:
        call = partial(self.glance.remove_from_store, image_id, store)
        return self._write(call, f"DELETE glance /stores/{store}/{image_id}")

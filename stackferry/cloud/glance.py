"""Glance's v2 API, the one client of it: paging (hidden images included), JSON patch,
members, stores and imports - for the image kind, the volume copies and the store mover.

openstacksdk's image proxy models images with a field list that drops custom properties
and hides ``os_hidden`` images from lists, so stackferry speaks the REST API through the
proxy: the connection's retry policy and counters apply as to every other call.
"""

from __future__ import annotations

from typing import Any

from openstack import exceptions
from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.cloud.connection import rest

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
PAGE = 200


class Glance:
    def __init__(self, conn: Connection) -> None:
        self.proxy = sdk.image(conn)

    def images(self, **query: str) -> list[dict[str, Any]]:
        """Every image matching ``query``, hidden ones too (glance lists those only when
        asked), one call per page of PAGE, in ID order."""
        found: dict[str, dict[str, Any]] = {}
        for hidden in ("false", "true"):
            params: dict[str, Any] = {**query, "limit": PAGE, "os_hidden": hidden, "sort": "id:asc"}
            while True:
                page = rest(self.proxy, "get", "/images", params=params).json()["images"]
                found.update((i["id"], dict(i)) for i in page)
                if len(page) < PAGE:
                    break
                params["marker"] = page[-1]["id"]
        return list(found.values())

    def get(self, image_id: str) -> dict[str, Any]:
        image: dict[str, Any] = rest(self.proxy, "get", f"/images/{image_id}").json()
        return image

    def find(self, image_id: str) -> dict[str, Any] | None:
        """The image, or None when glance has no such image."""
        try:
            return self.get(image_id)
        except exceptions.NotFoundException:
            return None

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        image: dict[str, Any] = rest(self.proxy, "post", "/images", json=body).json()
        return image

    def delete(self, image_id: str) -> None:
        rest(self.proxy, "delete", f"/images/{image_id}")

    def patch(self, image_id: str, ops: list[dict[str, Any]]) -> None:
        if ops:
            rest(self.proxy, "patch", f"/images/{image_id}", json=ops, headers=PATCH)

    def set(self, image_id: str, **values: Any) -> None:
        """Replace these attributes (``protected=False``...), in one JSON patch."""
        self.patch(
            image_id, [{"op": "replace", "path": f"/{k}", "value": v} for k, v in values.items()]
        )

    def remove_tag(self, image_id: str, tag: str) -> None:
        rest(self.proxy, "delete", f"/images/{image_id}/tags/{tag}")

    def members(self, image_id: str) -> list[dict[str, Any]]:
        response = rest(self.proxy, "get", f"/images/{image_id}/members")
        return list(response.json()["members"])

    def add_member(self, image_id: str, project_id: str) -> None:
        rest(self.proxy, "post", f"/images/{image_id}/members", json={"member": project_id})

    def set_member(self, image_id: str, project_id: str, status: str) -> None:
        rest(
            self.proxy,
            "put",
            f"/images/{image_id}/members/{project_id}",
            json={"status": status},
        )

    def remove_member(self, image_id: str, project_id: str) -> None:
        rest(self.proxy, "delete", f"/images/{image_id}/members/{project_id}")

    # --- stores and imports (multi-store glance) -------------------------------------------

    def response(self, method: str, path: str, **kwargs: Any) -> Any:
        """The raw answer, for callers that decide from its status (404: no multi-store)."""
        return getattr(self.proxy, method)(path, **kwargs)

    def copy_to_store(self, image_id: str, store: str) -> Any:
        body = {"method": {"name": "copy-image"}, "stores": [store]}
        return self.response("post", f"/images/{image_id}/import", json=body)

    def remove_from_store(self, image_id: str, store: str) -> Any:
        return self.response("delete", f"/stores/{store}/{image_id}")

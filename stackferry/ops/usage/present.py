"""What the other services can only tell *now* about a project - they keep no history -
each part stamped with the moment it was read: volumes and their snapshots (count,
gigabytes), images the project owns (count, bytes), floating IPs (count), and the quotas of
nova, neutron and cinder with what is in use.

A service the cloud does not have (no block-storage endpoint, say) is left out, with a note
saying so: an archive of what there is, not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from stackferry.cloud import sdk
from stackferry.cloud.connection import rest
from stackferry.cloud.glance import Glance
from stackferry.ops.usage.windows import iso

NOT_QUOTAS = frozenset({"id", "project_id", "tenant_id"})


class Present(Protocol):
    """``read(project_id)``: the project's present state as a JSON-ready dict."""

    def read(self, project_id: str) -> dict[str, Any]: ...


def _owned(items: Iterable[Any], project_id: str) -> list[Any]:
    """Those of ``items`` that are the project's: asked for by project already, and checked
    again in case a service ignored the filter (an absent project_id is taken as asked)."""
    return [i for i in items if getattr(i, "project_id", None) in (None, project_id)]


def _quotas(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in (document.get(key) or {}).items() if k not in NOT_QUOTAS}


class SdkPresent:
    """:class:`Present` on an openstacksdk connection (admin: every project's resources)."""

    def __init__(self, conn: Any, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.conn = conn
        self.clock = clock

    def _stamped(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"read_at": iso(self.clock()), **values}

    def read(self, project_id: str) -> dict[str, Any]:
        conn, pid = self.conn, project_id
        found: dict[str, Any] = {}
        notes: list[str] = []
        quotas: dict[str, Any] = {}
        if conn.has_service("block-storage"):
            cinder = sdk.block_storage(conn)
            volumes = _owned(cinder.volumes(details=True, all_projects=True, project_id=pid), pid)
            found["volumes"] = self._stamped(
                {"count": len(volumes), "gigabytes": sum(int(v.size or 0) for v in volumes)}
            )
            snapshots = _owned(
                cinder.snapshots(details=True, all_projects=True, project_id=pid), pid
            )
            found["volume_snapshots"] = self._stamped(
                {"count": len(snapshots), "gigabytes": sum(int(s.size or 0) for s in snapshots)}
            )
            answer = rest(cinder, "get", f"/os-quota-sets/{pid}", params={"usage": "True"})
            quotas["block-storage"] = self._stamped({"quotas": _quotas(answer.json(), "quota_set")})
        else:
            notes.append(
                "the cloud has no block-storage service: volumes, volume snapshots and their "
                "quotas are left out"
            )
        if conn.has_service("image"):
            images = Glance(conn).images(owner=pid)
            found["images"] = self._stamped(
                {"count": len(images), "bytes": sum(int(i.get("size") or 0) for i in images)}
            )
        else:
            notes.append("the cloud has no image service: images are left out")
        if conn.has_service("network"):
            ips = _owned(conn.network.ips(project_id=pid), pid)
            found["floating_ips"] = self._stamped({"count": len(ips)})
            answer = rest(conn.network, "get", f"/quotas/{pid}/details")
            quotas["network"] = self._stamped({"quotas": _quotas(answer.json(), "quota")})
        else:
            notes.append(
                "the cloud has no network service: floating IPs and their quotas are left out"
            )
        if conn.has_service("compute"):
            answer = rest(conn.compute, "get", f"/os-quota-sets/{pid}/detail")
            quotas["compute"] = self._stamped({"quotas": _quotas(answer.json(), "quota_set")})
        found["quotas"] = dict(sorted(quotas.items()))
        if notes:
            found["notes"] = notes
        return found

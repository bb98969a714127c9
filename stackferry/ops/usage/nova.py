"""nova's ``os-simple-tenant-usage`` (compute API microversion 2.40, which pages it), read
page by page and summed per project.

What nova returns, and why it is summed as it is (nova/api/openstack/compute/
simple_tenant_usage.py and the DB query under it):

- Pages are cut in the list of *instances*, not of projects: the instances active in the
  window, sorted by (project_id, uuid) in each cell, ``limit`` of them per page, the next page
  starting after the ``marker`` instance. Each page carries one summary per project with its
  totals *for the instances on that page*. So a project whose instances straddle a page
  boundary (or sit in two cells) shows up on several pages, each with a part of its totals:
  the totals are summed over the pages and the ``server_usages`` concatenated.
- One instance's hours are never split: nova reports each instance once per window, with all
  its hours inside the window (from launch, or the window's start, to termination, or the
  window's end), so a window's instance list needs no merging.
- A repeat of an instance on a later page can only come from the listing moving under the
  marker. A repeat with the same data (``uptime`` aside, which nova computes from the moment
  of each request) is a duplicate: it is dropped, and its share taken off the summed totals.
  A repeat whose data differs is, as far as nova says, another piece of the same window: its
  hours are added to the instance's entry and the totals keep it, with a note saying so.

The next page is asked for with the ``marker`` of nova's ``rel: next`` link (and the same
query otherwise), through the connection's own endpoint: the link's host is nova's idea of its
public address, which need not be the one this machine reaches it by.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from openstack import exceptions as sdk_exceptions
from openstack import utils as sdk_utils

from stackferry.cloud.connection import api_message, rest
from stackferry.errors import StackferryError
from stackferry.ops.usage.windows import Window, nova_time, parse_nova_time

MICROVERSION = "2.40"  # the first that pages os-simple-tenant-usage (limit, marker, links)
LISTING = "/os-simple-tenant-usage"
# nova computes ``uptime`` from the moment it answers: it differs between two reads of the
# same instance without anything having changed.
MOMENTARY = frozenset({"uptime"})


@dataclass
class Totals:
    """A project's (or a step's, or the cloud's) totals, in nova's words."""

    total_hours: float = 0.0
    total_vcpus_usage: float = 0.0
    total_memory_mb_usage: float = 0.0
    total_local_gb_usage: float = 0.0

    def add(self, other: Totals, sign: float = 1.0) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + sign * getattr(other, f.name))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def of_summary(cls, summary: dict[str, Any]) -> Totals:
        return cls(*(float(summary.get(f.name) or 0) for f in fields(cls)))

    @classmethod
    def of_server(cls, server: dict[str, Any]) -> Totals:
        """One server's share of its project's totals, as nova computes it."""
        hours = float(server.get("hours") or 0)
        return cls(
            hours,
            float(server.get("vcpus") or 0) * hours,
            float(server.get("memory_mb") or 0) * hours,
            float(server.get("local_gb") or 0) * hours,
        )

    @classmethod
    def sum(cls, parts: Iterable[Totals]) -> Totals:
        total = cls()
        for part in parts:
            total.add(part)
        return total


SERVER_FIELDS = (
    "instance_id",
    "name",
    "flavor",
    "vcpus",
    "memory_mb",
    "local_gb",
    "hours",
    "state",
    "started_at",
    "ended_at",
)


@dataclass
class ProjectUsage:
    """One project's usage in one window, summed over nova's pages."""

    project_id: str
    totals: Totals = field(default_factory=Totals)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance_id -> usage
    notes: list[str] = field(default_factory=list)

    def add_page(self, summary: dict[str, Any]) -> None:
        self.totals.add(Totals.of_summary(summary))
        for server in summary.get("server_usages") or []:
            self._add_server(dict(server))

    def _add_server(self, server: dict[str, Any]) -> None:
        instance_id = str(server.get("instance_id") or "")
        seen = self.servers.get(instance_id)
        if seen is None:
            self.servers[instance_id] = server
            return
        if _lasting(seen) == _lasting(server):
            self.totals.add(Totals.of_server(server), sign=-1.0)  # counted twice by the pages
            return
        seen["hours"] = float(seen.get("hours") or 0) + float(server.get("hours") or 0)
        self.notes.append(
            f"nova reported instance {instance_id} twice in one window with different data; "
            "its hours are the sum of both"
        )

    def server_rows(self) -> list[dict[str, Any]]:
        """The servers, each with the fields the archive keeps, by start time and name."""
        rows = [{k: s.get(k) for k in SERVER_FIELDS} for s in self.servers.values()]
        return sorted(rows, key=lambda r: (str(r["started_at"] or ""), str(r["name"] or "")))

    def used_between(self, window: Window) -> Window | None:
        """The part of ``window`` in which the project used anything: from its first server's
        start to its last server's end (the window's end while one still runs)."""
        if not self.servers:
            return None
        starts, ends = [], []
        for server in self.servers.values():
            starts.append(parse_nova_time(server.get("started_at")) or window.start)
            ends.append(parse_nova_time(server.get("ended_at")) or window.end)
        lo, hi = max(window.start, min(starts)), min(window.end, max(ends))
        return Window(lo, hi) if lo < hi else None


def _lasting(server: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in server.items() if k not in MOMENTARY}


class UsageApi(Protocol):
    """One page of os-simple-tenant-usage; :class:`SdkUsage` on a cloud, fakes in tests."""

    def page(
        self, window: Window, project_id: str | None, limit: int | None, marker: str | None
    ) -> dict[str, Any]:
        """nova's answer as it is: ``{"tenant_usages": [...], "tenant_usages_links": [...]}``
        for every project (detailed), ``{"tenant_usage": {...}, "tenant_usage_links": [...]}``
        for one. Raises openstacksdk's HttpException on an error status."""
        ...


def next_marker(links: Iterable[dict[str, Any]] | None) -> str | None:
    """The ``marker`` of the ``rel: next`` link, if there is one."""
    for link in links or []:
        if link.get("rel") == "next":
            markers = parse_qs(urlsplit(str(link.get("href") or "")).query).get("marker")
            return markers[-1] if markers else None
    return None


def read_usage(
    api: UsageApi,
    window: Window,
    project_id: str | None = None,
    limit: int | None = None,
    cloud: str = "cloud",
) -> dict[str, ProjectUsage]:
    """Every project's usage in ``window`` (or one project's), all pages summed: project ID ->
    usage. A project without usage in the window is not in it."""
    found: dict[str, ProjectUsage] = {}
    markers: set[str] = set()
    marker: str | None = None
    while True:
        try:
            body = api.page(window, project_id, limit, marker)
        except sdk_exceptions.ForbiddenException as exc:
            raise StackferryError(_refused(cloud, project_id, exc)) from None
        if project_id is None:
            summaries = list(body.get("tenant_usages") or [])
            links = body.get("tenant_usages_links")
        else:
            one = body.get("tenant_usage") or {}
            summaries = [one] if one else []
            links = body.get("tenant_usage_links")
        for summary in summaries:
            pid = str(summary.get("tenant_id") or project_id or "")
            found.setdefault(pid, ProjectUsage(pid)).add_page(summary)
        marker = next_marker(links)
        if marker is None:
            return found
        if marker in markers:
            raise StackferryError(
                f"cloud {cloud}: nova's usage pages go round in a circle (marker {marker} "
                "again); re-run, or use a larger --page-limit"
            )
        markers.add(marker)


def _refused(cloud: str, project_id: str | None, exc: Exception) -> str:
    if project_id is None:
        return (
            f"cloud {cloud}: nova refused the usage of all projects ({api_message(exc)}): "
            "listing every project's usage needs admin credentials (nova's policy "
            "os_compute_api:os-simple-tenant-usage:list); use an admin cloud entry, or "
            "--project for projects these credentials may read"
        )
    return (
        f"cloud {cloud}: nova refused the usage of project {project_id} ({api_message(exc)}): "
        "admin credentials (or a member of that project) are needed"
    )


class SdkUsage:
    """:class:`UsageApi` on an openstacksdk connection."""

    def __init__(self, conn: Any) -> None:
        self.compute = conn.compute

    def supports_paging(self) -> bool:
        return bool(sdk_utils.supports_microversion(self.compute, MICROVERSION))

    def page(
        self, window: Window, project_id: str | None, limit: int | None, marker: str | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"start": nova_time(window.start), "end": nova_time(window.end)}
        if project_id is None:
            params["detailed"] = 1
        if limit is not None:
            params["limit"] = limit
        if marker is not None:
            params["marker"] = marker
        path = LISTING if project_id is None else f"{LISTING}/{project_id}"
        response = rest(self.compute, "get", path, params=params, microversion=MICROVERSION)
        body: dict[str, Any] = response.json()
        return body

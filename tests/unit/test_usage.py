"""stackferry usage: step windows, nova's pages summed, the archive assembled - against a fake
nova that computes usage and pages it as nova's os-simple-tenant-usage does (instances sorted
by project and uuid, ``limit`` per page, a ``rel: next`` link with a marker, hours clipped to
the window). The real nova is exercised in tests/cloud/test_usage.py."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from openstack import exceptions as sdk_exceptions

from stackferry.errors import StackferryError
from stackferry.ops.usage import nova as usage_nova
from stackferry.ops.usage.archive import Request, project_file, read_archive
from stackferry.ops.usage.nova import ProjectUsage, next_marker, read_usage
from stackferry.ops.usage.windows import (
    Step,
    Window,
    bucket_label,
    clip,
    next_boundary,
    nova_time,
    parse_nova_time,
    parse_time,
    step_windows,
)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spans(windows: list[Window]) -> list[tuple[str, str]]:
    return [(w.start.isoformat()[:16], w.end.isoformat()[:16]) for w in windows]


# ---- windows ------------------------------------------------------------------------------------


def test_month_steps_cut_at_the_first_of_each_month() -> None:
    cuts = step_windows(Window(t("2024-01-15"), t("2024-03-02")), Step.MONTH)
    assert spans(cuts) == [
        ("2024-01-15T00:00", "2024-02-01T00:00"),
        ("2024-02-01T00:00", "2024-03-01T00:00"),
        ("2024-03-01T00:00", "2024-03-02T00:00"),
    ]
    assert [w.hours for w in cuts] == [17 * 24, 29 * 24, 24]  # 2024 is a leap year


def test_month_lengths_leap_years_and_the_year_end() -> None:
    year = step_windows(Window(t("2023-12-01"), t("2025-01-01")), Step.MONTH)
    assert len(year) == 13
    days = [round(w.hours / 24) for w in year]
    assert days == [31, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert year[0].end == t("2024-01-01") and year[-1].start == t("2024-12-01")
    assert round(step_windows(Window(t("2023-02-01"), t("2023-03-01")), Step.MONTH)[0].hours) == (
        28 * 24
    )
    assert round(step_windows(Window(t("1900-02-01"), t("1900-03-01")), Step.MONTH)[0].hours) == (
        28 * 24  # divisible by 100, not by 400: not a leap year
    )
    assert next_boundary(t("2000-02-10"), Step.MONTH) == t("2000-03-01")


def test_day_steps_across_february_in_leap_and_common_years() -> None:
    leap = step_windows(Window(t("2024-02-28T12:00"), t("2024-03-01T06:00")), Step.DAY)
    assert spans(leap) == [
        ("2024-02-28T12:00", "2024-02-29T00:00"),
        ("2024-02-29T00:00", "2024-03-01T00:00"),
        ("2024-03-01T00:00", "2024-03-01T06:00"),
    ]
    common = step_windows(Window(t("2023-02-28"), t("2023-03-02")), Step.DAY)
    assert spans(common) == [
        ("2023-02-28T00:00", "2023-03-01T00:00"),
        ("2023-03-01T00:00", "2023-03-02T00:00"),
    ]


def test_hour_steps_are_clipped_at_both_ends() -> None:
    cuts = step_windows(Window(t("2024-05-01T10:37"), t("2024-05-01T13:05")), Step.HOUR)
    assert spans(cuts) == [
        ("2024-05-01T10:37", "2024-05-01T11:00"),
        ("2024-05-01T11:00", "2024-05-01T12:00"),
        ("2024-05-01T12:00", "2024-05-01T13:00"),
        ("2024-05-01T13:00", "2024-05-01T13:05"),
    ]
    assert sum(w.hours for w in cuts) == pytest.approx(2 + 28 / 60)
    across_midnight = step_windows(Window(t("2024-12-31T23:30"), t("2025-01-01T00:30")), Step.HOUR)
    assert spans(across_midnight) == [
        ("2024-12-31T23:30", "2025-01-01T00:00"),
        ("2025-01-01T00:00", "2025-01-01T00:30"),
    ]
    assert step_windows(Window(t("2024-05-01T10:00"), t("2024-05-01T11:00")), Step.HOUR) == [
        Window(t("2024-05-01T10:00"), t("2024-05-01T11:00"))
    ]


def test_clip_and_labels() -> None:
    window = Window(t("2024-01-01"), t("2024-02-01"))
    assert clip(window, t("2024-01-10"), t("2024-03-01")) == Window(
        t("2024-01-10"), t("2024-02-01")
    )
    assert clip(window, t("2024-02-01"), t("2024-03-01")) is None
    assert bucket_label(t("2024-02-29T13:45"), Step.HOUR) == "2024-02-29 13:00"
    assert bucket_label(t("2024-02-29T13:45"), Step.DAY) == "2024-02-29"
    assert bucket_label(t("2024-02-29T13:45"), Step.MONTH) == "2024-02"


def test_times_are_read_as_utc_and_refused_when_not_times() -> None:
    assert parse_time("2024-01-15", "--since") == t("2024-01-15")
    assert parse_time("2024-01-15T10:30", "--since") == t("2024-01-15T10:30")
    assert parse_time("2024-01-15T10:30+02:00", "--since") == t("2024-01-15T08:30")
    assert parse_time("2024-01-15T10:30Z", "--since") == t("2024-01-15T10:30")
    for bad in ("2024-13-01", "yesterday", "15/01/2024", ""):
        with pytest.raises(StackferryError, match=r"--since .* is not a date or time"):
            parse_time(bad, "--since")
    # nova parses a time without a zone as UTC, and refuses one with a zone
    assert nova_time(parse_time("2024-01-15T10:30+02:00", "x")) == "2024-01-15T08:30:00.000000"
    assert parse_nova_time("2024-01-15T08:30:00.000000") == t("2024-01-15T08:30")
    assert parse_nova_time(None) is None


# ---- a nova that computes usage as nova does ----------------------------------------------------


@dataclass
class Instance:
    uuid: str
    project_id: str
    name: str
    launched_at: datetime
    terminated_at: datetime | None = None
    flavor: str = "m1.small"
    vcpus: int = 2
    memory_mb: int = 2048
    local_gb: int = 20
    vm_state: str = "active"


class ModelNova:
    """os-simple-tenant-usage at microversion 2.40, computed from instances the way nova's
    controller and its DB query do; every call is recorded."""

    def __init__(self, instances: list[Instance], max_limit: int = 1000) -> None:
        self.instances = instances
        self.max_limit = max_limit
        self.calls: list[dict[str, Any]] = []
        self.forbidden_listing = False

    @staticmethod
    def hours(i: Instance, window: Window) -> float:
        if i.terminated_at and i.terminated_at < window.start:
            return 0
        if i.launched_at > window.end:
            return 0
        start = max(i.launched_at, window.start)
        stop = min(window.end, i.terminated_at) if i.terminated_at else window.end
        return (stop - start).total_seconds() / 3600

    def page(
        self, window: Window, project_id: str | None, limit: int | None, marker: str | None
    ) -> dict[str, Any]:
        self.calls.append(
            {"window": window, "project": project_id, "limit": limit, "marker": marker}
        )
        if project_id is None and self.forbidden_listing:
            raise sdk_exceptions.ForbiddenException(
                message="Policy doesn't allow os_compute_api:os-simple-tenant-usage:list",
                http_status=403,
            )
        active = sorted(
            (
                i
                for i in self.instances
                if (i.terminated_at is None or i.terminated_at > window.start)
                and i.launched_at < window.end
                and (project_id is None or i.project_id == project_id)
            ),
            key=lambda i: (i.project_id, i.uuid),
        )
        if marker is not None:
            keys = [(i.project_id, i.uuid) for i in active]
            marked = next(i for i in self.instances if i.uuid == marker)
            active = active[keys.index((marked.project_id, marked.uuid)) + 1 :]
        size = limit or self.max_limit
        chosen = active[:size]
        summaries: dict[str, dict[str, Any]] = {}
        for i in chosen:
            hours = self.hours(i, window)
            info = {
                "hours": hours,
                "flavor": i.flavor,
                "instance_id": i.uuid,
                "name": i.name,
                "tenant_id": i.project_id,
                "memory_mb": i.memory_mb,
                "local_gb": i.local_gb,
                "vcpus": i.vcpus,
                "started_at": i.launched_at.replace(tzinfo=None).isoformat(),
                "ended_at": i.terminated_at.replace(tzinfo=None).isoformat()
                if i.terminated_at
                else None,
                "state": "terminated" if i.terminated_at else i.vm_state,
                "uptime": len(self.calls),  # nova's is computed from the time of the request
            }
            summary = summaries.setdefault(
                i.project_id,
                {
                    "tenant_id": i.project_id,
                    "server_usages": [],
                    "total_local_gb_usage": 0,
                    "total_vcpus_usage": 0,
                    "total_memory_mb_usage": 0,
                    "total_hours": 0,
                    "start": nova_time(window.start),
                    "stop": nova_time(window.end),
                },
            )
            summary["total_local_gb_usage"] += i.local_gb * hours
            summary["total_vcpus_usage"] += i.vcpus * hours
            summary["total_memory_mb_usage"] += i.memory_mb * hours
            summary["total_hours"] += hours
            summary["server_usages"].append(info)
        links = []
        if chosen and len(chosen) == size:
            query = {"start": nova_time(window.start), "end": nova_time(window.end)}
            query |= {"limit": str(size), "marker": chosen[-1].uuid}
            path = "os-simple-tenant-usage" + (f"/{project_id}" if project_id else "")
            links = [{"rel": "next", "href": f"http://nova.invalid/v2.1/{path}?{urlencode(query)}"}]
        if project_id is None:
            body: dict[str, Any] = {"tenant_usages": list(summaries.values())}
            if links:
                body["tenant_usages_links"] = links
            return body
        body = {"tenant_usage": summaries.get(project_id, {})}
        if links:
            body["tenant_usage_links"] = links
        return body


class ScriptedNova:
    """Answers the pages given, in turn, whatever is asked; records the markers."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = [copy.deepcopy(p) for p in pages]
        self.markers: list[str | None] = []
        self.limits: list[int | None] = []

    def page(
        self, window: Window, project_id: str | None, limit: int | None, marker: str | None
    ) -> dict[str, Any]:
        self.markers.append(marker)
        self.limits.append(limit)
        return self.pages.pop(0)


def server(uuid: str, project: str, hours: float, vcpus: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "instance_id": uuid,
        "name": f"vm-{uuid}",
        "tenant_id": project,
        "flavor": "m1.small",
        "vcpus": vcpus,
        "memory_mb": 1024,
        "local_gb": 10,
        "hours": hours,
        "state": "active",
        "started_at": "2024-01-01T00:00:00.000000",
        "ended_at": None,
        "uptime": 100,
        **extra,
    }


def summary(project: str, *servers: dict[str, Any]) -> dict[str, Any]:
    """A project's summary on one page: totals of the servers on that page, as nova adds them."""
    return {
        "tenant_id": project,
        "server_usages": list(servers),
        "total_hours": sum(s["hours"] for s in servers),
        "total_vcpus_usage": sum(s["vcpus"] * s["hours"] for s in servers),
        "total_memory_mb_usage": sum(s["memory_mb"] * s["hours"] for s in servers),
        "total_local_gb_usage": sum(s["local_gb"] * s["hours"] for s in servers),
        "start": "2024-01-01T00:00:00.000000",
        "stop": "2024-02-01T00:00:00.000000",
    }


def next_link(marker: str, key: str = "tenant_usages_links") -> dict[str, Any]:
    href = f"http://nova.invalid/v2.1/os-simple-tenant-usage?detailed=1&limit=2&marker={marker}"
    return {key: [{"rel": "next", "href": href}]}


JAN = Window(t("2024-01-01"), t("2024-02-01"))


# ---- pages summed -------------------------------------------------------------------------------


def test_a_project_split_over_two_pages_is_summed() -> None:
    nova = ScriptedNova(
        [
            {
                "tenant_usages": [
                    summary("p1", server("a", "p1", 10.0), server("b", "p1", 5.5, vcpus=4))
                ],
                **next_link("b"),
            },
            {
                "tenant_usages": [
                    summary("p1", server("c", "p1", 2.25)),
                    summary("p2", server("d", "p2", 1.0, vcpus=1)),
                ]
            },
        ]
    )
    found = read_usage(nova, JAN, None, limit=2)
    assert nova.markers == [None, "b"] and nova.limits == [2, 2]
    assert set(found) == {"p1", "p2"}
    p1 = found["p1"].totals
    assert p1.total_hours == pytest.approx(17.75)
    assert p1.total_vcpus_usage == pytest.approx(10 * 2 + 5.5 * 4 + 2.25 * 2)
    assert p1.total_memory_mb_usage == pytest.approx(17.75 * 1024)
    assert p1.total_local_gb_usage == pytest.approx(177.5)
    assert list(found["p1"].servers) == ["a", "b", "c"]
    assert found["p2"].totals.total_vcpus_usage == pytest.approx(1.0)
    assert found["p1"].notes == []


def test_one_projects_pages_follow_tenant_usage_links() -> None:
    nova = ScriptedNova(
        [
            {
                "tenant_usage": summary("p1", server("a", "p1", 3.0)),
                **next_link("a", "tenant_usage_links"),
            },
            {
                "tenant_usage": summary("p1", server("b", "p1", 4.0)),
                **next_link("b", "tenant_usage_links"),
            },
            {"tenant_usage": {}},  # a full last page has a next link to an empty one
        ]
    )
    found = read_usage(nova, JAN, "p1", limit=1)
    assert nova.markers == [None, "a", "b"]
    assert found["p1"].totals.total_hours == pytest.approx(7.0)
    assert [r["instance_id"] for r in found["p1"].server_rows()] == ["a", "b"]


def test_a_repeated_instance_is_counted_once_and_a_differing_one_as_pieces() -> None:
    same = server("a", "p1", 10.0)
    nova = ScriptedNova(
        [
            {"tenant_usages": [summary("p1", same)], **next_link("a")},
            {
                "tenant_usages": [summary("p1", {**same, "uptime": 999}, server("b", "p1", 1.0))],
                **next_link("b"),
            },
            {"tenant_usages": [summary("p1", server("b", "p1", 0.5))]},
        ]
    )
    found = read_usage(nova, JAN)["p1"]
    assert found.totals.total_hours == pytest.approx(10.0 + 1.0 + 0.5)  # a once, b's pieces
    assert found.totals.total_vcpus_usage == pytest.approx(2 * 11.5)
    assert {r["instance_id"]: r["hours"] for r in found.server_rows()} == {"a": 10.0, "b": 1.5}
    assert len(found.notes) == 1 and "instance b" in found.notes[0]


def test_refused_listing_says_admin_credentials_are_needed() -> None:
    nova = ModelNova([])
    nova.forbidden_listing = True
    with pytest.raises(StackferryError, match="needs admin credentials") as refused:
        read_usage(nova, JAN, None, cloud="c1")
    assert "HTTP 403" in str(refused.value) and "cloud c1" in str(refused.value)


def test_pages_going_round_in_a_circle_are_an_error_not_a_hang() -> None:
    page = {"tenant_usages": [summary("p1", server("a", "p1", 1.0))], **next_link("a")}
    with pytest.raises(StackferryError, match="circle"):
        read_usage(ScriptedNova([page, page, page]), JAN)


def test_next_marker_reads_the_next_link_only() -> None:
    assert next_marker(None) is None
    assert next_marker([{"rel": "self", "href": "http://x/?marker=no"}]) is None
    assert next_marker([{"rel": "next", "href": "http://x/a?limit=1&marker=m-1"}]) == "m-1"


def test_paging_by_one_sums_to_what_one_page_says() -> None:
    instances = [
        Instance(f"u{n}", f"p{n % 3}", f"vm{n}", t("2024-01-03") + timedelta(hours=7 * n))
        for n in range(7)
    ]
    instances[2].terminated_at = t("2024-01-20")
    paged_nova, whole_nova = ModelNova(instances), ModelNova(instances)
    paged = read_usage(paged_nova, JAN, None, limit=1)
    whole = read_usage(whole_nova, JAN, None)
    assert len(paged_nova.calls) == 8 and len(whole_nova.calls) == 1  # 7 full pages, 1 empty
    assert set(paged) == set(whole) == {"p0", "p1", "p2"}
    for pid in whole:
        assert paged[pid].totals.as_dict() == pytest.approx(whole[pid].totals.as_dict())
        assert sorted(paged[pid].servers) == sorted(whole[pid].servers)
    assert [c["marker"] for c in paged_nova.calls[:3]] == [None, "u0", "u3"]  # by project, uuid


def test_used_between_is_first_start_to_last_end_inside_the_window() -> None:
    usage = ProjectUsage("p")
    usage.add_page(
        summary(
            "p",
            server("a", "p", 1, started_at="2023-12-20T00:00:00", ended_at="2024-01-05T00:00:00"),
            server("b", "p", 1, started_at="2024-01-10T00:00:00", ended_at="2024-01-12T06:00:00"),
        )
    )
    assert usage.used_between(JAN) == Window(t("2024-01-01"), t("2024-01-12T06:00"))
    usage.add_page(summary("p", server("c", "p", 1, started_at="2024-01-11T00:00:00")))
    assert usage.used_between(JAN) == Window(t("2024-01-01"), t("2024-02-01"))  # c still runs
    assert ProjectUsage("q").used_between(JAN) is None


# ---- the archive --------------------------------------------------------------------------------


class FakePresent:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def read(self, project_id: str) -> dict[str, Any]:
        self.asked.append(project_id)
        return {"volumes": {"read_at": "now", "count": 1, "gigabytes": 10}, "quotas": {}}


def fleet() -> list[Instance]:
    return [
        Instance("a1", "pa", "web", t("2024-01-20T06:00"), t("2024-02-10T18:00")),
        Instance("a2", "pa", "db", t("2024-02-05"), vcpus=8, memory_mb=16384),
        Instance("b1", "pb", "batch", t("2024-02-20"), t("2024-02-21T12:00"), vcpus=1),
        Instance("x1", "pa", "old", t("2023-11-01"), t("2023-12-01")),  # before the window
    ]


def request(projects: list[tuple[str, str]] | None, step: Step = Step.MONTH) -> Request:
    window = Window(t("2024-01-15"), t("2024-03-02"))
    return Request("c1", window, step, t("2024-03-02T00:00"), projects, page_limit=1)


def test_all_projects_archive_steps_from_first_to_last_usage() -> None:
    nova = ModelNova(fleet())
    present = FakePresent()
    archive = read_archive(nova, present, request(None), {"pa": "alpha", "pb": "<b>"})
    pa, pb = archive.projects["pa"], archive.projects["pb"]
    # pa: from web's start (Jan 20 06:00) to the window's end (db still runs)
    assert [(s["start"][:16], s["end"][:16]) for s in pa["steps"]] == [
        ("2024-01-20T06:00", "2024-02-01T00:00"),
        ("2024-02-01T00:00", "2024-03-01T00:00"),
        ("2024-03-01T00:00", "2024-03-02T00:00"),
    ]
    web_jan = (t("2024-02-01") - t("2024-01-20T06:00")).total_seconds() / 3600
    assert pa["steps"][0]["total_hours"] == pytest.approx(web_jan)
    assert pa["steps"][0]["servers"] == 1 and pa["steps"][1]["servers"] == 2
    db_feb = (t("2024-03-01") - t("2024-02-05")).total_seconds() / 3600
    web_feb = (t("2024-02-10T18:00") - t("2024-02-01")).total_seconds() / 3600
    assert pa["steps"][1]["total_hours"] == pytest.approx(db_feb + web_feb)
    assert pa["steps"][1]["total_vcpus_usage"] == pytest.approx(8 * db_feb + 2 * web_feb)
    for key in ("total_hours", "total_vcpus_usage", "total_memory_mb_usage"):
        assert sum(s[key] for s in pa["steps"]) == pytest.approx(pa["totals"][key])
    # pb used the cloud on two days of February only: one step, clipped to them
    assert [(s["start"][:16], s["end"][:16]) for s in pb["steps"]] == [
        ("2024-02-20T00:00", "2024-02-21T12:00")
    ]
    assert pb["totals"]["total_hours"] == pytest.approx(36.0)
    # one listing for the whole window, then one per step window (pages of 1 each)
    windows = [c["window"] for c in nova.calls if c["marker"] is None]
    assert windows == [
        Window(t("2024-01-15"), t("2024-03-02")),
        Window(t("2024-01-20T06:00"), t("2024-02-01")),
        Window(t("2024-02-01"), t("2024-03-01")),
        Window(t("2024-03-01"), t("2024-03-02")),
    ]
    assert all(c["project"] is None and c["limit"] == 1 for c in nova.calls)
    # the servers, the present state, the summary
    assert [s["name"] for s in pa["servers"]] == ["web", "db"]
    db = pa["servers"][1]
    assert (db["flavor"], db["vcpus"], db["memory_mb"], db["local_gb"], db["state"]) == (
        "m1.small",
        8,
        16384,
        20,
        "active",
    )
    assert db["ended_at"] is None and pa["servers"][0]["ended_at"].startswith("2024-02-10T18")
    assert "uptime" not in db
    assert present.asked == ["pb", "pa"]  # by name: "<b>" < "alpha"
    assert pa["now"]["volumes"]["count"] == 1
    summary_doc = archive.summary
    assert [p["id"] for p in summary_doc["projects"]] == ["pb", "pa"]
    assert summary_doc["totals"]["servers"] == 3 and summary_doc["totals"]["projects"] == 2
    assert summary_doc["totals"]["total_hours"] == pytest.approx(
        pa["totals"]["total_hours"] + pb["totals"]["total_hours"]
    )
    assert summary_doc["window"] == {
        "start": "2024-01-15T00:00:00+00:00",
        "end": "2024-03-02T00:00:00+00:00",
    }
    assert summary_doc["step"] == "month" and summary_doc["cloud"] == "c1"
    assert summary_doc["read_at"] == "2024-03-02T00:00:00+00:00"


def test_named_projects_ask_nova_about_their_own_windows() -> None:
    nova = ModelNova(fleet())
    archive = read_archive(
        nova, FakePresent(), request([("pb", "beta"), ("pc", "empty")], Step.DAY)
    )
    pb = archive.projects["pb"]
    assert [s["label"] for s in pb["steps"]] == ["2024-02-20", "2024-02-21"]
    assert [s["total_hours"] for s in pb["steps"]] == pytest.approx([24.0, 12.0])
    assert {c["project"] for c in nova.calls} == {"pb", "pc"}
    assert archive.projects["pc"]["steps"] == [] and archive.projects["pc"]["servers"] == []
    assert archive.projects["pc"]["used"] is None
    assert archive.summary["projects"][0]["name"] == "beta"


def test_hour_steps_for_a_short_run() -> None:
    nova = ModelNova([Instance("h1", "ph", "vm", t("2024-05-01T10:37"), t("2024-05-01T12:10"))])
    window = Window(t("2024-05-01T10:00"), t("2024-05-01T13:00"))
    archive = read_archive(
        nova, FakePresent(), Request("c1", window, Step.HOUR, window.end, [("ph", "h")])
    )
    steps = archive.projects["ph"]["steps"]
    assert [s["label"] for s in steps] == [
        "2024-05-01 10:00",
        "2024-05-01 11:00",
        "2024-05-01 12:00",
    ]
    assert [s["total_hours"] for s in steps] == pytest.approx([23 / 60, 1.0, 10 / 60])


def test_project_files_are_named_by_id_never_by_a_path() -> None:
    assert project_file("0f1e2d3c4b5a") == "projects/0f1e2d3c4b5a.json"
    odd = project_file("../../etc/passwd")
    assert odd.startswith("projects/project-") and "/.." not in odd and odd.count("/") == 1


def test_the_sdk_adapter_asks_nova_at_2_40_with_its_parameters() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    class Response:
        status_code = 200

        def json(self) -> dict[str, Any]:
            return {"tenant_usages": []}

    class Compute:
        def get(self, path: str, **kwargs: Any) -> Response:
            asked.append((path, kwargs))
            return Response()

    class Conn:
        compute = Compute()

    api = usage_nova.SdkUsage(Conn())
    api.page(JAN, None, 5, "m")
    api.page(JAN, "p1", None, None)
    assert asked == [
        (
            "/os-simple-tenant-usage",
            {
                "params": {
                    "start": "2024-01-01T00:00:00.000000",
                    "end": "2024-02-01T00:00:00.000000",
                    "detailed": 1,
                    "limit": 5,
                    "marker": "m",
                },
                "microversion": "2.40",
            },
        ),
        (
            "/os-simple-tenant-usage/p1",
            {
                "params": {
                    "start": "2024-01-01T00:00:00.000000",
                    "end": "2024-02-01T00:00:00.000000",
                },
                "microversion": "2.40",
            },
        ),
    ]

"""stackferry usage: the command (its checks, its files, its refusals), the HTML page and the
present-state reads, without a cloud."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import stackferry.cli.usage as command
from stackferry.cli.main import cli
from stackferry.errors import StackferryError
from stackferry.ops.usage.chart import Series, bar_chart, nice_ceiling, render_html, series
from stackferry.ops.usage.present import SdkPresent
from stackferry.ops.usage.projects import resolve_projects
from tests.browser import assert_chart_renders, decode_png
from tests.unit.test_usage import FakePresent, Instance, ModelNova, t

SCRIPT_NAME = "<script>alert('x')</script>"


class PagingNova(ModelNova):
    def __init__(self, instances: list[Instance], paging: bool = True) -> None:
        super().__init__(instances)
        self.paging = paging

    def supports_paging(self) -> bool:
        return self.paging


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> PagingNova:
    nova = PagingNova(
        [
            Instance("a1", "pa", "web & <b>", t("2024-01-20T06:00"), t("2024-02-10T18:00")),
            Instance("b1", "pb", "batch", t("2024-02-20"), t("2024-02-21T12:00"), vcpus=1),
        ]
    )
    monkeypatch.setattr(command, "connect", lambda cloud, counter, label: object())
    monkeypatch.setattr(command, "SdkUsage", lambda conn: nova)
    monkeypatch.setattr(command, "SdkPresent", lambda conn: FakePresent())
    monkeypatch.setattr(command, "project_names", lambda conn: {"pa": SCRIPT_NAME, "pb": "beta"})
    monkeypatch.setattr(
        command, "resolve_projects", lambda conn, refs, cloud: [("pb", "beta")] if refs else []
    )
    return nova


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["usage", "--cloud", "c1", *args], env={"COLUMNS": "200"})


def test_the_archive_is_written_whole_and_private(cloud: PagingNova, tmp_path: Path) -> None:
    out = tmp_path / "archive"
    result = invoke(
        "--all-projects",
        "--since",
        "2024-01-15",
        "--until",
        "2024-03-02",
        "--page-limit",
        "1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "projects",
        "projects/pa.json",
        "projects/pb.json",
        "summary.json",
        "usage.html",
    ]
    for path in out.rglob("*"):
        assert oct(path.stat().st_mode & 0o777) == ("0o700" if path.is_dir() else "0o600")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["projects"] == 2 and summary["totals"]["servers"] == 2
    web = (t("2024-02-10T18:00") - t("2024-01-20T06:00")).total_seconds() / 3600
    assert summary["totals"]["total_hours"] == pytest.approx(web + 36)
    assert {p["file"] for p in summary["projects"]} == {"projects/pa.json", "projects/pb.json"}
    pa = json.loads((out / "projects" / "pa.json").read_text())
    assert pa["project"] == {"id": "pa", "name": SCRIPT_NAME}
    assert pa["servers"][0]["name"] == "web & <b>" and len(pa["steps"]) == 2
    assert "2 project(s), 2 server(s)" in result.output and "wrote 4 file(s)" in result.output
    assert "a1" not in result.output and "b1" not in result.output  # no instance IDs
    html = (out / "usage.html").read_text()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<script" not in html and "web &amp; &lt;b&gt;" in html
    assert not re.search(r"(src|href)=|https?://|@import|url\(", html)  # nothing from elsewhere


def test_named_projects_are_resolved_and_asked_about_one_by_one(
    cloud: PagingNova, tmp_path: Path
) -> None:
    result = invoke(
        "--project",
        "beta",
        "--since",
        "2024-02-01",
        "--until",
        "2024-03-01",
        "--step",
        "day",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "o" / "projects" / "pb.json").read_text())
    assert [s["label"] for s in document["steps"]] == ["2024-02-20", "2024-02-21"]
    assert {c["project"] for c in cloud.calls} == {"pb"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--all-projects", "--since", "2024-03-01", "--until", "2024-02-01"], "is not before"),
        (["--all-projects", "--since", "2024-02-30"], "is not a date or time"),
        (["--all-projects", "--since", "2024-01-01", "--until", "soon"], "--until 'soon'"),
        (["--all-projects", "--since", "2999-01-01"], "is not before --until"),
        (["--since", "2024-01-01"], "either --project"),
        (["--project", "p", "--all-projects", "--since", "2024-01-01"], "either --project"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_cloud(
    args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_cloud(*a: Any) -> None:
        raise AssertionError("the cloud was contacted")

    monkeypatch.setattr(command, "connect", no_cloud)
    out = tmp_path / "out"
    result = invoke(*args, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "connect", lambda *a: pytest.fail("the cloud was contacted"))
    taken = tmp_path / "taken"
    taken.write_text("mine")
    for out in (taken, taken / "below"):
        result = invoke("--all-projects", "--since", "2024-01-01", "--out", str(out))
        assert result.exit_code == 2 and "is a file, not a folder" in result.output
    assert taken.read_text() == "mine"


def test_a_refused_listing_asks_for_admin_and_writes_nothing(
    cloud: PagingNova, tmp_path: Path
) -> None:
    cloud.forbidden_listing = True
    out = tmp_path / "out"
    result = invoke("--all-projects", "--since", "2024-01-01", "--out", str(out))
    assert result.exit_code == 2
    assert "admin credentials" in result.output and "HTTP 403" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_a_nova_without_paging_is_refused(cloud: PagingNova, tmp_path: Path) -> None:
    cloud.paging = False
    result = invoke("--all-projects", "--since", "2024-01-01", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "microversion 2.40" in result.output
    assert cloud.calls == []


def test_a_future_until_ends_the_window_when_it_is_read(cloud: PagingNova, tmp_path: Path) -> None:
    result = invoke(
        "--project",
        "beta",
        "--since",
        "2024-02-01",
        "--until",
        "2999-01-01",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["window"]["end"] <= summary["read_at"]
    assert "is in the future" in summary["notes"][0]


# ---- projects by name or ID ---------------------------------------------------------------------


class Project:
    def __init__(self, pid: str, name: str) -> None:
        self.id, self.name = pid, name


class Identity:
    def __init__(self, projects: list[Project]) -> None:
        self.projects = projects

    def find_project(self, ref: str, ignore_missing: bool = True) -> Project | None:
        return next((p for p in self.projects if ref in (p.id, p.name)), None)


class KeystoneConn:
    def __init__(self, projects: list[Project]) -> None:
        self.identity = Identity(projects)
        self.session = self  # no project-scoped token: ask keystone

    @property
    def auth(self) -> Any:
        raise RuntimeError("no token")


def test_projects_are_found_by_name_or_id_and_unknown_ones_refused() -> None:
    conn = KeystoneConn([Project("id-a", "alpha"), Project("id-b", "beta")])
    assert resolve_projects(conn, ["beta", "id-a", "id-b"], "c1") == [
        ("id-b", "beta"),
        ("id-a", "alpha"),
    ]
    with pytest.raises(StackferryError, match=r"cloud c1: no project 'gamma'"):
        resolve_projects(conn, ["alpha", "gamma"], "c1")


# ---- the page -----------------------------------------------------------------------------------


def project_doc(pid: str, name: str, hours: list[float]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {
            "label": f"2024-0{i + 1}",
            "start": "",
            "end": "",
            "servers": 1,
            "total_hours": h,
            "total_vcpus_usage": 2 * h,
            "total_memory_mb_usage": 0.0,
            "total_local_gb_usage": 0.0,
        }
        for i, h in enumerate(hours)
    ]
    keys = ("total_hours", "total_vcpus_usage", "total_memory_mb_usage", "total_local_gb_usage")
    server = {
        "name": name,
        "instance_id": "i",
        "flavor": "f",
        "vcpus": 2,
        "memory_mb": 1,
        "local_gb": 1,
        "hours": 1.0,
        "state": "active",
        "started_at": "s",
        "ended_at": None,
    }
    return {
        "project": {"id": pid, "name": name},
        "totals": {"servers": 1, **{k: sum(s[k] for s in steps) for k in keys}},
        "steps": steps,
        "servers": [server],
        "now": {"images": {"read_at": "r", "count": 2, "bytes": 3 << 20}},
        "notes": [],
    }


def page_summary(projects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cloud": "c1",
        "window": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-03-01T00:00:00+00:00"},
        "step": "month",
        "read_at": "2024-03-01T00:00:00+00:00",
        "source": "nova",
        "notes": [],
        "totals": {
            "projects": len(projects),
            "servers": len(projects),
            "total_hours": 1.0,
            "total_vcpus_usage": 2.0,
            "total_memory_mb_usage": 0.0,
            "total_local_gb_usage": 0.0,
        },
    }


def test_the_page_escapes_names_and_charts_both_metrics() -> None:
    projects = [project_doc("p1", SCRIPT_NAME, [10.0, 30.0]), project_doc("p2", "b&b", [5.0, 0])]
    html = render_html(page_summary(projects), projects)
    assert "<script" not in html and "&lt;script&gt;" in html and "b&amp;b" in html
    assert html.count("<svg") == 2 and "Instance hours" in html and "vCPU hours" in html
    # p1's 30 h in February is the tallest piece: the full plot height (220) up to a round 50
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', html)]
    assert max(heights) == pytest.approx(220 * 30 / 50)
    assert len(heights) == 2 * 3  # per chart: p1 in both months, p2 in January only
    assert "3.0 MiB" in html
    assert [f">{v}</text>" in html for v in ("0", "12.5", "25", "37.5", "50")] == [True] * 5
    assert (
        "<title>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;, 2024-02: 30.00 h</title>" in html
    )


def test_many_projects_share_the_last_colour() -> None:
    projects = [project_doc(f"p{n:02d}", f"n{n:02d}", [float(n)]) for n in range(12)]
    lines = series(projects, "total_hours")
    assert [s.label for s in lines[:2]] == ["n11", "n10"] and len(lines) == 10
    assert lines[-1].label == "3 other projects" and lines[-1].values == {"2024-01": 0 + 1 + 2}
    assert len(series(projects[:10], "total_hours")) == 10  # ten fit: no "others"


def test_axes_end_at_round_values_written_plainly() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 7, 30, 51, 999)] == [1, 0.5, 1, 10, 50, 100, 1000]
    chart = bar_chart("x", "h", ["a", "b"], [Series("p", "#000", {"a": 9000.0, "b": 100.0})])
    assert [tick["text"] for tick in chart.ticks] == ["0", "2,500", "5,000", "7,500", "10,000"]
    assert [bar["h"] for bar in chart.bars] == [198.0, 2.2]  # 220 px for 10,000


# ---- the page in a browser (tests/browser.py: headless Chromium, a screenshot) -----------------


def test_the_written_page_renders_in_a_browser(cloud: PagingNova, tmp_path: Path) -> None:
    out = tmp_path / "archive"
    result = invoke(
        *("--all-projects", "--since", "2024-01-15", "--until", "2024-03-02"),
        *("--out", str(out)),
    )
    assert result.exit_code == 0, result.output
    shot = assert_chart_renders(out / "usage.html", tmp_path / "usage.png")
    # both projects' bars: web (PALETTE[0], most hours) in January and February, beta's 36 h
    # on top in February (PALETTE[1])
    assert shot.count("#4e79a7") >= 46 * 200 and shot.count("#f28e2b") >= 46 * 14


def test_the_browser_check_fails_on_a_blank_page_or_one_without_its_bars(tmp_path: Path) -> None:
    projects = [project_doc("p1", "alpha", [10.0, 30.0]), project_doc("p2", "beta", [5.0, 0])]
    html = render_html(page_summary(projects), projects)
    shown = tmp_path / "shown.html"
    shown.write_text(html)
    assert_chart_renders(shown, tmp_path / "shown.png")  # the page itself passes
    blank = tmp_path / "blank.html"  # the same page, drawn as nothing: a white screenshot
    blank.write_text(html.replace("<body>", '<body style="display: none">'))
    with pytest.raises(AssertionError, match=r"blank: 1200x900, 1 colours, 0 non-white"):
        assert_chart_renders(blank, tmp_path / "blank.png")
    chartless = tmp_path / "chartless.html"
    chartless.write_text(re.sub(r"<svg\b.*?</svg>", "", html, flags=re.DOTALL))
    with pytest.raises(AssertionError, match="no bar"):  # nothing to look for: no browser
        assert_chart_renders(chartless, tmp_path / "chartless.png")
    hidden = tmp_path / "hidden.html"  # the bars are there, the browser draws none of them
    hidden.write_text(html.replace("</head>", "<style>rect { visibility: hidden }</style></head>"))
    with pytest.raises(AssertionError, match="bars not drawn"):
        assert_chart_renders(hidden, tmp_path / "hidden.png")
    linked = tmp_path / "linked.html"
    linked.write_text(html.replace("</head>", '<link rel="icon" href="http://10.0.0.1/i">'))
    with pytest.raises(AssertionError, match="elsewhere"):
        assert_chart_renders(linked, tmp_path / "linked.png")


def _png(width: int, rows: list[bytes], colour_type: int) -> bytes:
    """A PNG of ``rows`` (raw pixels), row ``y`` filtered with filter ``y % 5``: each kind."""
    bpp = 3 if colour_type == 2 else 4

    def paeth(a: int, b: int, c: int) -> int:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else (b if pb <= pc else c)

    data, prev = bytearray(), bytes(len(rows[0]))
    for y, row in enumerate(rows):
        kind = y % 5
        data.append(kind)
        for i, x in enumerate(row):
            a, b, c = (row[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
            guess = (0, a, b, (a + b) >> 1, paeth(a, b, c))[kind]
            data.append((x - guess) & 0xFF)
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(data)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("colour_type", [2, 6])
def test_screenshots_are_decoded_whatever_the_row_filters(colour_type: int) -> None:
    bpp = 3 if colour_type == 2 else 4
    width, height = 7, 10
    pixels = [
        [bytes(((x * 37 + y * 91) % 256, (x * y * 13) % 256, 255 - x * 30)) for x in range(width)]
        for y in range(height)
    ]
    rows = [b"".join(p + (b"\x80" if bpp == 4 else b"") for p in line) for line in pixels]
    shot = decode_png(_png(width, rows, colour_type))
    assert (shot.width, shot.height) == (width, height)
    assert shot.colours == Counter(p for line in pixels for p in line)
    assert shot.count("#" + pixels[3][5].hex()) >= 1


# ---- what the other services tell now -----------------------------------------------------------


class Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.status_code, self.body = 200, body

    def json(self) -> dict[str, Any]:
        return self.body


class Item:
    def __init__(self, project_id: str | None, size: int = 0) -> None:
        self.project_id, self.size = project_id, size


class Proxy:
    def __init__(self, answers: dict[str, dict[str, Any]], **lists: list[Any]) -> None:
        self.answers, self.lists, self.asked = answers, lists, []  # type: ignore[var-annotated]

    def get(self, path: str, **kwargs: Any) -> Response:
        self.asked.append((path, kwargs.get("params")))
        return Response(self.answers[path])

    def __getattr__(self, name: str) -> Any:
        if name in ("volumes", "snapshots", "ips"):
            return lambda **query: [i for i in self.lists[name]]
        raise AttributeError(name)


class PresentConn:
    def __init__(self, services: set[str]) -> None:
        self.services = services
        cores = {"in_use": 3, "limit": 20, "reserved": 0}
        self.compute = Proxy(
            {"/os-quota-sets/p1/detail": {"quota_set": {"id": "p1", "cores": cores}}}
        )
        self.network = Proxy(
            {"/quotas/p1/details": {"quota": {"floatingip": {"used": 1, "limit": 50}}}},
            ips=[Item("p1"), Item("someone-else")],
        )
        self.image = Proxy({"/images": {"images": [{"id": "i1", "size": 1000}, {"id": "i2"}]}})
        self.block_storage = Proxy(
            {"/os-quota-sets/p1": {"quota_set": {"id": "p1", "volumes": {"in_use": 2}}}},
            volumes=[Item("p1", 10), Item("p1", 5), Item("other", 99)],
            snapshots=[Item(None, 1)],
        )

    def has_service(self, name: str) -> bool:
        return name in self.services


def test_present_state_is_stamped_and_a_missing_service_is_a_note() -> None:
    full = PresentConn({"compute", "network", "image", "block-storage"})
    everything = SdkPresent(full, clock=lambda: t("2024-03-01T12:00")).read("p1")
    assert everything["volumes"] == {
        "read_at": "2024-03-01T12:00:00+00:00",
        "count": 2,
        "gigabytes": 15,
    }
    assert everything["volume_snapshots"]["count"] == 1
    assert everything["images"] == {
        "read_at": "2024-03-01T12:00:00+00:00",
        "count": 2,
        "bytes": 1000,
    }
    assert [params["os_hidden"] for _, params in full.image.asked] == ["false", "true"]
    assert full.image.asked[0][1]["owner"] == "p1"
    assert full.block_storage.asked == [("/os-quota-sets/p1", {"usage": "True"})]
    assert everything["floating_ips"]["count"] == 1
    assert everything["quotas"]["compute"]["quotas"] == {
        "cores": {"in_use": 3, "limit": 20, "reserved": 0}
    }
    assert everything["quotas"]["block-storage"]["quotas"] == {"volumes": {"in_use": 2}}
    assert everything["quotas"]["network"]["read_at"] == "2024-03-01T12:00:00+00:00"
    assert "notes" not in everything

    conn = PresentConn({"compute", "network", "image"})
    partial = SdkPresent(conn).read("p1")
    assert "volumes" not in partial and "volume_snapshots" not in partial
    assert set(partial["quotas"]) == {"compute", "network"}
    assert partial["notes"] == [
        "the cloud has no block-storage service: volumes, volume snapshots and their quotas "
        "are left out"
    ]
    assert conn.block_storage.asked == []

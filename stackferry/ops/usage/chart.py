"""``usage.html``: one self-contained page - inline SVG bar charts of instance hours and vCPU
hours per project per step, the tables under them - that needs nothing from the network (no
script, no font, no stylesheet from elsewhere), so it still opens when the cloud is long gone.

The geometry is computed here; the template (``templates/usage.html.j2``, shipped as package
data) only lays it out. Jinja2 escapes everything it prints: project and server names are
whatever the cloud's users typed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#17becf",
)
OTHERS_COLOR = "#bab0ac"
PLOT_HEIGHT, LEFT, TOP, BOTTOM, RIGHT = 220, 70, 10, 70, 10


@dataclass(frozen=True)
class Series:
    label: str  # a project's name (or ID), or "other projects"
    color: str
    values: dict[str, float]  # step label -> value


@dataclass
class Chart:
    title: str
    unit: str
    width: int
    height: int
    bars: list[dict[str, Any]] = field(default_factory=list)  # x, y, w, h, color, title
    ticks: list[dict[str, Any]] = field(default_factory=list)  # y, text
    labels: list[dict[str, Any]] = field(default_factory=list)  # x, y, text
    legend: list[Series] = field(default_factory=list)
    left: int = LEFT
    top: int = TOP
    plot_width: int = 0
    plot_height: int = PLOT_HEIGHT


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``: a round top for the
    axis."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value * (1 - 1e-12))


def project_label(project: dict[str, Any]) -> str:
    """A project (``{"id", "name"}``) as people know it: by name, by ID when it has none."""
    return str(project.get("name") or project.get("id") or "")


def series(projects: Sequence[dict[str, Any]], metric: str) -> list[Series]:
    """One series per project (most of ``metric`` first); when there are more projects than
    colours, the smallest share one series."""
    ranked = sorted(
        projects, key=lambda p: (-float(p["totals"].get(metric) or 0), project_label(p["project"]))
    )
    own = len(ranked) if len(ranked) <= len(PALETTE) else len(PALETTE) - 1
    out: list[Series] = []
    others: dict[str, float] = {}
    for i, project in enumerate(ranked):
        values = {s["label"]: float(s.get(metric) or 0) for s in project["steps"]}
        if i < own:
            out.append(Series(project_label(project["project"]), PALETTE[i], values))
            continue
        for label, value in values.items():
            others[label] = others.get(label, 0.0) + value
    if len(ranked) > own:
        out.append(Series(f"{len(ranked) - own} other projects", OTHERS_COLOR, others))
    return out


def bar_chart(title: str, unit: str, steps: Sequence[str], lines: Sequence[Series]) -> Chart:
    """Bars per step, stacked by series; ``title`` on each piece says whose and how much."""
    count = max(len(steps), 1)
    bar = max(3, min(48, 960 // count))
    plot_width = bar * count
    top_value = nice_ceiling(
        max((sum(s.values.get(label, 0.0) for s in lines) for label in steps), default=0.0)
    )
    # The step names under the axis slant left from their bar: the first must fit (~5 px a
    # character across, on a 40 degree slant), with hours ("2026-12-02 18:00") longer than months.
    left = max(LEFT, round(max((len(s) for s in steps), default=0) * 6.0 - bar / 2 + 8))
    chart = Chart(
        title,
        unit,
        left=left,
        width=left + plot_width + RIGHT,
        height=TOP + PLOT_HEIGHT + BOTTOM,
        legend=list(lines),
        plot_width=plot_width,
    )
    scale = PLOT_HEIGHT / top_value
    for i, label in enumerate(steps):
        base = 0.0
        for line in lines:
            value = line.values.get(label, 0.0)
            if value <= 0:
                continue
            height = value * scale
            chart.bars.append(
                {
                    "x": left + i * bar + (1 if bar > 4 else 0),
                    "y": round(TOP + PLOT_HEIGHT - base - height, 2),
                    "w": bar - (2 if bar > 4 else 0),
                    "h": round(height, 2),
                    "color": line.color,
                    "title": f"{line.label}, {label}: {value:,.2f} {unit}",
                }
            )
            base += height
    for k in range(5):
        value = top_value * k / 4
        chart.ticks.append({"y": round(TOP + PLOT_HEIGHT - value * scale, 2), "text": _tick(value)})
    every = max(1, math.ceil(count / 24))  # at most about 24 step names under the axis
    for i, label in enumerate(steps):
        if i % every == 0:
            chart.labels.append(
                {"x": left + i * bar + bar / 2, "y": TOP + PLOT_HEIGHT + 12, "text": label}
            )
    return chart


def _tick(value: float) -> str:
    """An axis value as people write it: 10,000 and 2.5, not 1e+04."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.3f}".rstrip("0")


def _number(value: Any, digits: int = 2) -> str:
    return f"{float(value or 0):,.{digits}f}"


def _size(value: Any) -> str:
    amount = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:,.1f} {unit}" if unit != "B" else f"{int(amount)} B"
        amount /= 1024
    raise AssertionError("unreachable")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stackferry.ops.usage", "templates"),
        autoescape=True,  # names are user input; the template is .j2, so say it outright
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = _number
    env.filters["size"] = _size
    return env


def render_html(summary: dict[str, Any], projects: Sequence[dict[str, Any]]) -> str:
    """The page, from the archive's documents."""
    steps = sorted({s["label"] for p in projects for s in p["steps"]})
    charts = [
        bar_chart("Instance hours", "h", steps, series(projects, "total_hours")),
        bar_chart("vCPU hours", "vCPU·h", steps, series(projects, "total_vcpus_usage")),
    ]
    template = environment().get_template("usage.html.j2")
    return template.render(summary=summary, projects=projects, charts=charts, label=project_label)

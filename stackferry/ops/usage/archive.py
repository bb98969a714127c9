"""Reading a cloud's usage and assembling the archive: the summary, one document per project
with its servers, its steps and its present state, and the files they become.

Steps come from nova itself, asked once per step window (``start``/``end``), never from
dividing the whole window's hours: nova alone knows when each server ran. A project's steps
run from its first usage to its last, inside ``--since``/``--until``. For every project at
once (``--all-projects``) one listing per step window serves every project, and each
project's steps are those windows clipped to its own usage; for named projects, each project
is asked about its own windows.

Everything is read before anything is written: the documents are built in memory, and only
then written, each whole (``write_atomic``) - the project files first and ``summary.json``
last, so a summary names only files that are there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stackferry.errors import StackferryError
from stackferry.files import write_atomic
from stackferry.ops.usage.nova import ProjectUsage, Totals, UsageApi, read_usage
from stackferry.ops.usage.present import Present
from stackferry.ops.usage.windows import Step, Window, bucket_label, clip, iso, step_windows

FORMAT = "stackferry-usage/1"
SOURCE = "nova os-simple-tenant-usage, compute API microversion 2.40"
SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,127}")

#: (step windows done, step windows in all), after each one.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Request:
    """What to read: the window (``until`` already clipped to the moment of reading, since
    nova counts a running server up to the window's end), the step, and which projects
    (``None``: every project with usage in the window)."""

    cloud: str
    window: Window
    step: Step
    read_at: datetime
    projects: Sequence[tuple[str, str]] | None  # (ID, name)
    page_limit: int | None = None
    notes: tuple[str, ...] = ()


@dataclass
class Archive:
    summary: dict[str, Any]
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # project ID -> document

    def files(self, html: str) -> dict[str, str]:
        """Relative path -> text, in the order they are written (the summary last)."""
        texts = {
            self.summary["projects"][i]["file"]: _json(self.projects[p["id"]])
            for i, p in enumerate(self.summary["projects"])
        }
        texts["usage.html"] = html
        texts["summary.json"] = _json(self.summary)
        return texts


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, default=str) + "\n"


def project_file(project_id: str) -> str:
    """``projects/<ID>.json``; an ID that is not a plain name (nova reports whatever tenant_id
    an instance has) becomes a digest of it, never a path."""
    stem = (
        project_id
        if SAFE_NAME.fullmatch(project_id)
        else ("project-" + hashlib.sha256(project_id.encode()).hexdigest()[:16])
    )
    return f"projects/{stem}.json"


def _step_entry(window: Window, step: Step, usage: ProjectUsage | None) -> dict[str, Any]:
    return {
        **window.as_dict(),
        "label": bucket_label(window.start, step),
        "servers": len(usage.servers) if usage else 0,
        **(usage.totals if usage else Totals()).as_dict(),
    }


def _steps(
    api: UsageApi, request: Request, whole: dict[str, ProjectUsage], progress: Progress
) -> dict[str, list[dict[str, Any]]]:
    """Each project's steps, read from nova one step window at a time."""
    used = {pid: u.used_between(request.window) for pid, u in whole.items()}
    limit, step, cloud = request.page_limit, request.step, request.cloud
    steps: dict[str, list[dict[str, Any]]] = {pid: [] for pid in whole}
    if request.projects is None:
        spans = [u for u in used.values() if u]
        if not spans:
            return steps
        union = Window(min(u.start for u in spans), max(u.end for u in spans))
        windows = step_windows(union, step)
        for done, window in enumerate(windows, 1):
            found = read_usage(api, window, None, limit, cloud)
            for pid, span in used.items():
                part = clip(window, span.start, span.end) if span else None
                if part:
                    steps[pid].append(_step_entry(part, step, found.get(pid)))
            progress(done, len(windows))
        return steps
    plan = [(pid, w) for pid, span in used.items() if span for w in step_windows(span, step)]
    for done, (pid, window) in enumerate(plan, 1):
        found = read_usage(api, window, pid, limit, cloud)
        steps[pid].append(_step_entry(window, step, found.get(pid)))
        progress(done, len(plan))
    return steps


def read_archive(
    api: UsageApi,
    present: Present,
    request: Request,
    names: Mapping[str, str] | None = None,
    progress: Progress = lambda done, total: None,
) -> Archive:
    """Everything the archive holds, read from the cloud; nothing is written here."""
    window, limit = request.window, request.page_limit
    notes = list(request.notes)
    if request.projects is None:
        whole = read_usage(api, window, None, limit, request.cloud)
        if names is None:
            names = {}
            notes.append("keystone did not list projects to these credentials: no names")
    else:
        whole = {}
        for pid, _ in request.projects:
            whole[pid] = read_usage(api, window, pid, limit, request.cloud).get(pid) or (
                ProjectUsage(pid)
            )
        names = {pid: name for pid, name in request.projects}
    steps = _steps(api, request, whole, progress)
    common = {
        "format": FORMAT,
        "source": SOURCE,
        "cloud": request.cloud,
        "window": window.as_dict(),
        "step": str(request.step),
        "read_at": iso(request.read_at),
    }
    archive = Archive({**common, "page_limit": limit, "all_projects": request.projects is None})
    rows = []
    for pid in sorted(whole, key=lambda p: (names.get(p, ""), p)):
        usage, span = whole[pid], whole[pid].used_between(window)
        totals = {"servers": len(usage.servers), **usage.totals.as_dict()}
        archive.projects[pid] = {
            **common,
            "project": {"id": pid, "name": names.get(pid, "")},
            "used": span.as_dict() if span else None,
            "totals": totals,
            "servers": usage.server_rows(),
            "steps": steps[pid],
            "now": present.read(pid),
            "notes": usage.notes,
        }
        rows.append(
            {
                "id": pid,
                "name": names.get(pid, ""),
                "file": project_file(pid),
                "steps": len(steps[pid]),
                **totals,
            }
        )
    grand = Totals.sum(u.totals for u in whole.values())
    archive.summary["projects"] = rows
    archive.summary["totals"] = {
        "projects": len(rows),
        "servers": sum(r["servers"] for r in rows),
        "steps": sum(r["steps"] for r in rows),
        **grand.as_dict(),
    }
    archive.summary["notes"] = notes
    return archive


def check_out(out: Path) -> None:
    """Refuse, before anything is read, a folder the archive cannot be written to."""
    if out.exists() and not out.is_dir():
        raise StackferryError(f"--out {out} is a file, not a folder")
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise StackferryError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StackferryError(f"--out {out}: {existing} is not writable")


def write_archive(out: Path, files: Mapping[str, str]) -> list[Path]:
    """Write each file whole (mode 0600, folders 0700), in the order given."""
    written = []
    for relative, text in files.items():
        path = out / relative
        write_atomic(path, text)
        written.append(path)
    return written

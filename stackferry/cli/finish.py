"""``stackferry finish``: once verify finds a migration equal, take away what stackferry left.

``finish --dst`` removes what stackferry left in the destination that the source does not
have: the temporaries its journal still records, and its marker tag on every resource of the
workdir (the journal then says alone what stackferry made, so a later migrate still knows).
``finish --retire-source --src --dst`` deletes the migrated resources from the source
instead, after listing them and asking. Both refuse, changing nothing, unless verify finds
source and destination equal; ``--dry-run`` shows what they would do and writes nothing. The
work is in :mod:`stackferry.engine.finish`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from stackferry.cli import render
from stackferry.cli.common import EXIT_FAILED, handles_errors
from stackferry.cli.options import (
    load_workdir,
    mapping_option,
    selection_options,
    verify_document,
    workdir_option,
)
from stackferry.cloud.connection import CallCounter, connect
from stackferry.engine import finish as finishing
from stackferry.engine import run
from stackferry.engine.journal import FinishState, Journal
from stackferry.engine.kind import Kind
from stackferry.engine.mapping import Mapping
from stackferry.engine.model import Resource
from stackferry.engine.registry import Registry
from stackferry.engine.workdir import Workdir
from stackferry.errors import StackferryError
from stackferry.kinds.catalog import registry as make_registry


@click.command()
@click.option("--dst", required=True, metavar="CLOUD", help="Destination cloud.")
@click.option(
    "--src",
    metavar="CLOUD",
    help="Source cloud: verify compares with the live source (default: the workdir), and "
    "temporaries left in the source are removed too. --retire-source needs it.",
)
@workdir_option
@mapping_option
@selection_options
@click.option(
    "--retire-source",
    is_flag=True,
    help="Instead: delete the migrated resources from the source (only the workdir's, only "
    "once verify against the live source is equal), after listing them and asking.",
)
@click.option("--yes", is_flag=True, help="With --retire-source: delete without asking.")
@click.option("--dry-run", is_flag=True, help="Show what would go; change and write nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Every resource, not a summary per kind.")
@handles_errors
def finish(
    dst: str,
    src: str | None,
    workdir: Path,
    mapping: Path | None,
    switches: frozenset[str],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    retire_source: bool,
    yes: bool,
    dry_run: bool,
    verbose: bool,
) -> None:
    """Finish a migration that verify finds equal: remove stackferry's marker tag from the
    destination's resources and the temporaries it still records. With --retire-source,
    delete the migrated resources from the source instead. Safe to run again."""
    if retire_source and not src:  # (a click.UsageError would pass handles_errors for a bug)
        raise StackferryError("--retire-source needs --src CLOUD: it verifies against, and "
                              "deletes from, the live source")  # fmt: skip
    if yes and not retire_source:
        raise StackferryError("--yes goes with --retire-source")
    if retire_source and not (yes or dry_run or sys.stdin.isatty()):
        raise StackferryError(
            "--retire-source asks before it deletes, and there is no terminal to ask on: give "
            "--yes to delete without asking (--dry-run shows what it would delete)"
        )
    reg = make_registry()
    wd = load_workdir(workdir, reg)
    assert wd.tenant is not None
    the_mapping = Mapping.load(mapping, reg, switches)
    kinds = [k for k in reg.select(only, skip) if k.name in wd.resources]
    keeps = reg.selected_resources(only, skip)
    state = Journal.finish_state_at(wd.journal_path)
    job = _Job(reg, wd, the_mapping, kinds, keeps, state, dst, src, dry_run, verbose)
    _say_earlier(state, "retire-source" if retire_source else "finish")
    ok = job.retire_source(yes) if retire_source else job.finish_destination()
    sys.exit(0 if ok else EXIT_FAILED)


def _say_earlier(state: FinishState, command: str) -> None:
    earlier = [f for f in state.finishes if f.command == command]
    if not earlier:
        return
    first, what = earlier[0], "the destination" if command == "finish" else "the source"
    counts = ", ".join(f"{len(v)} {k}" for k, v in first.removed.items() if v) or "nothing"
    again = f"; {len(earlier) - 1} finish(es) since" if len(earlier) > 1 else ""
    render.say(f"{what} of this migration was finished at {first.finished_at} ({counts}){again}")


class _Job:
    """One finish: what it verifies, plans and does, and what it says."""

    def __init__(
        self,
        reg: Registry,
        wd: Workdir,
        mapping: Mapping,
        kinds: list[Kind],
        keeps: finishing.Keeps,
        state: FinishState,
        dst: str,
        src: str | None,
        dry_run: bool,
        verbose: bool,
    ) -> None:
        self.reg, self.wd, self.mapping, self.kinds, self.keeps = reg, wd, mapping, kinds, keeps
        self.state, self.dst, self.src = state, dst, src
        self.dry_run, self.verbose = dry_run, verbose
        self.counter = CallCounter()
        self.dst_conn = connect(dst, self.counter, "destination")
        self.src_conn = connect(src, self.counter, "source") if src else None

    # --- verify, as `stackferry verify` does -------------------------------------------

    def _verified(
        self, source: dict[str, list[Resource]], what: str, changed: str = "changed"
    ) -> run.Verification:
        """run.verify of ``source`` against the destination; unequal: refused, with the
        verify report written (not with --dry-run, which writes nothing)."""
        assert self.wd.tenant is not None
        result = run.verify(
            self.reg, source, self.mapping, self.dst_conn, self.wd.tenant, self.kinds, self.keeps
        )
        text = render.verification_text(result)
        render.say(f"verify, against {what}:")
        render.say(text if self.verbose else render.verification_text(result, with_id_map=False))
        report = None
        if not result.equal and not self.dry_run:
            report = run.write_report(self.wd, "verify", verify_document(result), text)
        finishing.refuse_unless_equal(result, report, changed)
        return result

    # --- finish: the destination -------------------------------------------------------

    def finish_destination(self) -> bool:
        assert self.wd.tenant is not None
        source = self.wd.resources
        if self.src_conn is not None:  # the live source, as verify --src reads it
            _, source = run.read_tenant(
                self.reg, self.src_conn, self.wd.tenant, self.kinds, str(self.src),
                self.wd.journal_path,
            )  # fmt: skip
        result = self._verified(source, f"the live source {self.src}" if self.src else
                                "the workdir")  # fmt: skip
        ctx, found = run.read_tenant(
            self.reg, self.dst_conn, self.mapping.tenant(self.wd.tenant), self.kinds, self.dst
        )
        plan = finishing.plan_finish(self.reg, result, found, self.state)
        if plan.empty:
            render.say("finish: nothing to remove (no marker tag, no temporary left)")
        else:
            self._show_finishing(plan)
        if self.dry_run:
            render.say("dry run: nothing was changed")
            return True
        if plan.empty and any(f.command == "finish" for f in self.state.finishes):
            return True
        self.wd.check_writable()
        journal = Journal(self.wd.journal_path)
        journal.start_run("finish")
        conns = {"destination": self.dst_conn}
        if self.src_conn is not None:
            conns["source"] = self.src_conn
        try:
            done = finishing.finish_destination(self.reg, plan, ctx, journal, conns)
        except BaseException:
            journal.finish_run("failed")
            raise
        journal.finish_run("ok" if done.complete else "failed")
        journal.close()
        for resource, why in done.failed:
            render.warn(f"{resource.kind} {resource.label}: marker not removed: {why}")
        for left in done.temporaries_left:
            render.warn(f"temporary not removed yet (finish again; --src for the source's): {left}")
        line = (
            f"finish: took stackferry's marker off {len(done.unmarked)} resource(s)"
            + (f" ({len(done.gone)} gone meanwhile)" if done.gone else "")
            + f", removed {len(done.temporaries)} temporary(ies)"
            + (
                "; finished (the journal now says alone what stackferry made)"
                if done.complete
                else f"; {len(done.failed) + len(done.temporaries_left)} left: finish again"
            )
        )
        report = {
            "finished": done.complete,
            "verify": {"equal": result.equal, "compared": result.compared},
            "markers_removed": [_entry(r) for r in done.unmarked],
            "gone": [_entry(r) for r in done.gone],
            "failed": [{**_entry(r), "error": why} for r, why in done.failed],
            "temporaries_removed": done.temporaries,
            "temporaries_left": done.temporaries_left,
            "write_calls": self.counter.writes(),
        }
        text = _lines(
            line,
            ("marker removed", done.unmarked),
            ("gone", done.gone),
            ("failed", done.failed),
        )
        text += "".join(f"temporary removed {t}\n" for t in done.temporaries)
        text += "".join(f"temporary left {t}\n" for t in done.temporaries_left)
        path = run.write_report(self.wd, "finish", report, text)
        render.say(line)
        render.say(f"report: {path}")
        return done.complete

    def _show_finishing(self, plan: finishing.Finishing) -> None:
        counts: dict[str, int] = {}
        for r in plan.markers:
            counts[r.kind] = counts.get(r.kind, 0) + 1
        render.say(
            f"finish: stackferry's marker tag on {len(plan.markers)} destination resource(s), "
            f"{len(plan.temporaries)} temporary(ies) recorded in the journal"
        )
        if self.verbose:
            for r in plan.markers:
                render.say(f"  marker   {r.kind} {r.label}")
        elif counts:
            table = Table(title="marker tags to remove, by kind")
            table.add_column("kind")
            table.add_column("resources", justify="right")
            for kind, n in counts.items():
                table.add_row(Text(kind), str(n))
            render.console.print(table)
        for _, description, _ in plan.temporaries:
            render.say(f"  temporary {description}")

    # --- finish --retire-source: the source --------------------------------------------

    def retire_source(self, yes: bool) -> bool:
        assert self.wd.tenant is not None and self.src_conn is not None
        ctx, live = run.read_tenant(
            self.reg, self.src_conn, self.wd.tenant, self.kinds, str(self.src),
            self.wd.journal_path,
        )  # fmt: skip
        exported = {k.name: self.wd.resources.get(k.name, []) for k in self.kinds}
        view = finishing.verified_source(self.reg, exported, live, self.state.retiring, self.keeps)
        self._verified(view, f"the live source {self.src} (the workdir's resources)", "deleted")
        retirement = finishing.plan_retirement(self.reg, self.kinds, exported, live, self.keeps)
        self._show_retirement(retirement)
        if self.dry_run:
            render.say("dry run: nothing was deleted")
            return True
        if not retirement.delete:
            render.say(f"retire: nothing to delete from {self.src}")
            if any(f.command == "retire-source" for f in self.state.finishes):
                return True
        elif not yes and not click.confirm(
            f"Delete these {len(retirement.delete)} resource(s) from {self.src}?", default=False
        ):
            render.say("nothing was deleted")
            return False
        self.wd.check_writable()
        journal = Journal(self.wd.journal_path)
        journal.start_run("retire-source")

        def progress(resource: Resource, state: str) -> None:
            if self.verbose or state == "failed":
                render.say(f"  {state:8} {resource.kind} {resource.label}")

        try:
            done = finishing.retire(self.reg, retirement, ctx, journal, progress)
        except BaseException:
            journal.finish_run("failed")
            raise
        journal.finish_run("failed" if done.failed else "ok")
        journal.close()
        for resource, why in done.failed:
            render.warn(f"{resource.kind} {resource.label} was not deleted: {why}")
        line = (
            f"retire: {len(done.deleted)} deleted from {self.src}"
            + (f", {len(done.gone)} already gone" if done.gone else "")
            + (f", {len(done.failed)} not deleted (re-run to try again)" if done.failed else "")
            + f"; {len(retirement.left)} left in the source (see above)"
        )
        report = {
            "source": self.src,
            "deleted": [_entry(r) for r in done.deleted],
            "gone": [_entry(r) for r in done.gone],
            "failed": [{**_entry(r), "error": why} for r, why in done.failed],
            "left": [{**_entry(r), "why": why} for r, why in retirement.left],
            "write_calls": self.counter.writes("source"),
        }
        text = _lines(
            line,
            ("deleted", done.deleted),
            ("gone", done.gone),
            ("failed", done.failed),
            ("left", retirement.left),
        )
        path = run.write_report(self.wd, "retire", report, text)
        render.say(line)
        render.say(f"report: {path}")
        return not done.failed

    def _show_retirement(self, retirement: finishing.Retirement) -> None:
        render.say(
            f"retire: {len(retirement.delete)} resource(s) to delete from {self.src}, in this "
            f"order; {len(retirement.left)} left in it"
        )
        if self.verbose:
            for r in retirement.delete:
                render.say(f"  delete   {r.kind} {r.label}")
            for r, why in retirement.left:
                render.say(f"  leave    {r.kind} {r.label}: {why}")
            return
        rows: dict[str, dict[str, Any]] = {}
        for r in retirement.delete:
            rows.setdefault(r.kind, {"delete": 0, "left": 0, "why": set()})["delete"] += 1
        for r, why in retirement.left:
            row = rows.setdefault(r.kind, {"delete": 0, "left": 0, "why": set()})
            row["left"] += 1
            row["why"].add(why)
        table = Table(title="retire, by kind (-v lists each resource)")
        for column in ("kind", "delete", "left", "why left"):
            table.add_column(column, overflow="fold")
        for kind, row in rows.items():
            table.add_row(
                Text(kind),
                str(row["delete"] or ""),
                str(row["left"] or ""),
                Text("; ".join(sorted(row["why"]))),
            )
        render.console.print(table)


def _lines(first: str, *groups: tuple[str, Sequence[Resource | tuple[Resource, str]]]) -> str:
    """A text report: its summary line, then one line per resource (with why, where said)."""
    lines = [first]
    for word, items in groups:
        for item in items:
            resource, why = item if isinstance(item, tuple) else (item, "")
            lines.append(f"{word} {resource.kind} {resource.label}" + (f": {why}" if why else ""))
    return "\n".join(lines) + "\n"


def _entry(resource: Resource) -> dict[str, Any]:
    return {"kind": resource.kind, "identity": resource.identity, "id": resource.id}

"""Command line for the lab: ``python -m devcloud up|down|status|seed-demo``. The lab is a test
tool of this repository, not part of stackferry (whose package does not ship it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from devcloud.lab import Lab

console = Console(soft_wrap=True)


@click.group(help="The local two-cloud OpenStack lab (source c1, destination c2) on 127.0.0.1.")
@click.option(
    "--lab-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Lab folder (default: $STACKFERRY_LAB_DIR or .lab in the repository).",
)
@click.pass_context
def lab(ctx: click.Context, lab_dir: Path | None) -> None:
    ctx.obj = Lab(lab_dir, say=lambda m: console.print(m, highlight=False))


@lab.command(help="Install if needed, start both clouds, wait until healthy. Idempotent.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait per step.")
@click.option(
    "--ceph",
    is_flag=True,
    help="Also a Ceph cluster per cloud, cinder's RBD backend (volume type ceph); kept by "
    "later up calls.",
)
@click.pass_obj
def up(the_lab: Lab, timeout: float, ceph: bool) -> None:
    try:
        the_lab.up(timeout, with_ceph=ceph)
    except (RuntimeError, TimeoutError, OSError, subprocess.CalledProcessError) as exc:
        console.print(f"[red]lab up failed:[/red] {exc}")
        sys.exit(1)


@lab.command(help="Stop every process the lab started, by PID.")
@click.option("--purge", is_flag=True, help="Also delete all cloud state (DBs, images, volumes).")
@click.pass_obj
def down(the_lab: Lab, purge: bool) -> None:
    the_lab.down(purge)


@lab.command(help="Show processes (with RSS) and the health of both clouds; exit 1 unless healthy.")
@click.pass_obj
def status(the_lab: Lab) -> None:
    table = Table(title=f"lab processes ({the_lab.paths.root})")
    for column in ("process", "pid", "state", "RSS MiB"):
        table.add_column(column)
    total = 0
    for name, pid, alive, rss in the_lab.processes():
        total += rss
        table.add_row(
            name, str(pid), "running" if alive else "[red]gone[/red]", f"{rss / 2**20:.0f}"
        )
    table.add_row("TOTAL", "", "", f"{total / 2**20:.0f}")
    console.print(table)
    healthy = True
    for state in the_lab.health():
        healthy &= state.healthy
        colour = "green" if state.healthy else "red"
        console.print(
            f"[{colour}]{'healthy' if state.healthy else 'NOT healthy'}[/{colour}] "
            f"{state.summary()}",
            highlight=False,
        )
    for cluster in the_lab.clusters():
        ok = cluster.healthy()
        healthy &= ok
        colour = "green" if ok else "red"
        console.print(
            f"[{colour}]{'healthy' if ok else 'NOT healthy'}[/{colour}] {cluster.summary()}",
            highlight=False,
        )
    console.print(f"clouds.yaml: {the_lab.paths.clouds_yaml}")
    sys.exit(0 if healthy and the_lab.processes() else 1)


@lab.command("seed-demo", help="Seed the demo tenant (project demo, domain lab) in cloud c1.")
@click.option("--scale", default=1, show_default=True, help="Multiply networks and groups.")
@click.option("--cloud", default="c1", show_default=True)
@click.pass_obj
def seed_demo(the_lab: Lab, scale: int, cloud: str) -> None:
    from devcloud.demo import seed_demo as seed

    counts = seed(the_lab.paths.clouds_yaml, cloud, scale=scale)
    console.print(f"demo tenant in {cloud}: {counts}")

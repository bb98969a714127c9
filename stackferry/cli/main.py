"""The ``stackferry`` command."""

from __future__ import annotations

import click

from stackferry import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stackferry")
def cli() -> None:
    """Move OpenStack tenants and their data between clouds, and servers and images inside one."""


def _register_lab() -> None:
    """``stackferry lab`` is the repository's two-cloud lab, present in a source checkout."""
    try:
        from devcloud.cli import lab
    except ImportError:  # installed without the lab
        return
    cli.add_command(lab, name="lab")


_register_lab()


def main() -> None:
    cli(prog_name="stackferry")

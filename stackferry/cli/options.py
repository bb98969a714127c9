"""What the commands share: their common options, the target of a migration, loading a
workdir, and naming a cloud that refuses us. Commands live in main.py (and finish.py)."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from openstack import exceptions as sdk_exceptions

from stackferry.cli import render
from stackferry.cli.common import ADMIN_HINT, request_of
from stackferry.cloud.connection import api_message
from stackferry.engine.kind import Kind
from stackferry.engine.mapping import Mapping
from stackferry.engine.model import Resource
from stackferry.engine.registry import Registry
from stackferry.engine.run import Verification
from stackferry.engine.workdir import Workdir
from stackferry.errors import CloudError

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def on_cloud(label: str) -> Iterator[None]:
    """A cloud that refuses a read (HTTP 401/403) is named, with what stackferry needs."""
    try:
        yield
    except sdk_exceptions.HttpException as exc:
        if exc.status_code not in (401, 403):
            raise
        raise CloudError(
            f"cloud {label}: refused{request_of(exc)} ({api_message(exc)}). {ADMIN_HINT}"
        ) from None


def regex(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        raise click.BadParameter(f"{value!r} is not a regular expression: {exc}") from None
    return value


def workdir_option(func: F) -> F:
    return click.option(
        "--workdir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("stackferry-work"),
        show_default=True,
        help="Folder of the exported files, journal and reports.",
    )(func)


def selection_options(func: F) -> F:
    func = click.option(
        "--only",
        multiple=True,
        metavar="KIND",
        help="Only these kinds (repeat; e.g. networks, subnets).",
    )(func)
    return click.option("--skip", multiple=True, metavar="KIND", help="Skip these kinds.")(func)


# The mapping file's switches, also given as flags: (flag, switch, help).
SWITCH_FLAGS = (
    ("--new-mac", "new_macs", "Ports get MAC addresses of their own (clouds sharing a "
     "layer 2); the mapping file's new_macs: true."),
    ("--boot-from-volume", "boot_from_volume", "Image-backed servers boot from a new volume "
     "holding their root disk; the mapping file's boot_from_volume: true."),
)  # fmt: skip


def mapping_option(func: F) -> F:
    """--mapping, and the switches as flags, handed to the command as one ``switches`` set.
    Give the same to plan, apply and verify: they describe the destination wanted."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        switches = frozenset(s for flag, s, _ in SWITCH_FLAGS if kwargs.pop(s))
        return func(*args, switches=switches, **kwargs)

    for flag, switch, text in reversed(SWITCH_FLAGS):
        command = click.option(flag, switch, is_flag=True, help=text)(command)
    return cast(
        F,
        click.option(
            "--mapping",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            default=None,
            help="YAML file renaming projects, domains, users, networks, AZs, flavors.",
        )(command),
    )


@dataclass
class Target:
    """Where a workdir goes, and how: shared by plan, apply, verify and migrate."""

    dst: str
    workdir: Path
    mapping: Path | None
    only: tuple[str, ...]
    skip: tuple[str, ...]
    adopt: tuple[str, ...] = ()
    switches: frozenset[str] = frozenset()
    ceph: Path | None = None  # --ceph: the clusters, for volumes' RBD path
    bundle: Path | None = None  # --bundle: the workdir and the bytes come from it

    def kinds(self, reg: Registry) -> list[Kind]:
        return reg.select(self.only, self.skip)

    def keeps(self, reg: Registry) -> Callable[[Resource], bool]:
        return reg.selected_resources(self.only, self.skip)

    def load_mapping(self, reg: Registry) -> Mapping:
        return Mapping.load(self.mapping, reg, self.switches)


def load_workdir(workdir: Path, reg: Registry) -> Workdir:
    wd = Workdir.load(workdir, reg)
    for path in wd.unknown_files:
        render.warn(
            f"{path} is not one of this workdir's kinds (left by an earlier export?): ignored"
        )
    return wd


def verbose_option(func: F) -> F:
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Every resource's action and result, and verify's ID map (else: in the report).",
    )(func)


def verify_document(result: Verification) -> dict[str, Any]:
    """A verify's report, as ``stackferry verify`` writes it (and finish, when refused)."""
    return {
        "equal": result.equal,
        "compared": result.compared,
        "differences": [d.__dict__ for d in result.differences],
        "id_map": result.id_map,
    }

"""Which projects: those named (by name or ID, through keystone), and every project's name for
the all-projects listing, which nova gives by ID only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openstack import exceptions as sdk_exceptions

from stackferry.cloud import sdk
from stackferry.cloud.projects import resolve_project
from stackferry.errors import StackferryError


def resolve_projects(conn: Any, refs: Iterable[str], cloud: str) -> list[tuple[str, str]]:
    """(ID, name) of each project named, once each, in the order given; an unknown or
    ambiguous name is an error before anything is read."""
    chosen: dict[str, str] = {}
    for ref in refs:
        try:
            project_id, name = resolve_project(conn, ref)
        except StackferryError as exc:
            raise StackferryError(f"cloud {cloud}: {exc}") from None
        chosen.setdefault(project_id, name)
    return list(chosen.items())


def project_names(conn: Any) -> dict[str, str] | None:
    """Every project's name by ID; None when keystone does not list them to these
    credentials (the archive then names projects by ID only)."""
    try:
        return {str(p.id): str(p.name or "") for p in sdk.identity(conn).projects()}
    except sdk_exceptions.ForbiddenException:
        return None

"""Which projects: those named (by name or ID, through keystone), and every project's name for
the all-projects listing, which nova gives by ID only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openstack import exceptions as sdk_exceptions

from stackferry.cloud import sdk
from stackferry.errors import StackferryError


def _own_project(conn: Any) -> tuple[str, str] | None:
    """(ID, name) of the credentials' own project, known without asking keystone."""
    try:
        access = conn.session.auth.get_access(conn.session)
    except Exception:  # not a project-scoped token
        return None
    if access.project_id:
        return str(access.project_id), str(access.project_name or "")
    return None


def resolve_projects(conn: Any, refs: Iterable[str], cloud: str) -> list[tuple[str, str]]:
    """(ID, name) of each project named, once each, in the order given; an unknown or
    ambiguous name is an error before anything is read."""
    own = _own_project(conn)
    chosen: dict[str, str] = {}
    for ref in refs:
        if own and ref in own:
            chosen.setdefault(own[0], own[1])
            continue
        try:
            project = sdk.identity(conn).find_project(ref, ignore_missing=True)
        except sdk_exceptions.DuplicateResource:
            raise StackferryError(
                f"cloud {cloud}: several projects are named {ref!r} (in different domains): "
                "give its ID"
            ) from None
        except sdk_exceptions.ForbiddenException:
            raise StackferryError(
                f"cloud {cloud}: project {ref!r}: these credentials may not look projects up "
                "in keystone; use admin credentials"
            ) from None
        if project is None:
            raise StackferryError(f"cloud {cloud}: no project {ref!r} (by name or ID)")
        chosen.setdefault(str(project.id), str(project.name or ""))
    return list(chosen.items())


def project_names(conn: Any) -> dict[str, str] | None:
    """Every project's name by ID; None when keystone does not list them to these
    credentials (the archive then names projects by ID only)."""
    try:
        return {str(p.id): str(p.name or "") for p in sdk.identity(conn).projects()}
    except sdk_exceptions.ForbiddenException:
        return None

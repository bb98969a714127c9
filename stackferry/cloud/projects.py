"""A project named by the operator, by name or ID: what moving images inside one cloud and the
usage archive both look up."""

from __future__ import annotations

from typing import Any

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.errors import StackferryError


def resolve_project(conn: Connection, ref: str) -> tuple[str, str]:
    """(ID, name) of a project given by name or ID; the credentials' own project is known
    without asking keystone (a member may not look projects up)."""
    try:
        auth: Any = conn.session.auth
        access = auth.get_access(conn.session)
        if ref in (access.project_id, access.project_name):
            return str(access.project_id), str(access.project_name)
    except Exception:  # not a project-scoped token: ask keystone below
        pass
    try:
        project = sdk.identity(conn).find_project(ref, ignore_missing=True)
    except sdk_exceptions.DuplicateResource:
        raise StackferryError(
            f"several projects are named {ref!r} (in different domains); give its ID"
        ) from None
    except sdk_exceptions.ForbiddenException:
        raise StackferryError(
            f"project {ref!r}: these credentials may not look projects up; give the "
            "credentials' own project or use admin credentials"
        ) from None
    if project is None:
        raise StackferryError(f"no project {ref!r}")
    return str(project.id), str(project.name)

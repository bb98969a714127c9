"""Fixtures for tests against the real two-cloud lab.

The session fixture brings the lab up when it is not already healthy and reuses it when it
is. Each test gets its own freshly created tenants, purged afterwards, so tests never see each
other's resources.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcloud.lab import Lab
from devcloud.layout import CLOUDS, DESTINATION, SOURCE
from devcloud.tenants import Tenant, create_tenant, purge_project_named, purge_tenant
from tests.cloud.migration import Migration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cloud/" in str(item.fspath):
            item.add_marker(pytest.mark.cloud)


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The running lab; brought up (or healed) unless STACKFERRY_LAB=as-is, which runs the tests
    against the lab exactly as it is, e.g. to watch them fail with a service stopped."""
    the_lab = Lab()
    if os.environ.get("STACKFERRY_LAB") != "as-is" and not the_lab.is_healthy():
        the_lab.up()
    return the_lab


def _tenant(lab: Lab, cloud_name: str) -> Iterator[Tenant]:
    cloud = next(c for c in CLOUDS if c.name == cloud_name)
    tenant = create_tenant(lab.paths.clouds_yaml, cloud)
    try:
        yield tenant
    finally:
        purge_tenant(tenant)


@pytest.fixture(params=[c.name for c in CLOUDS])
def tenant(request: pytest.FixtureRequest, lab: Lab) -> Iterator[Tenant]:
    """A fresh tenant on each cloud in turn: the test runs once per cloud."""
    yield from _tenant(lab, request.param)


@pytest.fixture
def source_tenant(lab: Lab) -> Iterator[Tenant]:
    yield from _tenant(lab, SOURCE.name)


@pytest.fixture
def destination_tenant(lab: Lab) -> Iterator[Tenant]:
    yield from _tenant(lab, DESTINATION.name)


@pytest.fixture
def migration(lab: Lab, source_tenant: Tenant, tmp_path: Path) -> Iterator[Migration]:
    """A source tenant to migrate to the destination cloud under the same project name; the
    destination project stackferry creates (and everything in it) is purged afterwards."""
    yield Migration(lab.paths.clouds_yaml, source_tenant, tmp_path / "workdir")
    purge_project_named(lab.paths.clouds_yaml, DESTINATION, source_tenant.project_name)

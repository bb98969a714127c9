"""Smoke: keystone issues tokens and glance stores and returns exactly the bytes it was given."""

from __future__ import annotations

import hashlib
import os

from devcloud.tenants import Tenant, unique_name
from tests.cloud.waits import wait_status


def test_tokens_for_admin_and_tenant(tenant: Tenant) -> None:
    admin_token = tenant.admin.auth_token
    tenant_token = tenant.conn.auth_token
    assert admin_token and tenant_token and admin_token != tenant_token
    assert tenant.conn.current_project_id == tenant.project_id
    # The token is valid for its own project on this cloud's keystone.
    info = tenant.admin.identity.get("/auth/tokens", headers={"X-Subject-Token": tenant_token})
    assert info.status_code == 200
    assert info.json()["token"]["project"]["id"] == tenant.project_id


def test_image_upload_download_identical(tenant: Tenant) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    image = tenant.conn.image.create_image(
        name=unique_name("img"),
        data=payload,
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
        meta={"stackferry_smoke": "yes"},
    )
    image = wait_status(lambda: tenant.conn.image.get_image(image.id), "active", "image")
    assert image.checksum == hashlib.md5(payload).hexdigest()
    assert image.hash_algo == "sha512"
    assert image.hash_value == hashlib.sha512(payload).hexdigest()
    assert image.size == len(payload)
    downloaded = tenant.conn.image.download_image(image)
    assert downloaded.content == payload
    assert tenant.conn.image.get_image(image.id).properties["stackferry_smoke"] == "yes"

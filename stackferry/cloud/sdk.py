"""Typed access to openstacksdk's proxies.

openstacksdk types ``conn.identity``, ``conn.image`` and ``conn.block_storage`` as unions of
every API version it knows (identity v2|v3, image v1|v2, block storage v2|v3). stackferry only
speaks the current versions; these accessors say so once, instead of a cast at every call.
"""

from __future__ import annotations

from typing import cast

from openstack.block_storage.v3._proxy import Proxy as BlockStorage
from openstack.connection import Connection
from openstack.identity.v3._proxy import Proxy as Identity
from openstack.image.v2._proxy import Proxy as Image

__all__ = ["BlockStorage", "Connection", "Identity", "Image", "block_storage", "identity", "image"]


def identity(conn: Connection) -> Identity:
    return cast(Identity, conn.identity)


def image(conn: Connection) -> Image:
    return cast(Image, conn.image)


def block_storage(conn: Connection) -> BlockStorage:
    return cast(BlockStorage, conn.block_storage)

"""What a cloud offers by name - volume types, availability zones - for checks made before
anything is written. Each is read once per run (``cache``)."""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.cloud.connection import rest


def volume_types(conn: Connection, cache: dict[str, Any]) -> set[str]:
    """Every volume type's name, private ones too, as an admin sees them."""
    if "volume_types" not in cache:
        found = rest(conn.block_storage, "get", "/types", params={"is_public": "None"})
        cache["volume_types"] = {t["name"] for t in found.json().get("volume_types", [])}
    return set(cache["volume_types"])


def volume_zones(conn: Connection, cache: dict[str, Any]) -> set[str]:
    if "volume_zones" not in cache:
        cache["volume_zones"] = {z.name for z in sdk.block_storage(conn).availability_zones()}
    return set(cache["volume_zones"])


def network_zones(conn: Connection, cache: dict[str, Any]) -> set[str]:
    if "network_zones" not in cache:
        cache["network_zones"] = {
            z.name for z in conn.network.availability_zones() if z.resource == "network"
        }
    return set(cache["network_zones"])


def missing(what: str, name: str, known: set[str], table: str) -> str:
    """The problem of a name the destination lacks, and what to do about it."""
    return (
        f"{what} {name!r} does not exist in the destination (it has: "
        f"{', '.join(sorted(known)) or 'none'}): create it there, or rename it in the "
        f"mapping's {table}"
    )


def compute_zones(conn: Connection, cache: dict[str, Any]) -> set[str]:
    if "compute_zones" not in cache:
        cache["compute_zones"] = {
            z.name for z in conn.compute.availability_zones() if (z.state or {}).get("available")
        }
    return set(cache["compute_zones"])

"""What a cloud offers by name - volume types, availability zones - for checks made before
anything is written. Each is read once per run (``cache``)."""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.cloud.connection import rest


def _types(conn: Connection, cache: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if "volume_types" not in cache:
        found = rest(conn.block_storage, "get", "/types", params={"is_public": "None"})
        cache["volume_types"] = {t["name"]: t for t in found.json().get("volume_types", [])}
    types: dict[str, dict[str, Any]] = cache["volume_types"]
    return types


def volume_types(conn: Connection, cache: dict[str, Any]) -> set[str]:
    """Every volume type's name, private ones too, as an admin sees them."""
    return set(_types(conn, cache))


def volume_type_backend(conn: Connection, cache: dict[str, Any], name: str | None) -> str | None:
    """The cinder backend (``volume_backend_name`` extra spec) a volume of that type goes to
    - of the cloud's default type when None; None when the type does not pin one."""
    if name is None:
        if "default_volume_type" not in cache:
            found = rest(conn.block_storage, "get", "/types/default").json()
            cache["default_volume_type"] = found.get("volume_type", {}).get("name")
        name = cache["default_volume_type"]
    specs = _types(conn, cache).get(str(name), {}).get("extra_specs") or {}
    backend = specs.get("volume_backend_name")
    return str(backend) if backend else None


def backends_of(host: str | None) -> set[str]:
    """The names a volume's cinder host (``host@backend#pool``, os-vol-host-attr:host) gives
    its backend: the backend's section, and the pool it reports (for most drivers, RBD's
    included, the ``volume_backend_name``)."""
    if not host or "@" not in host:
        return set()
    backend, _, pool = host.split("@", 1)[1].partition("#")
    return {name for name in (backend, pool) if name}


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

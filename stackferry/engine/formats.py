"""Formats the workdir's JSON Schemas name (``"format": "cidr"``), checked when a workdir is
loaded: a value the destination's API would refuse halfway through a run is refused before
the run, with the file, the resource and the field named.

Names and descriptions carry the lengths the services enforce (``NAME``, ``DESCRIPTION``,
``KEYSTONE_NAME``), ranges are in the schemas themselves (MTU, ports, sizes).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from jsonschema import FormatChecker

CHECKER = FormatChecker()
MAC = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")

# neutron-lib's NAME_MAX_LEN / DESCRIPTION_MAX_LEN; glance, cinder and nova names alike.
NAME: dict[str, Any] = {"type": "string", "maxLength": 255}
DESCRIPTION: dict[str, Any] = {"type": "string", "maxLength": 255}
# keystone: project and domain names up to 64 characters, user names up to 255.
KEYSTONE_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64}
USER_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}


def _is_str(value: object) -> bool:
    return isinstance(value, str)


@CHECKER.checks("ip-address", raises=ValueError)
def _ip_address(value: object) -> bool:
    return not _is_str(value) or bool(ipaddress.ip_address(str(value)))


@CHECKER.checks("cidr", raises=ValueError)
def _cidr(value: object) -> bool:
    """A network in CIDR form, as neutron takes it (host bits may be set)."""
    if not _is_str(value):
        return True
    if "/" not in str(value):
        raise ValueError(f"{value!r} has no prefix length (e.g. 10.0.0.0/24)")
    return bool(ipaddress.ip_network(str(value), strict=False))


@CHECKER.checks("ip-or-cidr", raises=ValueError)
def _ip_or_cidr(value: object) -> bool:
    """Allowed address pairs take either."""
    if not _is_str(value):
        return True
    return bool(ipaddress.ip_network(str(value), strict=False))


@CHECKER.checks("mac-address")
def _mac(value: object) -> bool:
    return not _is_str(value) or bool(MAC.match(str(value)))


@CHECKER.checks("public-key", raises=(ValueError, TypeError, UnsupportedAlgorithm))
def _public_key(value: object) -> bool:
    """An OpenSSH public key (``ssh-ed25519 AAAA... comment``) or a PEM X.509 certificate,
    as nova accepts for ssh and x509 keypairs."""
    if not _is_str(value):
        return True
    text = str(value).strip()
    if text.startswith("-----BEGIN CERTIFICATE-----"):
        x509.load_pem_x509_certificate(text.encode())
        return True
    parts = text.split()
    if len(parts) < 2:
        raise ValueError("not an OpenSSH public key (expected 'TYPE BASE64 [comment]')")
    base64.b64decode(parts[1], validate=True)
    load_ssh_public_key(" ".join(parts[:2]).encode())
    return True

"""Every resource kind stackferry knows. The engine takes this list
and knows none of them by name."""

from stackferry.engine.registry import Registry
from stackferry.kinds.base import Kind
from stackferry.kinds.identity import Domain, Project
from stackferry.kinds.network import ExternalNetwork, Network
from stackferry.kinds.subnet import Subnet

ALL_KINDS: tuple[type[Kind], ...] = (
    Domain,
    Project,
    ExternalNetwork,
    Network,
    Subnet,
)


def registry() -> Registry:
    return Registry(kind() for kind in ALL_KINDS)

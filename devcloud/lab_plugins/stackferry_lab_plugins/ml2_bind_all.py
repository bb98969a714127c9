"""ML2 mechanism driver that binds every port on its first segment.

Without L2 agents every port ends in ``binding_failed`` and nova cannot boot a server. The
lab has no data plane, so binding is all that is needed for the control plane to behave.
"""

from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllMechanismDriver(api.MechanismDriver):  # type: ignore[misc]
    def initialize(self) -> None:
        pass

    @property
    def connectivity(self) -> str:
        return str(portbindings.CONNECTIVITY_L2)

    def bind_port(self, context) -> None:  # type: ignore[no-untyped-def]
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False},
                status="ACTIVE",
            )
            return

"""``from gateway import TykGateway as tyk``: the gateway's functions for plugins."""

from fastgate.plugins.python.host import TykGateway

__all__ = ["TykGateway"]

"""``from tyk.gateway import TykGateway``: the same as the top-level ``gateway`` module."""

from fastgate.plugins.python.host import TykGateway

__all__ = ["TykGateway"]

"""``from tyk.decorators import *``: Tyk's hook decorators (fastgate's implementation)."""

from fastgate.plugins.python.hooks import Event, Hook

__all__ = ["Event", "Hook"]

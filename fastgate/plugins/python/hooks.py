"""Tyk's ``@Hook`` and ``@Event`` decorators.

As in Tyk, a hook's signature is chosen by its argument count:

* 3 -- ``(request, session, spec)``, returns ``(request, session)``;
* 4 -- ``(request, session, metadata, spec)``, returns
  ``(request, session, metadata)`` (any hook; ``auth_check`` needs it);
* 5 -- ``(request, response, session, metadata, spec)``, returns
  ``response`` (response hooks).

**Beyond Tyk**: an ``async def`` hook is awaited on the gateway's event
loop, so it may call other services without blocking anyone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Event", "Hook"]


class Hook:
    """A plugin hook: ``@Hook`` on a function of 3, 4 or 5 arguments."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f
        self.name: str = getattr(f, "__name__", "hook")
        self.arg_count = len(inspect.getfullargspec(f).args)
        self.is_async = inspect.iscoroutinefunction(f)

    def __call__(self, *args: Any) -> Any:
        return self.f(*args[:self.arg_count])


class Event:
    """Tyk's event handler decorator (``@Event``): ``(event, spec)``.  Loaded
    so that a plugin declaring one imports; fastgate dispatches no events to
    Python yet."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f
        self.name: str = getattr(f, "__name__", "event")

    def __call__(self, event: Any, spec: Any) -> Any:
        return self.f(event, spec)

"""Routing: the API whose ``listen_path`` is the longest prefix of the path.

Tyk matches listen paths as plain string prefixes of the request path (a
gorilla/mux ``PathPrefix``), so ``/a`` also matches ``/abc``; fastgate does
the same so existing definitions route identically.  Lookup is a dict probe
per distinct listen-path length, longest first: O(number of distinct
lengths), independent of the number of APIs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Routable(Protocol):
    @property
    def listen_path(self) -> bytes: ...


R = TypeVar("R", bound=Routable)


class Router(Generic[R]):
    """Maps a request path (bytes) to the route serving it."""

    __slots__ = ("_by_length", "_lengths", "routes")

    def __init__(self, routes: Iterable[R]) -> None:
        self.routes: tuple[R, ...] = tuple(routes)
        by_length: dict[int, dict[bytes, R]] = {}
        for route in self.routes:
            prefix = route.listen_path
            by_length.setdefault(len(prefix), {})[prefix] = route
        self._lengths: tuple[int, ...] = tuple(sorted(by_length, reverse=True))
        self._by_length = by_length

    def match(self, path: bytes) -> R | None:
        """The route serving ``path``, or None."""
        n = len(path)
        by_length = self._by_length
        for length in self._lengths:
            if length <= n:
                route = by_length[length].get(path[:length])
                if route is not None:
                    return route
        return None

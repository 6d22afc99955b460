"""From a credential to the request's identity, written once for every method.

* :class:`KeyNames` -- where a credential's session may be stored: the
  candidate storage keys, in the order Tyk looks, derived (named and hashed)
  once per credential and remembered, so the common request hashes nothing.
* :func:`find_session` -- the first candidate with a usable session: the
  cached entry at once, or an awaitable when the store must be asked.
* :class:`Identity` -- the hand-off: the session found becomes the request's
  ``session`` when this method is the API's base identity
  (:func:`base_identity`): the one ``base_identity_provided_by`` names, else
  the last method of the chain (auth token last), as in Tyk -- and every
  method when only one runs (a single method, or ``auth_mode: "any"``,
  where the method that decides provides the identity).  A method that is
  not the base identity proves its key exists and -- **beyond Tyk**, which
  checks nothing else of it -- that the key can be used: policies that
  apply, not ``is_inactive`` (403 "Key is inactive, please renew"), not
  past its ``expires`` (401 "Key has expired, please renew"), the answers
  the base key gets (:func:`proof_refusal`).  Its access rights, rate limit
  and quota are not looked at (Tyk's rule).  It sets the session only while
  no other method has.

The single-method path pays one attribute test for all this (``base``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastgate.middleware.session_checks import EXPIRED, INACTIVE
from fastgate.session.cache import CachedSession

if TYPE_CHECKING:
    from fastgate.apidef.spec import ApiSpec
    from fastgate.services import Request
    from fastgate.session.cache import SessionCache

__all__ = ["Found", "Identity", "KeyNames", "base_identity", "find_session",
           "proof_refusal"]

#: A session found: (storage key, session); None when there is none.
Found = tuple[str, CachedSession] | None

#: Remembered credentials at most, per naming (the oldest go first).
MAX_NAMES = 200_000


class KeyNames:
    """Candidate storage keys per credential, derived once (bounded)."""

    __slots__ = ("_derive", "_max", "_names")

    def __init__(self, derive: Callable[[bytes], tuple[str, ...]], *,
                 max_entries: int = MAX_NAMES) -> None:
        self._derive = derive
        self._max = max_entries
        # An OrderedDict: the oldest entry leaves in O(1).
        self._names: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()

    def of(self, credential: bytes) -> tuple[str, ...]:
        names = self._names.get(credential)
        if names is None:
            names = tuple(dict.fromkeys(self._derive(credential)))  # no key asked twice
            if len(self._names) >= self._max:
                self._names.popitem(last=False)
            self._names[credential] = names
        return names


_NOT_YET: object = object()


def find_session(sessions: SessionCache, candidates: tuple[str, ...],
                 usable: Callable[[CachedSession], bool] | None = None,
                 first: object = _NOT_YET) -> Found | Awaitable[Found]:
    """The first of ``candidates`` whose session exists (and is ``usable``).

    Synchronous while every candidate tried is cached; from the first one the
    store must be asked, an awaitable of the rest of the search.  Raises (or
    the awaitable raises) StoreError when the store fails.  ``first``: what
    ``sessions.lookup(candidates[0])`` already answered, when the caller asked.
    """
    for index, skey in enumerate(candidates):
        found: Any = sessions.lookup(skey) if index or first is _NOT_YET else first
        if found is None:
            continue
        if not isinstance(found, CachedSession):
            return _find_from(sessions, candidates, usable, index, found)
        if usable is None or usable(found):
            return skey, found
    return None


async def _find_from(sessions: SessionCache, candidates: tuple[str, ...],
                     usable: Callable[[CachedSession], bool] | None, index: int,
                     pending: Awaitable[CachedSession | None]) -> Found:
    found: CachedSession | Awaitable[CachedSession | None] | None = await pending
    while True:
        if found is not None:
            if not isinstance(found, CachedSession):
                found = await found
                continue
            if usable is None or usable(found):
                return candidates[index], found
        index += 1
        if index == len(candidates):
            return None
        found = sessions.lookup(candidates[index])


def base_identity(spec: ApiSpec) -> str:
    """The identity name (``"auth_token"``, ``"basic_auth_user"``...) of the
    method whose session is the request's on ``spec``: the one
    ``base_identity_provided_by`` names, else the last method of the chain
    (Tyk's "last wins"); "" when whichever method runs is (one method, or
    ``auth_mode: "any"``)."""
    if len(spec.auth) < 2 or spec.auth_mode == "any":
        return ""
    return spec.base_identity or spec.auth[-1][0].identity


def proof_refusal(entry: CachedSession, now: float) -> bytes | None:
    """Why a key that a method proved, but which is not the base identity,
    cannot be used: its policies do not apply, it is inactive, or expired --
    in the base session's order and with its answers
    (:class:`fastgate.middleware.session_checks.SessionChecks`)."""
    if entry.refusal is not None:
        return entry.refusal
    if entry.inactive:
        return INACTIVE
    if entry.expires > 0 and entry.expired(now):
        return EXPIRED
    return None


class Identity:
    """Hands a session found by one method to the request (see the module docstring)."""

    __slots__ = ("base",)

    def __init__(self, spec: ApiSpec, identity: str) -> None:
        #: This method's session is the request's: it drives access rights and limits.
        self.base = base_identity(spec) in ("", identity)

    def accept(self, req: Request, found: tuple[str, CachedSession]) -> bytes | None:
        """Hands ``found`` to the request; a method returns what this answers.

        The base identity's session becomes the request's (None); another
        method's key is checked by :func:`proof_refusal` (its refusal, else
        None; the session is set only while none is).
        """
        if self.base:
            req.session_key, req.session = found
            return None
        refusal = proof_refusal(found[1], time.time())
        if refusal is None and req.session is None:
            req.session_key, req.session = found
        return refusal

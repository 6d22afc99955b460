"""The Lua scripts the Redis store runs, read once from ``lua/*.lua``.

Each script decides atomically on the server, with the server's clock
(``TIME``), so a decision is exact whatever the number of gateways and however
their clocks drift. The store calls them with ``EVALSHA`` (the SHA1 is computed
here, exactly as Redis computes it) and falls back to ``EVAL`` -- which runs the
script and caches it again -- only when the server answers ``NOSCRIPT``: that
answer means the script did not run, so the retry cannot count a decision
twice. Every script touches exactly one key (a rate-limit key carries its
identity in a ``{hash tag}``), so each runs on Redis Cluster.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "ALL",
    "LEASE",
    "LEASE_RETURN",
    "LIMITS",
    "RECORD_TAKE",
    "SESSIONS_DUE",
    "SESSION_DEADLINE",
    "WORKERS_COUNT",
    "WORKERS_REGISTER",
    "LuaScript",
]


@dataclass(frozen=True, slots=True)
class LuaScript:
    """One script: its name (the file's stem), source and SHA1 (hex)."""

    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> LuaScript:
        path = resources.files("fastgate.storage").joinpath("lua", name + ".lua")
        source = path.read_text("utf-8")
        return cls(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


LIMITS = LuaScript.load("limits")
WORKERS_REGISTER = LuaScript.load("workers_register")
WORKERS_COUNT = LuaScript.load("workers_count")
SESSION_DEADLINE = LuaScript.load("session_deadline")
SESSIONS_DUE = LuaScript.load("sessions_due")
RECORD_TAKE = LuaScript.load("record_take")
#: A leased block of a key's rate and quota, and the give-back of its unspent
#: quota (fastgate.limits.leases).
LEASE = LuaScript.load("lease")
LEASE_RETURN = LuaScript.load("lease_return")
ALL = (LIMITS, WORKERS_REGISTER, WORKERS_COUNT, SESSION_DEADLINE, SESSIONS_DUE, RECORD_TAKE,
       LEASE, LEASE_RETURN)

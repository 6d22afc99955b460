"""The limit scripts (``limits.lua``, ``lease.lua``, ``lease_return.lua``)
restated in Python, operation for operation (the same float operations in the
same order, the same replies), on an in-memory state and a clock given by
the caller.

Used by the lease simulation (tests/limits/test_leases_sim.py: many nodes
on one modelled server, random schedules) and checked against the real
scripts on a real redis-server (tests/storage/test_leases.py), so that what
the simulation proves is what Redis runs.  Keys never expire here: in the
scripts an expiry only ever removes a state that reads the same as an
absent one (a full bucket, a period past its renewal).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["EPOCH", "ScriptModel"]

EPOCH = 1700000000


def _g(value: float) -> str:
    return format(value, ".17g")


class ScriptModel:
    """The scripts' data (rate buckets and quota hashes) and the scripts."""

    def __init__(self) -> None:
        #: "rl-{key}": (level, stamp) as the strings the scripts store.
        self.rate: dict[str, str] = {}
        #: "quota-{key}": {field: str}.
        self.quota: dict[str, dict[str, str]] = {}

    # -- shared parts --
    def _rate_state(self, key: str, rate: float, per: float, now: float) -> tuple[float, float]:
        level = 0.0
        state = self.rate.get(key)
        if state is not None:
            stored_level, stamp_text = state.split(" ")
            level = float(stored_level)
            stamp = float(stamp_text)
            if now > stamp:
                level = level - (now - stamp) * rate / per
                if level < 0.0:
                    level = 0.0
            else:
                now = stamp
        return level, now

    def _period(self, key: str, renewal: float,
                now_ms: int) -> tuple[int, int, bool]:
        state = self.quota.get(key, {})
        used_text = state.get("used")
        renews = int(state.get("renews") or 0)
        if used_text is None or (renews > 0 and now_ms >= renews):
            renews = 0
            if renewal > 0:
                renews = now_ms + math.floor(renewal * 1000)
            return 0, renews, True
        return int(used_text), renews, False

    # -- limits.lua --
    def limits(self, key: str, rate: float, per: float, quota_max: int, renewal: float,
               sec: int, usec: int) -> list[Any]:
        """``limits.lua`` at server time ``sec``.``usec``; its reply."""
        now = (sec - EPOCH) + usec / 1000000
        rate_on = rate > 0 and per > 0
        cap = rate if rate >= 1.0 else 1.0
        level = 0.0
        if rate_on:
            level, now = self._rate_state(key, rate, per, now)
            if level + 1.0 > cap:
                return [0, 0, _g(level * per / rate), _g((level + 1.0 - cap) * per / rate),
                        1, -1, 0]
        quota_on = quota_max > 0
        used = renews = 0
        new_period = False
        if quota_on:
            now_ms = sec * 1000 + math.floor(usec / 1000)
            used, renews, new_period = self._period(key, renewal, now_ms)
            if used >= quota_max:
                return [1, 0, "0", "0", 0, 0, renews]
        remaining = -1
        reset_after = 0.0
        if rate_on:
            level = level + 1.0
            reset_after = level * per / rate
            self.rate[key] = f"{_g(level)} {_g(now)}"
            left = cap - level
            remaining = 0 if left < 1.0 else math.floor(left)
        quota_remaining = -1
        if quota_on:
            used = used + 1
            if new_period:
                self.quota[key] = {"used": str(used), "renews": str(renews)}
            else:
                self.quota[key]["used"] = str(used)
            quota_remaining = quota_max - used
        return [1, remaining, _g(reset_after), "0", 1, quota_remaining, renews]

    # -- lease.lua --
    def lease(self, key: str, rate: float, per: float, quota_max: int, renewal: float,
              want: int, life: float, sec: int, usec: int) -> list[Any]:
        """``lease.lua`` at server time ``sec``.``usec``; its reply."""
        want = max(1, math.floor(want))
        life = max(0.0, life)
        now_ms = sec * 1000 + math.floor(usec / 1000)
        rate_on = rate > 0 and per > 0
        now = (sec - EPOCH) + usec / 1000000
        cap = rate if rate >= 1.0 else 1.0
        level = 0.0
        room = want
        if rate_on:
            level, now = self._rate_state(key, rate, per, now)
            if level + 1.0 > cap:
                return [0, 0, 0, _g(level * per / rate), _g((level + 1.0 - cap) * per / rate),
                        1, -1, 0, now_ms, "", 1]
            room = math.floor(cap - level)
            while room > 1 and level + room > cap:
                room -= 1
            room = max(room, 1)
        quota_on = quota_max > 0
        used = renews = 0
        new_period = False
        quota_room = want
        if quota_on:
            used, renews, new_period = self._period(key, renewal, now_ms)
            if used >= quota_max:
                return [0, 1, 0, "0", "0", 0, 0, renews, now_ms, "", 2]
            quota_room = quota_max - used
        granted, bound = want, 0
        if room < granted:
            granted, bound = room, 1
        if quota_room < granted:
            granted, bound = quota_room, 2
        if granted <= 1:
            granted, life = 1, 0.0
        remaining = -1
        reset_after = 0.0
        if rate_on:
            charged = level
            lead = life * rate / per
            if charged < lead:
                charged = lead
            charged = charged + granted
            reset_after = charged * per / rate
            self.rate[key] = f"{_g(charged)} {_g(now)}"
            left = cap - (level + granted)
            remaining = 0 if left < 1.0 else math.floor(left)
        quota_remaining = -1
        ps = ""
        if quota_on:
            used = used + granted
            if life > 0:
                if not new_period:
                    ps = self.quota[key].get("ps", "")
                if ps == "":
                    ps = f"{sec}-{usec}"
                    if not new_period:
                        self.quota[key]["ps"] = ps
            if new_period:
                self.quota[key] = {"used": str(used), "renews": str(renews)}
                if ps != "":
                    self.quota[key]["ps"] = ps
            else:
                self.quota[key]["used"] = str(int(self.quota[key]["used"]) + granted)
            quota_remaining = quota_max - used
        return [granted, 1, remaining, _g(reset_after), "0", 1, quota_remaining, renews, now_ms,
                ps, bound]

    # -- lease_return.lua --
    def lease_return(self, key: str, units: int, ps: str) -> int:
        """``lease_return.lua``; the units given back."""
        state = self.quota.get(key)
        if state is None or "used" not in state or state.get("ps") != ps:
            return 0
        used = int(state["used"])
        units = min(math.floor(units), used)
        if units <= 0:
            return 0
        state["used"] = str(used - units)
        return units

    def used(self, key: str) -> int:
        """The quota counter of ``key`` ("quota-{key}"), 0 when absent."""
        return int(self.quota.get(key, {}).get("used", 0))

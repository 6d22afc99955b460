"""HAProxy doing the auth-token scenarios' work: key auth from a map file of the same
keys fastgate was given, and a per-key rate limit in a stick table.

The map holds the **raw** keys wrk sends (one ``<key> 1`` line each), which is what
HAProxy must match: fastgate stores the keys hashed (``hash_keys``) and hashes each
credential once, remembering the result; HAProxy hashes nothing, it looks the header
up in an elastic binary tree.  It has no session, no expiry, no access rights and no
quota either -- the peer descriptions say so.

The scenario's prepare hook decides where the map goes (its work directory) and puts
the rules into the HAProxy peer; the setup hook creates the keys through fastgate's
REST API and writes the map; the harness starts HAProxy after the setup hook, so the
map is complete when HAProxy loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from bench.spec import HaproxyPeer, PrepareContext, PrepareHook, Scenario, SetupContext, WrkPlan

#: The header every auth-token scenario sends its key in.
KEY_HEADER = "authorization"
#: Keys the stick table holds at most (the scenarios rotate 10,000).
STICK_TABLE_SIZE = "20k"
#: Longest key the stick table keeps (fastgate's generated keys are 32 characters).
STICK_KEY_LEN = 64


def key_map_rules(map_path: Path) -> str:
    """Frontend rules: 403 unless the key header is in ``map_path`` (HAProxy 2.6)."""
    return (f"    http-request deny deny_status 403 unless "
            f"{{ req.hdr({KEY_HEADER}),map({map_path}) -m found }}\n")


def rate_limit_rules(limit: int, per_s: int = 1) -> str:
    """Frontend rules: a per-key request rate over ``per_s`` seconds in a stick
    table, 429 above ``limit`` (after the key check, so unknown keys never enter
    the table)."""
    if limit < 1 or per_s < 1:
        raise ValueError("the rate limit and its period must be >= 1")
    return (f"    stick-table type string len {STICK_KEY_LEN} size {STICK_TABLE_SIZE} "
            f"expire {max(10, 2 * per_s)}s store http_req_rate({per_s}s)\n"
            f"    http-request track-sc0 req.hdr({KEY_HEADER})\n"
            f"    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {limit} }}\n")


def write_key_map(path: Path, keys: Iterable[str]) -> int:
    """Write HAProxy's map of ``keys`` (``<key> 1`` per line); the number written."""
    lines = []
    for key in keys:
        if not key or any(c.isspace() for c in key):
            raise ValueError("a map key must be non-empty and hold no whitespace")
        lines.append(f"{key} 1\n")
    path.write_text("".join(lines))
    return len(lines)


def describe(keys: int, rate_limit: int | None, per_s: int = 1) -> str:
    """What the HAProxy peer does (and does not) -- printed beside the table."""
    text = (f"key auth from a map of the same {keys:,} raw keys (map() -m found, "
            f"403 otherwise; no hashing, no session, no quota)")
    if rate_limit is not None:
        text += (f" + per-key rate limit in a stick table ({rate_limit:,} per {per_s}s, "
                 "429 above; local to this process)")
    return text


#: The peer of a key-auth scenario until its prepare hook fills in the map's rules.
HAPROXY_PENDING = HaproxyPeer("key auth from a map of the scenario's keys (made at run time)")

KeySetup = Callable[[SetupContext, Path], WrkPlan]


def prepare_key_auth(setup: KeySetup, keys: int, rate_limit: int | None = None,
                     per_s: int = 1) -> PrepareHook:
    """A prepare hook: the map's place in the work dir, the HAProxy rules that read
    it (and the stick table when ``rate_limit``), and a setup hook that calls
    ``setup(ctx, map_path)`` -- which creates the keys and writes the map."""

    def prepare(ctx: PrepareContext, scenario: Scenario) -> Scenario:
        map_path = ctx.work_dir / "keys.map"
        map_path.write_text("")  # complete once the setup hook has run
        rules = key_map_rules(map_path)
        if rate_limit is not None:
            rules += rate_limit_rules(rate_limit, per_s)
        peer = HaproxyPeer(describe(keys, rate_limit, per_s), rules)
        return replace(scenario, haproxy=peer,
                       setup=lambda sctx: setup(sctx, map_path))

    return prepare

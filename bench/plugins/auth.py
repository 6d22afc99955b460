"""The python-auth-check scenario's plugin (see bench/scenarios.py), written as a
Tyk user writes a custom authentication hook: the Authorization header must hold
the bench's token; the session granted has a rate limit the load never reaches
and no quota."""

import hmac

from tyk.decorators import Hook

TOKEN = "bench-plugin-token-0123456789abcdef"
_EXPECTED = TOKEN.encode()


@Hook
def BenchAuth(request, session, metadata, spec):
    """Accept the bench token (compared in constant time); refuse anything else."""
    auth = request.get_header("Authorization")
    if auth and hmac.compare_digest(auth.encode(), _EXPECTED):
        session.rate = 1000000.0
        session.per = 1.0
        session.quota_max = -1
        metadata["token"] = TOKEN
    return request, session, metadata

"""Token changes announced to the API owner (Tyk's ``NotificationsManager``).

After every token the provider issues (a new one, or a refresh), the API's
``notifications.oauth_on_keychange_url`` gets, as Tyk sends it::

    POST <oauth_on_keychange_url>
    User-Agent: Tyk-Gatewy-Notifications        (sic: Tyk's spelling)
    Content-Type: application/json
    X-Tyk-Shared-Secret: <notifications.shared_secret>

    {"auth_code": "...", "new_oauth_token": "...", "refresh_token": "...",
     "old_refresh_token": "...", "notification_type": "new" | "refresh"}

The message carries the tokens themselves: that is what it is for (the API
owner tracks its users' tokens), so the URL should be ``https://`` or on a
trusted network.  Tokens are never logged.

Delivery is asynchronous: :func:`send` schedules it and returns at once, so
the token answer never waits.  An answer other than 200, a connection that
fails or no answer within 10 s (Tyk's client timeout) is retried after
``notifications.retry_interval`` seconds (Tyk's 10), three attempts in all;
then one warning names the URL (without its query or credentials) and the
last reason.  At most :data:`MAX_PENDING` notifications are in flight per
worker; beyond that a new one is dropped with a warning (a dead endpoint
under a flood of tokens costs bounded memory, nothing else).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from fastgate.outbound import OutboundError

if TYPE_CHECKING:
    from fastgate.auth.oauth2.config import NotificationsConfig
    from fastgate.outbound import HttpClient
    from fastgate.services import Services

__all__ = ["ATTEMPTS", "MAX_PENDING", "TIMEOUT", "USER_AGENT", "deliver", "in_flight", "message",
           "send"]

log = logging.getLogger("fastgate.oauth.notifications")

#: Tyk's User-Agent for notifications, misspelt as Tyk spells it (receivers match on it).
USER_AGENT = "Tyk-Gatewy-Notifications"
#: Attempts per notification (Tyk's).
ATTEMPTS = 3
#: Seconds one attempt may take (Tyk's notification client).
TIMEOUT = 10.0
#: Notifications in flight per worker at most.
MAX_PENDING = 10_000

_pending: set[asyncio.Task[bool]] = set()


def message(*, new_token: str, refresh_token: str = "", auth_code: str = "",
            old_refresh_token: str = "") -> dict[str, str]:
    """Tyk's ``NewOAuthNotification``; ``notification_type`` is ``refresh``
    when an old refresh token was exchanged, else ``new``."""
    return {
        "auth_code": auth_code,
        "new_oauth_token": new_token,
        "refresh_token": refresh_token,
        "old_refresh_token": old_refresh_token,
        "notification_type": "refresh" if old_refresh_token else "new",
    }


def _safe_url(url: str) -> str:
    """The URL without userinfo, query or fragment (for log lines)."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]
    path = path.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{authority}{slash}{path}"


async def deliver(http: HttpClient, config: NotificationsConfig, body: bytes, *,
                  sleep: Any = asyncio.sleep) -> bool:
    """Deliver one notification, retrying as Tyk does; True once a 200 came back."""
    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        "X-Tyk-Shared-Secret": config.shared_secret,
    }
    reason = ""
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:
            await sleep(config.retry_interval)
        try:
            answer = await http.request("POST", config.url, headers=headers, body=body,
                                        timeout=TIMEOUT, max_body=64 * 1024)
        except OutboundError as exc:
            reason = str(exc)
        else:
            if answer.status == 200:
                return True
            reason = f"answered {answer.status}"
        log.debug("OAuth notification to %s failed (attempt %d of %d): %s",
                  _safe_url(config.url), attempt, ATTEMPTS, reason)
    log.warning("OAuth notification to %s given up after %d attempts: %s",
                _safe_url(config.url), ATTEMPTS, reason)
    return False


def send(services: Services, config: NotificationsConfig, note: dict[str, str]) -> None:
    """Schedule the delivery of ``note`` (see :func:`message`) and return at once;
    nothing when the API has no notification URL."""
    if not config.enabled:
        return
    if len(_pending) >= MAX_PENDING:
        log.warning("OAuth notification to %s dropped: %d already in flight",
                    _safe_url(config.url), len(_pending))
        return
    task = asyncio.get_running_loop().create_task(
        deliver(services.http, config, orjson.dumps(note)))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def in_flight() -> int:
    """Notifications scheduled and not yet delivered or given up (this worker)."""
    return len(_pending)

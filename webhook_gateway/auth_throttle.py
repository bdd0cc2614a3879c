"""Throttling of failed authentications per client address (issue 16).

flask-limiter's decorator model does not fit "count failures only": a limit it finds exceeded
refuses *every* request of the key before the view runs, so a valid token from a throttled
address would be refused too. This module therefore uses the library flask-limiter is built
on, ``limits``, through its public API (``storage_from_string`` and a
``MovingWindowRateLimiter``): a moving window of ``auth_failure_limit`` failures per
``auth_failure_window_seconds`` per client address.

Storage: Redis when the broker is Redis (fleet mode: every gateway process and pod shares
the count), process memory otherwise (embedded mode: one host, SQLite, no Redis; each
gunicorn process counts on its own, so the effective limit is the limit times the processes).

The policy, applied by the callers (the API's bearer-token check and ``/metrics``):

* A valid credential is never throttled, whatever its address did before.
* An invalid credential counts as one failure and is answered 401 while the address is within
  the limit; once the address is over it, 429 with ``Retry-After`` (and the failure is not
  counted again: the window holds the last ``limit`` counted failures, so a persistent guesser
  gets at most ``limit`` answers per window). 429 and 401 both mean "not valid", so a guess
  gains nothing from the difference.
* The credential is still looked up for a throttled address. The lookup is one indexed query
  by the token's hash, the same cost as any unauthenticated request, so skipping it would save
  little, and it would lock out a legitimate user who shares the address (NAT, a proxy) with the
  guesser, which the issue forbids.
* A request without a credential (no or a malformed ``Authorization`` header) is no guess
  and is not counted.
* The address is the peer address (``REMOTE_ADDR``), or the one that
  ``AUTOMATIONS_TRUSTED_PROXIES`` proxies reported (``ProxyFix`` in the app factory). IPv6
  addresses count per /64, the block one subscriber usually gets.
* If the storage fails (Redis down), the throttle fails open: the failure is not counted, the
  request gets its 401, and a warning is logged (at most once a minute per process). Refusing
  every bad token with 503 instead would turn a Redis outage into an API outage for nobody's
  benefit: valid tokens keep working either way, and guessing 256-bit tokens is hopeless
  without the throttle too; it bounds the noise, not a feasible attack.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from shared.infra.config import Settings

__all__ = ["AuthThrottle", "client_key", "storage_uri_for"]

log = logging.getLogger(__name__)

#: the namespace of the counters (in Redis: keys ``automations:limits/auth-failures/...``)
_NAMESPACE = "auth-failures"
_KEY_PREFIX = "automations:limits"
#: Redis must answer fast or not at all: a failed authentication waits for it
_REDIS_TIMEOUT_SECONDS = 0.5
_WARN_EVERY_SECONDS = 60.0


def storage_uri_for(settings: Settings) -> str:
    """The broker's Redis in fleet mode, process memory in embedded mode."""
    url = settings.effective_broker_url
    return url if url.startswith(("redis://", "rediss://")) else "memory://"


def client_key(address: str | None) -> str:
    """The counter's key for a client address: the address itself, an IPv6 one per /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AuthThrottle:
    """Counts failed authentications per client address; see the module docstring."""

    def __init__(self, storage_uri: str, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._item = RateLimitItemPerSecond(max(limit, 1), window_seconds)
        options: dict[str, float | str | bool] = {"wrap_exceptions": True}
        if storage_uri.startswith(("redis://", "rediss://")):
            options.update(
                key_prefix=_KEY_PREFIX,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
            )
        self._storage = storage_from_string(storage_uri, **options)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._warned_at = -math.inf
        self._warn_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthThrottle:
        return cls(
            storage_uri_for(settings),
            settings.auth_failure_limit,
            settings.auth_failure_window_seconds,
        )

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def record_failure(self, address: str | None) -> int | None:
        """Count one failed authentication from ``address``.

        Returns ``None`` while the address is within the limit (answer 401), else the seconds
        after which its next failure can be counted again (answer 429 with ``Retry-After``).
        """
        if not self.enabled:
            return None
        key = client_key(address)
        try:
            if self._limiter.hit(self._item, _NAMESPACE, key):
                return None
            reset_at = self._limiter.get_window_stats(self._item, _NAMESPACE, key).reset_time
        except StorageError as exc:
            self._warn(exc)
            return None
        return max(1, math.ceil(reset_at - time.time()))

    def reset(self) -> None:
        """Forget every count (tests; an operator can also delete the Redis keys)."""
        self._storage.reset()

    def _warn(self, exc: StorageError) -> None:
        now = time.monotonic()
        with self._warn_lock:
            if now - self._warned_at < _WARN_EVERY_SECONDS:
                return
            self._warned_at = now
        log.warning(
            "failed-authentication throttle unavailable, not counting (fails open): %s: %s",
            type(exc.storage_error).__name__,
            str(exc.storage_error).splitlines()[0][:200] if str(exc.storage_error) else "",
        )

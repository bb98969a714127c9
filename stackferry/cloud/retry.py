"""One retry policy for every call stackferry makes to a cloud.

What is worth repeating is decided from status codes and exception types, never from message
text: HTTP 429 and 5xx answers, connection failures and timeouts, and ``TransientError`` (a
step the cloud itself abandoned) are transient; everything else - 401, 403, 404, 409 and the
other 4xx - says the request or the state is wrong, and repeating it changes nothing.

Delays grow exponentially with jitter (so parallel workers do not retry in lockstep), a
``Retry-After`` the cloud sends is honoured, and both the number of attempts and the total
time are bounded. At the bound the error says which call, how often, for how long and what
the cloud last answered: ``RetriesExhausted``, which is not transient itself, so a retry
around a retried call does not multiply the attempts.

Two layers use it: the transport (``connection.harden``) repeats requests that are safe to
send twice (reads, token requests, anything answered 429); the engine and ops/ repeat whole
operations, which re-read the cloud before writing again, so a write whose answer was lost is
converged, never duplicated.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
# A request answered with one of these was not carried out: safe to send again, whatever it is.
NOT_PROCESSED_STATUS = frozenset({429})


class TransientError(Exception):
    """A cloud-side step failed in a way worth retrying (e.g. an upload the service itself
    abandoned); retried like an HTTP 503."""


class RetriesExhausted(Exception):
    """A call kept failing in a transient way until the policy's bound. Not transient itself:
    whoever catches it gives up and reports it."""

    def __init__(self, what: str, attempts: int, seconds: float, last: str) -> None:
        self.what, self.attempts, self.seconds, self.last = what, attempts, seconds, last
        super().__init__(
            f"{what}: still failing after {attempts} attempt(s) in {seconds:.0f} s "
            f"(last: {last}); the cloud is overloaded or down - re-run once it recovers"
        )


def status_of(failure: BaseException) -> int | None:
    """The HTTP status an exception carries (openstacksdk's and keystoneauth's alike)."""
    for attribute in ("status_code", "http_status"):
        value = getattr(failure, attribute, None)
        if isinstance(value, int):
            return value
    response = getattr(failure, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ksa_exceptions.ConnectFailure,
    ksa_exceptions.ConnectTimeout,
    ksa_exceptions.RetriableConnectionFailure,
    ksa_exceptions.UnknownConnectionError,
    ConnectionError,
)


def is_transient(failure: BaseException) -> bool:
    """Worth retrying: the cloud was briefly unable, not the request being wrong."""
    if isinstance(failure, TransientError):
        return True
    if isinstance(failure, RetriesExhausted):
        return False
    if isinstance(failure, sdk_exceptions.HttpException | ksa_exceptions.HttpError):
        return status_of(failure) in TRANSIENT_STATUS
    return isinstance(failure, CONNECTION_ERRORS)


def retry_after(headers: Any) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), if any."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def describe(failure: BaseException | None, status: int | None = None) -> str:
    """What the cloud last answered, in a few words: ``HTTP 503`` or the exception's type."""
    status = status if status is not None else (status_of(failure) if failure else None)
    if status is not None:
        return f"HTTP {status}"
    return type(failure).__name__ if failure is not None else "no answer"


_jitter = random.Random()
_jitter_lock = threading.Lock()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 10  # tries in all, the first included
    budget: float = 90.0  # seconds from the first try after which no new try starts
    base_delay: float = 0.25
    max_delay: float = 10.0

    def delay(self, retry: int, asked: float | None = None) -> float:
        """The pause before retry number ``retry`` (1, 2, ...): exponential with equal jitter,
        or what the cloud asked for when it said (never less)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        with _jitter_lock:
            pause = ceiling / 2 + _jitter.uniform(0, ceiling / 2)
        return max(pause, asked) if asked is not None else pause

    def tracker(
        self,
        what: str,
        retry_if: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> Attempts:
        return Attempts(self, what, retry_if, sleep)

    def run(
        self,
        call: Callable[[], T],
        what: str,
        retry_if: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> T:
        """``call()``, repeated while it fails in a way ``retry_if`` accepts, within bounds."""
        attempts = self.tracker(what, retry_if, sleep)
        while True:
            try:
                return call()
            except Exception as exc:
                attempts.failed(exc)


class Attempts:
    """The state of one retried call, for loops that do more between tries than calling again
    (re-reading, re-deciding). ``failed`` sleeps before the next try, or raises."""

    def __init__(
        self,
        policy: RetryPolicy,
        what: str,
        retry_if: Callable[[BaseException], bool],
        sleep: Callable[[float], Any],
    ) -> None:
        self.policy, self.what, self.retry_if, self.sleep = policy, what, retry_if, sleep
        self.started = time.monotonic()
        self.retries = 0

    def failed(self, exc: BaseException) -> None:
        """Sleep before the next try; re-raise ``exc`` when it is not worth retrying, or raise
        RetriesExhausted at the bound."""
        if not self.retry_if(exc):
            raise exc
        headers = getattr(getattr(exc, "response", None), "headers", None)
        self._pause(describe(exc), retry_after(headers), exc)

    def answered(self, status: int, headers: Any) -> None:
        """Like ``failed``, for an answer that came back with a transient status."""
        self._pause(describe(None, status), retry_after(headers), None)

    def reset(self) -> None:
        """The call went through: later failures start a new count."""
        self.started, self.retries = time.monotonic(), 0

    def _pause(self, last: str, asked: float | None, exc: BaseException | None) -> None:
        self.retries += 1
        elapsed = time.monotonic() - self.started
        pause = self.policy.delay(self.retries, asked)
        if self.retries >= self.policy.attempts or elapsed + pause > self.policy.budget:
            raise RetriesExhausted(self.what, self.retries, elapsed, last) from exc
        self.sleep(pause)


# Requests: a few seconds of trouble are ridden out without the caller noticing.
TRANSPORT = RetryPolicy()
# The first contact with a cloud: a cloud that cannot be reached at all is more likely a
# wrong auth_url than a hiccup, and the operator is told within seconds.
CONNECTING = RetryPolicy(attempts=4, budget=8.0, base_delay=0.5)
# Operations (a create, a migration step): each try re-reads before it writes again.
OPERATIONS = RetryPolicy(attempts=6, budget=600.0, base_delay=1.0, max_delay=20.0)


def wait_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    what: str,
    timeout: float,
    failed: Callable[[T], str | None] = lambda _: None,
    interval: float = 1.0,
) -> T:
    """Poll ``fetch`` until ``done``; a ``failed`` answer or the timeout raises, saying which
    state the thing was last seen in. A transient error while polling (a dropped keep-alive
    connection, a 503) is polled through: the thing being waited for is not affected."""
    deadline = time.monotonic() + timeout
    for pause in _intervals(interval):
        try:
            value = fetch()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            continue
        reason = failed(value)
        if reason:
            raise RuntimeError(f"{what}: {reason}")
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s (last seen: {value})")
        time.sleep(pause)
    raise AssertionError("unreachable")


def _intervals(first: float) -> Iterator[float]:
    pause = first
    while True:
        yield pause
        pause = min(pause * 1.5, 5.0)

"""Polling helpers for tests: wait for a resource to reach a state, failing with its last state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    what: str,
    timeout: float = 180,
    interval: float = 1.0,
) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {value}"
            )
        time.sleep(interval)
        value = fetch()
    return value


def wait_status(
    fetch: Callable[[], Any],
    status: str,
    what: str,
    timeout: float = 180,
    failed: tuple[str, ...] = ("error", "ERROR", "killed"),
) -> Any:
    def done(resource: Any) -> bool:
        if resource.status in failed:
            raise AssertionError(f"{what} went to {resource.status}: {resource}")
        return bool(resource.status == status)

    return wait_for(fetch, done, f"{what} to be {status}", timeout)

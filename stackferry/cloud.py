"""Connecting to clouds the ecosystem's way (clouds.yaml, OS_CLOUD, OS_* variables), and
counting every API call each connection makes, by service and HTTP method."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import openstack
from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from stackferry.engine.errors import CloudError

SERVICE_TYPES = ("identity", "compute", "network", "image", "block-storage", "placement")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CallCounter:
    """API calls per (cloud, service, method); fed by a response hook on each session."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.latency = 0.0  # seconds spent waiting for responses, summed over all calls
        self._lock = threading.Lock()

    def attach(self, label: str, conn: Connection) -> None:
        prefixes: list[tuple[str, str]] = []

        def service_of(url: str) -> str:
            if not prefixes:
                for service_type in SERVICE_TYPES:
                    try:
                        endpoint = conn.endpoint_for(service_type)
                    except Exception:  # a service this cloud lacks: nothing to count
                        continue
                    if endpoint:
                        parts = urlsplit(endpoint)
                        prefixes.append((f"{parts.scheme}://{parts.netloc}", service_type))
            return next((s for p, s in prefixes if url.startswith(p)), "other")

        def hook(response: Any, *args: Any, **kwargs: Any) -> None:
            method = response.request.method
            service = "identity" if "/v3/auth/tokens" in response.url else None
            with self._lock:
                self.calls[(label, service or service_of(response.url), method)] += 1
                self.latency += response.elapsed.total_seconds()

        conn.session.session.hooks["response"].append(hook)

    def writes(self, label: str | None = None) -> int:
        return sum(
            n
            for (cloud, _, method), n in self.calls.items()
            if method in WRITE_METHODS and (label is None or cloud == label)
        )

    def total(self, label: str | None = None) -> int:
        return sum(n for (cloud, _, _), n in self.calls.items() if label is None or cloud == label)

    def rows(self) -> list[tuple[str, str, str, int]]:
        return [(c, s, m, n) for (c, s, m), n in sorted(self.calls.items())]


def connect(cloud: str | None, counter: CallCounter | None = None, label: str = "") -> Connection:
    """Open and authenticate a connection; wrong credentials or an unreachable cloud become a
    CloudError naming the cloud and the cause, before anything else is attempted."""
    name = cloud or "(OS_CLOUD / OS_* environment)"
    try:
        conn = openstack.connect(cloud=cloud) if cloud else openstack.connect()
        conn.authorize()
    except Exception as exc:
        raise _cloud_error(name, exc) from None
    if counter is not None:
        counter.attach(label or name, conn)
    return conn


def _root_causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: openstacksdk wraps keystoneauth's errors."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _cloud_error(name: str, exc: Exception) -> CloudError:
    for cause in _root_causes(exc):
        if isinstance(cause, ksa_exceptions.Unauthorized):
            return CloudError(
                f"cloud {name}: the credentials were refused (HTTP 401). Check username, "
                "password, project and domain names in clouds.yaml or OS_* variables."
            )
        if isinstance(
            cause,
            ksa_exceptions.ConnectFailure
            | ksa_exceptions.ConnectTimeout
            | ksa_exceptions.DiscoveryFailure,
        ):
            return CloudError(
                f"cloud {name}: cannot reach the identity service ({cause}). "
                "Check auth_url and that the cloud is up."
            )
        if isinstance(
            cause, sdk_exceptions.ConfigException | ksa_exceptions.MissingRequiredOptions
        ):
            return CloudError(f"cloud {name}: not configured: {cause}")
    return CloudError(f"cloud {name}: {exc}")


def is_admin(conn: Connection) -> bool:
    try:
        roles = cast(Any, conn.session.auth).get_access(conn.session).role_names
    except Exception:
        return False
    return "admin" in roles


TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class TransientError(Exception):
    """A cloud-side step failed in a way worth retrying (e.g. an upload the service itself
    abandoned); the engine retries the operation, as for an HTTP 503."""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the cloud was briefly unable, not the request being wrong."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, sdk_exceptions.HttpException):
        return exc.status_code in TRANSIENT_STATUS
    return isinstance(
        exc,
        ksa_exceptions.ConnectFailure
        | ksa_exceptions.ConnectTimeout
        | ksa_exceptions.RetriableConnectionFailure
        | ConnectionError,
    )


def wait_until(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    what: str,
    timeout: float,
    failed: Callable[[Any], str | None] = lambda _: None,
    interval: float = 1.0,
) -> Any:
    """Poll ``fetch`` until ``done``; a ``failed`` answer or the timeout raises, saying which
    state the thing was last seen in. A transient error while polling (a dropped keep-alive
    connection, a 503) is polled through: the thing being waited for is not affected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fetch()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            time.sleep(interval)
            continue
        reason = failed(value)
        if reason:
            raise RuntimeError(f"{what}: {reason}")
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s (last seen: {value})")
        time.sleep(interval)
        interval = min(interval * 1.5, 5.0)


def rest(proxy: Any, method: str, path: str, **kwargs: Any) -> Any:
    """A raw REST call through a service proxy (for what openstacksdk does not model), with
    an error status raised as openstacksdk's exception, as its own calls do."""
    response = getattr(proxy, method)(path, **kwargs)
    sdk_exceptions.raise_from_response(response)
    return response

"""Connecting to clouds the ecosystem's way (clouds.yaml, OS_CLOUD, OS_* variables), with the
retry policy on every request, every API call counted by service and HTTP method, and the
cloud's own words when it refuses something."""

from __future__ import annotations

import html
import json
import os
import re
import threading
from collections import Counter
from typing import Any, cast
from urllib.parse import urlsplit

import openstack
import yaml
from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions
from openstack.config import loader
from openstack.connection import Connection

from stackferry.cloud.retry import (
    CONNECTING,
    NOT_PROCESSED_STATUS,
    TRANSIENT_STATUS,
    TRANSPORT,
    RetriesExhausted,
    RetryPolicy,
    is_transient,
    status_of,
)
from stackferry.errors import CloudError, StackferryError

SERVICE_TYPES = ("identity", "compute", "network", "image", "block-storage", "placement")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


# --- the transport: every request of a connection goes through the retry policy -------------


def _is_token_request(url: str, method: str) -> bool:
    """Asking keystone for a token changes nothing: safe to ask twice."""
    return method == "POST" and urlsplit(url).path.rstrip("/").endswith("/auth/tokens")


def _replayable(kwargs: dict[str, Any]) -> bool:
    """Whether the request's body can be sent again (a stream, e.g. an upload, cannot)."""
    data = kwargs.get("data")
    return data is None or isinstance(data, bytes | str | dict | list | tuple)


def harden(conn: Connection, policy: RetryPolicy = TRANSPORT) -> Connection:
    """Put the retry policy under every request of ``conn`` (reads, pages, tokens, polls).

    Requests safe to send twice - reads, token requests, and anything the cloud answered 429
    (not carried out) - are repeated here. Other writes are left to the operation above, which
    looks before writing again; keystoneauth's own blind repetition of any request (after a
    connection error, or a 503 for glance) is switched off, since a POST whose answer was lost
    must not be sent twice, nor an upload whose stream is spent. Called again, it changes the
    policy."""
    session = conn.session
    session._stackferry_policy = policy  # type: ignore[attr-defined]
    if getattr(session, "_stackferry_hardened", False):
        return conn
    original = session.request

    def request(url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["connect_retries"] = 0
        kwargs["status_code_retries"] = 0  # openstacksdk asks 5 for every image call, POSTs too
        safe = method.upper() in SAFE_METHODS or _is_token_request(url, method.upper())
        replayable = _replayable(kwargs)
        current: RetryPolicy = getattr(session, "_stackferry_policy", policy)
        attempts = current.tracker(f"{method.upper()} {_short_url(url)}")
        while True:
            try:
                response = original(url, method, *args, **kwargs)
            except Exception as exc:
                status = status_of(exc)
                again = replayable and (
                    (safe and is_transient(exc)) or status in NOT_PROCESSED_STATUS
                )
                if not again:
                    raise
                attempts.failed(exc)
                continue
            status = response.status_code
            if replayable and (
                status in NOT_PROCESSED_STATUS or (safe and status in TRANSIENT_STATUS)
            ):
                attempts.answered(status, response.headers)
                continue
            return response

    session.request = request  # type: ignore[method-assign]
    session._stackferry_hardened = True  # type: ignore[attr-defined]
    return conn


def _short_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}" if parts.netloc else parts.path


# --- connecting ------------------------------------------------------------------------------


def connect(cloud: str | None, counter: CallCounter | None = None, label: str = "") -> Connection:
    """Open and authenticate a connection; wrong credentials, an unreachable cloud or a broken
    clouds.yaml become a CloudError naming the cloud and the cause, before anything else."""
    name = cloud or "(OS_CLOUD / OS_* environment)"
    try:
        conn = openstack.connect(cloud=cloud) if cloud else openstack.connect()
        harden(conn, CONNECTING)
        conn.authorize()
    except Exception as exc:
        raise _cloud_error(name, exc) from None
    harden(conn)  # from now on, the patience of a running migration
    if counter is not None:  # after authorize: its hook asks the auth plugin for the catalog
        counter.attach(label or name, conn)
    return conn


def scoped(conn: Connection, project_id: str) -> Connection:
    """A connection like ``conn``, with a token scoped to ``project_id``."""
    other = harden(conn.connect_as_project({"id": project_id}))
    other.authorize()
    return other


def config_files() -> list[str]:
    """The clouds.yaml files openstacksdk reads, in its order."""
    override = os.environ.get("OS_CLIENT_CONFIG_FILE")
    return [*([override] if override else []), *loader.CONFIG_FILES]


def broken_config() -> str | None:
    """openstacksdk skips a clouds.yaml it cannot parse with only a log line, and then says
    the cloud is not configured; name the file and the parse error instead."""
    for path in config_files():
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            return f"{path} cannot be read: {' '.join(str(exc).split())}"
        if document is not None and not isinstance(document, dict):
            return f"{path}: expected a mapping with a 'clouds' key at the top level"
    return None


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
        unreachable = (
            ksa_exceptions.ConnectFailure
            | ksa_exceptions.ConnectTimeout
            | ksa_exceptions.DiscoveryFailure
        )
        if isinstance(cause, RetriesExhausted) and not isinstance(cause.__cause__, unreachable):
            return CloudError(f"cloud {name}: the identity service {cause}")
        if isinstance(cause, unreachable):
            return CloudError(
                f"cloud {name}: cannot reach the identity service ({cause}). "
                "Check auth_url and that the cloud is up."
            )
        if isinstance(
            cause, sdk_exceptions.ConfigException | ksa_exceptions.MissingRequiredOptions
        ):
            broken = broken_config()
            if broken:
                return CloudError(f"cloud {name}: clouds.yaml is broken: {broken}")
            return CloudError(f"cloud {name}: not configured: {cause}")
    return CloudError(f"cloud {name}: {api_message(exc)}")


def is_admin(conn: Connection) -> bool:
    try:
        roles = cast(Any, conn.session.auth).get_access(conn.session).role_names
    except Exception:
        return False
    return "admin" in roles


def rest(proxy: Any, method: str, path: str, **kwargs: Any) -> Any:
    """A raw REST call through a service proxy (for what openstacksdk does not model), with
    an error status raised as openstacksdk's exception, as its own calls do."""
    response = getattr(proxy, method)(path, **kwargs)
    sdk_exceptions.raise_from_response(response)
    return response


# --- what the cloud said ---------------------------------------------------------------------


def error_text(body: str) -> str:
    """A service's explanation out of its error page (glance and others answer HTML, most
    answer JSON), on one line."""
    match = re.search(r"</h1>(.*?)(?:<br|</body>)", body, re.S)
    if match:
        text = match.group(1)
    else:
        try:
            document = json.loads(body)
        except ValueError:
            text = re.sub(r"<[^>]+>", " ", body)
        else:
            text = _json_error(document)
    return " ".join(html.unescape(text).split())[:500]


def _json_error(document: Any) -> str:
    """``{"message": ...}``, ``{"NeutronError": {"message": ...}}``, ``{"badRequest": {...}}``"""
    if isinstance(document, dict):
        if isinstance(document.get("message"), str):
            return str(document["message"])
        for value in document.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return json.dumps(document)


def api_message(exc: BaseException) -> str:
    """The one way an error is put into words: the cloud's own, after its HTTP status, without
    the SDK's request dump; or the exception's type and text."""
    status = status_of(exc) if isinstance(exc, sdk_exceptions.HttpException) else None
    if isinstance(exc, ksa_exceptions.HttpError):
        status = exc.http_status
    details = getattr(exc, "details", None)
    text = str(details or getattr(exc, "message", None) or exc).strip()
    if "<" in text and ">" in text:
        text = error_text(text)
    first = text.splitlines()[0] if text else type(exc).__name__
    if status is not None:
        return f"HTTP {status}: {first}"
    if isinstance(exc, RetriesExhausted | StackferryError):
        return first
    return f"{type(exc).__name__}: {first}"

"""The one retry policy: what is transient, how long it waits, where it stops; and the
transport that puts it under every request of a connection (against a loopback server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
from keystoneauth1 import exceptions as ksa_exceptions
from keystoneauth1.session import Session
from openstack import exceptions as sdk_exceptions

from stackferry.cloud.connection import api_message, harden
from stackferry.cloud.retry import (
    RetriesExhausted,
    RetryPolicy,
    TransientError,
    is_transient,
    retry_after,
)

FAST = RetryPolicy(attempts=4, budget=30, base_delay=0.01, max_delay=0.02)


class _Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.headers = status, headers or {}


def http_error(status: int, headers: dict[str, str] | None = None) -> Exception:
    return sdk_exceptions.HttpException(
        message=f"HTTP {status}", response=cast(Any, _Response(status, headers))
    )


@pytest.mark.parametrize(
    ("failure", "transient"),
    [
        (http_error(429), True),
        (http_error(500), True),
        (http_error(502), True),
        (http_error(503), True),
        (http_error(504), True),
        (http_error(400), False),
        (http_error(401), False),
        (http_error(403), False),
        (http_error(404), False),
        (http_error(409), False),
        (ksa_exceptions.ConnectFailure("refused"), True),
        (ksa_exceptions.ConnectTimeout("slow"), True),
        (ksa_exceptions.http.ServiceUnavailable(), True),
        (ksa_exceptions.http.Unauthorized(), False),
        (TransientError("upload abandoned"), True),
        (RetriesExhausted("GET x", 3, 1.0, "HTTP 503"), False),
        (ValueError("bad"), False),
        (TimeoutError("a wait that gave up"), False),
    ],
)
def test_what_is_transient(failure: Exception, transient: bool) -> None:
    assert is_transient(failure) is transient


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({}) is None
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after({"Retry-After": "soon"}) is None


def test_delays_grow_with_jitter_within_bounds_and_honour_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    for retry, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        pauses = {policy.delay(retry) for _ in range(50)}
        assert all(ceiling / 2 <= p <= ceiling for p in pauses)
        assert len(pauses) > 1  # jittered, so parallel workers do not retry in lockstep
    assert policy.delay(1, asked=5.0) == 5.0


def test_run_retries_transient_failures_and_gives_up_at_the_bound() -> None:
    sleeps: list[float] = []
    calls = iter([http_error(503), ksa_exceptions.ConnectFailure("x"), "ok"])

    def call() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return str(value)

    assert FAST.run(call, "GET thing", sleep=sleeps.append) == "ok"
    assert len(sleeps) == 2

    def always() -> str:
        raise http_error(503, {"Retry-After": "0"})

    with pytest.raises(RetriesExhausted) as caught:
        FAST.run(always, "GET thing", sleep=lambda s: None)
    assert caught.value.attempts == FAST.attempts
    message = str(caught.value)
    assert "GET thing" in message and "HTTP 503" in message and "4 attempt" in message

    def refused() -> str:
        raise http_error(409)

    with pytest.raises(sdk_exceptions.HttpException):  # not transient: at once, no sleep
        FAST.run(refused, "POST thing", sleep=lambda s: pytest.fail("slept"))


def test_the_time_budget_bounds_retries_even_with_attempts_left() -> None:
    policy = RetryPolicy(attempts=100, budget=0.0, base_delay=0.01)
    with pytest.raises(RetriesExhausted):
        policy.run(lambda: (_ for _ in ()).throw(http_error(500)), "GET x", sleep=lambda s: None)


# --- the transport, against a loopback server --------------------------------------------


class Script:
    """What the loopback server answers, request by request, and what it received."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.seen: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            script.seen.append(f"{self.command} {self.path}")
            status, headers = script.answers.pop(0) if script.answers else (200, {})
            if status == 0:  # the answer is lost: the connection closes without one
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = b"{}"
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


class _Conn:
    def __init__(self) -> None:
        self.session = Session()


def test_transport_retries_reads_and_token_requests_but_not_other_writes(
    server: tuple[str, Script],
) -> None:
    url, script = server
    conn = _Conn()
    harden(cast(Any, conn), FAST)
    session = conn.session

    script.answers = [(503, {}), (502, {}), (200, {})]
    assert session.get(f"{url}/v2.0/networks", raise_exc=False).status_code == 200
    assert script.seen == ["GET /v2.0/networks"] * 3

    script.seen, script.answers = [], [(500, {}), (201, {})]
    assert session.post(f"{url}/v3/auth/tokens", json={}).status_code == 201
    assert script.seen == ["POST /v3/auth/tokens"] * 2

    # A POST answered 5xx may have been carried out: it is the operation's to look first.
    script.seen, script.answers = [], [(502, {}), (201, {})]
    assert session.post(f"{url}/v2.0/networks", json={}, raise_exc=False).status_code == 502
    assert script.seen == ["POST /v2.0/networks"]

    # 429 says it was not carried out: any request is sent again, after Retry-After.
    script.seen, script.answers = [], [(429, {"Retry-After": "0"}), (201, {})]
    assert session.post(f"{url}/v2.0/networks", json={}, raise_exc=False).status_code == 201
    assert script.seen == ["POST /v2.0/networks"] * 2

    # A stream (an upload) cannot be sent twice: left to the operation.
    script.seen, script.answers = [], [(429, {}), (204, {})]
    reply = session.put(f"{url}/v2/images/x/file", data=iter([b"abc"]), raise_exc=False)
    assert reply.status_code == 429 and len(script.seen) == 1


def test_transport_gives_up_with_the_call_and_last_status_named(
    server: tuple[str, Script],
) -> None:
    url, script = server
    conn = _Conn()
    harden(cast(Any, conn), FAST)
    script.answers = [(503, {})] * 10
    with pytest.raises(RetriesExhausted) as caught:
        conn.session.get(f"{url}/v2.0/ports", raise_exc=False)
    assert "GET 127.0.0.1" in str(caught.value) and "/v2.0/ports" in str(caught.value)
    assert "HTTP 503" in str(caught.value) and len(script.seen) == FAST.attempts


def test_transport_never_lets_keystoneauth_resend_a_post_whose_answer_was_lost(
    server: tuple[str, Script],
) -> None:
    """keystoneauth would send it again on its own (connect_retries): a second network."""
    url, script = server
    conn = _Conn()
    harden(cast(Any, conn), FAST)
    script.answers = [(0, {}), (201, {})]
    with pytest.raises(ksa_exceptions.ConnectFailure):
        conn.session.post(f"{url}/v2.0/networks", json={}, connect_retries=3)
    assert script.seen == ["POST /v2.0/networks"]

    script.seen, script.answers = [], [(0, {}), (200, {})]  # a read is simply asked again
    assert conn.session.get(f"{url}/v2.0/networks", connect_retries=3).status_code == 200
    assert script.seen == ["GET /v2.0/networks"] * 2


def test_api_message_is_the_clouds_words_after_the_status() -> None:
    exc = sdk_exceptions.HttpException(message="x", details="Quota exceeded for network")
    exc.status_code = 409
    assert api_message(exc) == "HTTP 409: Quota exceeded for network"
    assert api_message(ValueError("bad value")) == "ValueError: bad value"
    gave_up = RetriesExhausted("GET x", 3, 2.0, "HTTP 503")
    assert api_message(gave_up) == str(gave_up)


def test_transport_switches_off_keystoneauths_own_status_retries(
    server: tuple[str, Script],
) -> None:
    """openstacksdk asks keystoneauth to resend every glance call answered 503, POSTs and
    uploads included: a second image, or a spent stream sent again."""
    url, script = server
    conn = _Conn()
    harden(cast(Any, conn), FAST)
    script.answers = [(503, {}), (201, {})]
    reply = conn.session.post(f"{url}/v2/images", json={}, raise_exc=False, status_code_retries=5)
    assert reply.status_code == 503 and script.seen == ["POST /v2/images"]

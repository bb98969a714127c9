"""What every command shares: exit codes, and turning errors into a message and an exit code.

No traceback reaches the operator for anything the operator or a cloud can cause: input
problems (files, options, credentials, a cloud that cannot be reached) exit 2 before
anything is written; a migration that did not succeed exits 1. ``--debug`` (or
``STACKFERRY_DEBUG=1``) shows the traceback and every HTTP call, for a bug report.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import openstack
from openstack import exceptions as sdk_exceptions
from rich.text import Text

from stackferry.cli import render
from stackferry.cloud.connection import api_message
from stackferry.cloud.retry import RetriesExhausted, status_of
from stackferry.errors import StackferryError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED = 1  # something did not succeed, or verify found differences
EXIT_USAGE = 2  # bad input: nothing was attempted
EXIT_INTERRUPTED = 130

ADMIN_HINT = "stackferry needs admin credentials on both clouds (or a policy that allows this call)"


def debugging() -> bool:
    return os.environ.get("STACKFERRY_DEBUG", "") not in ("", "0")


def enable_debug() -> None:
    """Tracebacks and HTTP calls (keystoneauth masks tokens and never logs token requests)."""
    os.environ["STACKFERRY_DEBUG"] = "1"
    openstack.enable_logging(debug=True, http_debug=True, stream=sys.stderr)
    logging.getLogger("stackferry").setLevel(logging.DEBUG)


def fail(message: str, code: int) -> None:
    render.err_console.print(Text.assemble(("error: ", "red"), message), highlight=False)
    sys.exit(code)


def request_of(exc: sdk_exceptions.HttpException) -> str:
    """`` GET http://...`` of the request an error answered, when known."""
    return f" {exc.method!s} {exc.url!s}" if exc.url else ""


def explain(exc: BaseException) -> tuple[str, int]:
    """The message and exit code for an error that reached the top of a command."""
    if isinstance(exc, StackferryError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, RetriesExhausted):
        return str(exc), EXIT_FAILED
    if isinstance(exc, sdk_exceptions.HttpException) and status_of(exc) in (401, 403):
        return f"the cloud refused{request_of(exc)}: {api_message(exc)}. {ADMIN_HINT}", EXIT_USAGE
    if isinstance(exc, sdk_exceptions.HttpException):
        return f"the cloud answered{request_of(exc)}: {api_message(exc)}", EXIT_FAILED
    if isinstance(exc, sqlite3.Error):
        return f"the journal cannot be used: {exc}", EXIT_USAGE
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc} (on this machine)", EXIT_USAGE
    return (
        f"unexpected {type(exc).__name__}: {exc}. This is a bug in stackferry: run the same "
        "command with --debug and report what it prints",
        EXIT_FAILED,
    )


def handles_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            if debugging():
                raise
            fail("interrupted: re-run the same command to continue where it stopped", 130)
        except click.ClickException:
            raise  # a usage error: click prints it with the command's usage, exit 2
        except Exception as exc:
            if debugging():
                raise
            message, code = explain(exc)
            fail(message, code)

    return wrapper  # type: ignore[return-value]

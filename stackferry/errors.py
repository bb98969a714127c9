"""Errors that reach the operator: each names its cause and what to do about it."""

from __future__ import annotations


class StackferryError(Exception):
    """An error the operator can act on; printed without a traceback, exit code 2."""


class WorkdirError(StackferryError):
    """A workdir file is missing, malformed, of an unknown format version, or invalid."""


class CloudError(StackferryError):
    """A cloud cannot be reached or refuses our credentials."""


class LocalError(StackferryError):
    """Something on this machine failed (a full disk, a read-only folder): named as local,
    never retried as if the cloud had been briefly unable."""

"""Errors a user can fix. The CLI turns them into one short line and exit code 2."""
from __future__ import annotations


class LlemError(Exception):
    """Base class for errors llem reports without a traceback."""

    exit_code = 1


class ConfigError(LlemError):
    """Bad input: names the field, the value and what is allowed."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None, value=None, allowed=None):
        super().__init__(message)
        self.field = field
        self.value = value
        self.allowed = allowed


class BackendUnavailableError(LlemError):
    """A backend that cannot run in any environment llem knows about."""

    exit_code = 2

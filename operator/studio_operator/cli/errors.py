"""The plugin's errors and exit codes: 1 usage or not found, 2 API (or connection) errors."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_API = 2


class CliError(Exception):
    """A failure with a message for the user and an exit code."""

    code = EXIT_USAGE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class UsageError(CliError):
    code = EXIT_USAGE


class NotFound(CliError):
    code = EXIT_USAGE


class ApiFailure(CliError):
    code = EXIT_API

"""The plugin's errors and exit codes: like kubectl, 1 for every error (usage, not found, API,
connection, a studio that stalls while `create --wait` waits)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_API = 1


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

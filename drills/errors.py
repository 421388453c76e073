"""Errors the command line turns into exit codes."""


class BadInput(Exception):
    """Input or environment the user must fix (exit 2). The message is one line naming the fix."""


class RestoreFailed(Exception):
    """The backup could not be restored cleanly: a failed drill (exit 1), recorded."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = errors or []

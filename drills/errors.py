"""Errors the command line turns into exit codes."""


class BadInput(Exception):
    """Input or environment the user must fix (exit 2). The message is one line naming the fix."""


class EnvironmentFault(BadInput):
    """The machine gave out once the drill had started (disk full, no memory, a tool missing).

    Exit 2 like bad input, but a drill that got this far records it as Result.ERROR: the
    backup was not judged, so it must not read as a failed backup.
    """

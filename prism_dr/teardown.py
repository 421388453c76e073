"""Whether the process must be torn down object by object when the command ends.

A command that leaves nothing to clean up (no files, child processes or connections) calls
`skip()`; the console script (prism_dr.app.cli) then ends the process at once. `plan` loads the
provider SDKs' ~8,000 generated classes, and freeing them one by one at exit took 0.9 s of a
3 s command (bench/README.md).
"""

from __future__ import annotations

_needed = True


def skip() -> None:
    global _needed
    _needed = False


def needed() -> bool:
    return _needed

"""Errors of the runbook commands, in the command line's one hierarchy.

Refusals that leave nothing behind are `drills.errors.BadInput` (exit 2): a database that
does not exist or is in the wrong state, a point outside the restorable window, an AWS
account the credentials cannot reach. An operation that started and did not finish is
`OperationFailed` (exit 1): a snapshot stuck in `creating`, a recovery whose `/ready` never
answered 200. `prism_dr/app.py` maps both; the message is one line naming what to do.
"""

from __future__ import annotations

from drills.errors import BadInput


class NotFound(BadInput):
    """The database or snapshot named does not exist (in this account and region)."""


class WrongState(BadInput):
    """The resource exists but its state refuses the operation; nothing was created."""


class OutsideWindow(BadInput):
    """The recovery point lies outside the restorable window; nothing was created."""


class OperationFailed(Exception):
    """Something was started and did not reach its goal (exit 1). One line, no secrets."""

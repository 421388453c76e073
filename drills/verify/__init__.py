"""Restore verification: checks over a restored database's DSN (and an optional API).

Knows nothing of AWS, Pulumi or the command line: it takes a target, a manifest and a tier,
and returns one CheckResult per check.

The names below load their module on first use (PEP 562), so a caller that needs only the
manifest (`prism-dr plan` reads the RPO/RTO targets) does not load psycopg.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drills.verify.manifest import Manifest, load_manifest
    from drills.verify.model import CheckResult, Status, Tier
    from drills.verify.suite import planned_checks, verify
    from drills.verify.target import VerifyTarget, achieved_rpo

_HOMES = {
    "Manifest": "manifest",
    "load_manifest": "manifest",
    "CheckResult": "model",
    "Status": "model",
    "Tier": "model",
    "planned_checks": "suite",
    "verify": "suite",
    "VerifyTarget": "target",
    "achieved_rpo": "target",
}

__all__ = [
    "CheckResult",
    "Manifest",
    "Status",
    "Tier",
    "VerifyTarget",
    "achieved_rpo",
    "load_manifest",
    "planned_checks",
    "verify",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value

"""Restore verification: checks over a restored database's DSN (and an optional API).

Knows nothing of AWS, Pulumi or the command line: it takes a target, a manifest and a tier,
and returns one CheckResult per check.
"""

from drills.verify.manifest import Manifest, load_manifest
from drills.verify.model import CheckResult, Status, Tier
from drills.verify.suite import planned_checks, verify
from drills.verify.target import VerifyTarget, achieved_rpo

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

"""Entry point of the policy pack: Pulumi runs this file (runpy) from the pack's directory.

Constructing PolicyPack starts the analyzer server and never returns: nothing imports this
module, tests included (they use policy.pack.policies()).
"""

import sys
from pathlib import Path

# Pulumi puts this directory on sys.path; the modules import each other as `policy.*`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.pack import PACK_NAME, policies

PolicyPack(
    name=PACK_NAME,
    policies=policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Project Prism: backup, restore and DR guardrails (retention, PITR, safe "
    "deletion, replication, host exposure, secrets, drill hygiene)",
)

"""parliament (pinned in the lock) over IAM documents: AWS's IAM definitions shipped with it say
whether every action exists and every resource ARN fits its action.

parliament 1.6.4 finds its data files with `pkg_resources`, which setuptools 81+ no longer
ships; this stand-in answers its one call (resource_filename) from importlib.resources."""

from __future__ import annotations

import json
import sys
import types
from importlib import resources
from typing import Any

if "pkg_resources" not in sys.modules:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(  # type: ignore[attr-defined]
            resources.files(package).joinpath(name)
        )
        sys.modules["pkg_resources"] = shim

from parliament import analyze_policy_string


def findings(document: dict[str, Any]) -> list[Any]:
    policy = analyze_policy_string(json.dumps(document), include_community_auditors=False)
    return list(policy.findings)

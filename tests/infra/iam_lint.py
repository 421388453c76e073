"""parliament (pinned in the lock) over IAM documents: AWS's IAM definitions shipped with it say
whether every action exists and every resource ARN fits its action.

parliament 1.6.4 finds its data files with `pkg_resources`, which the locked setuptools (84)
no longer ships; a stand-in answers its one call (resource_filename) from importlib.resources
while parliament is imported."""

from __future__ import annotations

import json
import sys
import types
from importlib import resources
from typing import Any


def _import_parliament() -> Any:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(  # type: ignore[attr-defined]
            resources.files(package).joinpath(name)
        )
        sys.modules["pkg_resources"] = shim
        try:
            import parliament
        finally:
            # parliament read its data files at import; others (pytest's monkeypatch) take a
            # pkg_resources in sys.modules for the real one.
            del sys.modules["pkg_resources"]
        return parliament
    import parliament

    return parliament


analyze_policy_string = _import_parliament().analyze_policy_string


def findings(document: dict[str, Any]) -> list[Any]:
    policy = analyze_policy_string(json.dumps(document), include_community_auditors=False)
    return list(policy.findings)

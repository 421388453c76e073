"""infra/slim_import.py: a slimmed provider package gives the objects an eager import gives,
loads only the modules asked for, and falls back to the whole package when its naming rule
misses. The plan it produces is byte-for-byte the plan of an eager import."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from infra import slim_import
from infra.offline import PROJECT_DIR
from prism_dr import plan_cmd

# A package in the shape pulumi-language-python generates (pulumi_cloudflare, pulumi_aws.ec2).
_INIT = """\
# coding=utf-8
import builtins as _builtins
from . import _utilities
import typing
# Export this package's modules as members:
from .alpha_resource import *
from .get_thing import *
from .odd_module import *
from ._inputs import *
from . import outputs

REGISTERED = _utilities.register("fakeprov")
"""
_MODULES = {
    "_utilities.py": "CALLS = []\ndef register(name):\n    CALLS.append(name)\n    return name\n",
    "alpha_resource.py": """\
        from . import outputs
        from ._inputs import *
        __all__ = ['AlphaResourceArgs', 'AlphaResource']
        class AlphaResourceArgs: pass
        class AlphaResource: pass
        class _AlphaResourceState: pass
        """,
    "get_thing.py": """\
        from . import outputs
        __all__ = ['GetThingResult', 'AwaitableGetThingResult', 'get_thing', 'get_thing_output']
        class GetThingResult: pass
        class AwaitableGetThingResult(GetThingResult): pass
        def get_thing(): return 'thing'
        def get_thing_output(): return 'thing output'
        """,
    "odd_module.py": "__all__ = ['NamedOtherwise']\nclass NamedOtherwise: pass\n",
    "_inputs.py": "__all__ = ['NestedArgs', 'NestedArgsDict']\nclass NestedArgs: pass\n"
    "class NestedArgsDict(dict): pass\n",
    # outputs.py imports itself, as the generated one does.
    "outputs.py": "from . import outputs\n__all__ = ['NestedOutput']\nclass NestedOutput: pass\n",
}


@pytest.fixture
def fakeprov(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "fakeprov"
    package.mkdir()
    (package / "__init__.py").write_text(_INIT)
    for name, text in _MODULES.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = slim_import.Finder(roots=("fakeprov",), children_of=())
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    yield lambda: importlib.import_module("fakeprov")
    for name in [m for m in sys.modules if m == "fakeprov" or m.startswith("fakeprov.")]:
        del sys.modules[name]


def _loaded() -> set[str]:
    return {m.removeprefix("fakeprov.") for m in sys.modules if m.startswith("fakeprov.")}


def test_import_runs_everything_but_the_star_imports(fakeprov) -> None:
    pkg = fakeprov()
    assert pkg.REGISTERED == "fakeprov"  # the rest of __init__ ran
    assert _loaded() == {"_utilities"}


def test_a_resource_loads_its_own_module_and_what_it_imports(fakeprov) -> None:
    pkg = fakeprov()
    resource = pkg.AlphaResource
    assert resource is sys.modules["fakeprov.alpha_resource"].AlphaResource
    assert pkg.AlphaResourceArgs is sys.modules["fakeprov.alpha_resource"].AlphaResourceArgs
    assert _loaded() == {"_utilities", "alpha_resource", "_inputs", "outputs"}


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("get_thing", "get_thing"),
        ("get_thing_output", "get_thing"),
        ("GetThingResult", "get_thing"),
        ("AwaitableGetThingResult", "get_thing"),
        ("NestedArgs", "_inputs"),
        ("NestedArgsDict", "_inputs"),
        ("NestedOutput", "outputs"),
    ],
)
def test_names_found_where_the_generator_puts_them(fakeprov, name: str, home: str) -> None:
    pkg = fakeprov()
    assert getattr(pkg, name) is getattr(sys.modules[f"fakeprov.{home}"], name)
    assert "odd_module" not in _loaded()


def test_a_name_off_the_rule_loads_the_whole_package(fakeprov) -> None:
    pkg = fakeprov()
    assert pkg.NamedOtherwise is sys.modules["fakeprov.odd_module"].NamedOtherwise
    assert {"alpha_resource", "get_thing", "odd_module", "_inputs", "outputs"} <= _loaded()
    assert pkg.AlphaResource is sys.modules["fakeprov.alpha_resource"].AlphaResource


def test_an_unknown_name_is_an_attribute_error(fakeprov) -> None:
    pkg = fakeprov()
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pkg.Nope  # noqa: B018
    assert not hasattr(pkg, "_AlphaResourceState")  # private names are not exported


def test_star_import_of_the_package_gives_every_public_name(fakeprov) -> None:
    fakeprov()
    namespace: dict = {}
    exec("from fakeprov import *", namespace)
    assert {"AlphaResource", "NamedOtherwise", "get_thing_output", "NestedArgs"} <= set(namespace)


def test_plain_modules_and_other_packages_are_untouched(fakeprov) -> None:
    finder = slim_import.Finder(roots=("fakeprov",), children_of=("pulumi_aws",))
    assert finder.find_spec("json", None) is None
    assert finder.find_spec("pulumi_aws", None) is None  # only its children
    assert finder.find_spec("pulumi_aws._utilities", None) is None


_SLIM_PLAN = """\
import sys
from prism_dr.app import main
try:
    main(["plan", "--stack", "prod", "--json"])
except SystemExit as exc:
    assert not exc.code, exc.code
print(sum(m.startswith("pulumi_cloudflare") for m in sys.modules), file=sys.stderr)
"""


def test_slim_plan_is_the_eager_plan() -> None:
    env = {k: v for k, v in os.environ.items() if k != plan_cmd.EAGER_IMPORTS_ENV}
    done = subprocess.run(
        [sys.executable, "-c", _SLIM_PLAN],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    slim_modules = int(done.stderr.strip().splitlines()[-1])
    # This process imports the SDKs whole (tests/conftest.py): the eager plan, in process.
    app = typer.Typer()
    app.callback()(lambda: None)
    plan_cmd.register(app)
    eager = CliRunner().invoke(app, ["plan", "--stack", "prod", "--json"])
    assert eager.exit_code == 0, eager.output
    assert json.loads(done.stdout)["resources"], "the plan lists resources"
    assert done.stdout == eager.stdout
    assert sum(m.startswith("pulumi_cloudflare") for m in sys.modules) > 700  # every module
    assert slim_modules < 20  # the tunnel's four resources and their types

"""`make mutate`'s targets stay true to the tree: a module or test file renamed or moved would
otherwise leave a target measuring nothing (mutmut finds no mutant, or no test to run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.mutate import ROOT, TARGETS, Target, markdown_table


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_each_target_names_a_module_and_tests_that_exist(target: Target) -> None:
    assert (ROOT / target.path).is_file()
    for tests in target.tests:
        assert (ROOT / tests).exists(), tests


@pytest.mark.parametrize("target", [t for t in TARGETS if t.functions], ids=lambda t: t.name)
def test_each_named_function_is_in_its_module(target: Target) -> None:
    # mutmut names a function's mutants x_<name>, a method's xǁ<Class>ǁ<name>.
    tree = ast.parse(Path(ROOT / target.path).read_text())
    defined = {f"x_{n.name}" for n in tree.body if isinstance(n, ast.FunctionDef)}
    defined |= {f"xǁ{c.name}ǁ{m.name}" for c in tree.body if isinstance(c, ast.ClassDef)
                for m in c.body if isinstance(m, ast.FunctionDef)}
    assert set(target.functions) <= defined


def test_the_table_shows_timeouts_apart_and_every_survivor_counted() -> None:
    found = {"t": {"target": "t", "path": "p.py", "mutants": 10, "killed": 9,
                   "counts": {"killed": 8, "timeout": 1, "survived": 1},
                   "not_killed": ["p.x_f__mutmut_3"], "kill_rate": 90.0, "commit": "abc"}}
    last = markdown_table(found).splitlines()[-1]
    assert last == "| t | `p.py` | 10 | 9 | 1 | 1 | 90.0 % | abc |"

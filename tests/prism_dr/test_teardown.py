"""prism_dr.teardown: a process needs its normal teardown until a command says it holds
nothing to clean up (prism_dr.app.cli then ends the process at once)."""

from __future__ import annotations

import pytest

from prism_dr import teardown


def test_teardown_is_needed_until_a_command_skips_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(teardown, "_needed", True)  # as a fresh process starts
    assert teardown.needed() is True
    teardown.skip()
    assert teardown.needed() is False  # a bool, as declared, not merely falsy

"""Run `prism-dr` in this process through its real entry point (exit codes and error lines
included), capturing stdout and stderr."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from prism_dr.app import main


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    captured = capsys.readouterr()
    code = exited.value.code
    return Run(code if isinstance(code, int) else 0, captured.out, captured.err)

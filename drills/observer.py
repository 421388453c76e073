"""What a running drill, local or AWS, tells the command line: phases and checks as they end."""

from __future__ import annotations

from typing import Protocol

from drills.verify.model import CheckResult


class DrillObserver(Protocol):
    """What the command line shows while a drill runs."""

    def phase_started(self, name: str) -> None: ...
    def phase_finished(self, name: str, seconds: float) -> None: ...
    def check_finished(self, result: CheckResult) -> None: ...


class SilentObserver:
    def phase_started(self, name: str) -> None:
        pass

    def phase_finished(self, name: str, seconds: float) -> None:
        pass

    def check_finished(self, result: CheckResult) -> None:
        pass

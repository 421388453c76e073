"""The drill's live view on stderr, shared by the local and the AWS drill commands."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from drills.verify.model import CheckResult, Status
from recovery.redact import mask_dsn

STATUS_STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.WARN: "yellow",
    Status.SKIP: "dim",
}


class ConsoleObserver:
    """Phase and check lines on stderr, so stdout stays clean for --json.

    On a terminal they show live in a transient display; they are printed for good only once
    the drill has an outcome (`flush`). An exit-2 error thus stays the only line on stderr.
    """

    def __init__(self, console: Console):
        self.console = console
        self.lines: list[str] = []
        self._current: str | None = None
        self._live: Live | None = None

    def phase_started(self, name: str) -> None:
        self._current = name
        self._refresh()

    def phase_finished(self, name: str, seconds: float) -> None:
        self._current = None
        self._add(f"[bold]{escape(name)}[/] done in {seconds:.1f} s")

    def check_finished(self, result: CheckResult) -> None:
        # Details go in the closing table; a live line carries one only when it needs reading.
        style = STATUS_STYLE[result.status]
        detail = result.detail if result.status in (Status.FAIL, Status.WARN) else ""
        self._add(
            f"  [{style}]{result.status.value:>4}[/] {escape(result.name):<14} "
            f"{result.seconds:6.2f} s  {escape(mask_dsn(detail))}".rstrip()
        )

    def flush(self) -> None:
        """Stop the live display and print every line: the drill has an outcome."""
        self.close()
        for line in self.lines:
            self.console.print(line, highlight=False, soft_wrap=True)
        self.lines.clear()

    def close(self) -> None:
        """Stop the live display, which erases it; the lines stay unprinted."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _add(self, line: str) -> None:
        self.lines.append(line)
        self._refresh()

    def _refresh(self) -> None:
        if not self.console.is_terminal:
            return
        parts: list = [Text.from_markup(line) for line in self.lines[-20:]]
        if self._current:
            parts.append(Spinner("dots", Text.from_markup(f"[bold]{escape(self._current)}[/]…")))
        if self._live is None:
            self._live = Live(Group(*parts), console=self.console, transient=True)
            self._live.start()
        else:
            self._live.update(Group(*parts))

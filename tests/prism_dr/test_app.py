"""prism_dr.app.cli: the console entry ends the process at once only when the command said it
holds nothing to clean up, and keeps the exit code and every line written either way."""

from __future__ import annotations

import pytest

from prism_dr import app, teardown


class _Ended(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(teardown, "_needed", True)

    def _exit(code: int) -> None:
        raise _Ended(code)

    monkeypatch.setattr(app.os, "_exit", _exit)


def _command(code: object, *, skip: bool):
    def main() -> None:
        if skip:
            teardown.skip()
        print("the whole report")
        raise SystemExit(code)

    return main


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (1, 1), (2, 2), (None, 0)])
def test_a_command_without_teardown_ends_at_once_with_its_code(
    ended, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], code, expected
) -> None:
    monkeypatch.setattr(app, "main", _command(code, skip=True))
    with pytest.raises(_Ended) as info:
        app.cli()
    assert info.value.code == expected
    assert capsys.readouterr().out == "the whole report\n"


def test_a_message_as_exit_code_is_printed_and_exit_1(
    ended, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(app, "main", _command("went wrong", skip=True))
    with pytest.raises(_Ended) as info:
        app.cli()
    assert info.value.code == 1
    assert capsys.readouterr().err == "went wrong\n"


def test_other_commands_exit_normally(ended, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "main", _command(1, skip=False))
    with pytest.raises(SystemExit) as info:  # interpreter teardown: finally blocks, atexit
        app.cli()
    assert info.value.code == 1

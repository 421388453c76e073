"""`prism-dr drill reap`: the local reaper, and the hand-over to the AWS one."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest

from drills.local import owner
from prism_dr.app import main
from prism_dr.reap_cmd import parse_duration


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out, err = capsys.readouterr()
    return caught.value.code, out, err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6h", timedelta(hours=6)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
        (" 1W ", timedelta(weeks=1)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv(owner.STATE_DIR_ENV, str(tmp_path / "state"))
    return tmp_path


def test_local_with_nothing_to_reap(isolated, capsys):
    code, out, err = run(["drill", "reap", "--local"], capsys)
    assert (code, err) == (0, "")
    assert "no local drill leftovers found" in out


def test_local_json_lists_what_would_be_removed(isolated, capsys):
    # A workdir whose owner is long gone (another boot): what a power cut leaves.
    directory = isolated / "prism-drill-abc"
    directory.mkdir()
    gone = owner.Owner(pid=999_999, started="1", boot_id="an-earlier-boot")
    (directory / owner.MARKER_NAME).write_text(json.dumps({
        "tool": owner.TOOL, "kind": "workdir", "owner_tag": gone.tag,
        "created_at": "2026-01-01T00:00:00+00:00", "path": str(directory),
    }))

    code, out, _ = run(["drill", "reap", "--local", "--json"], capsys)
    assert code == 0
    (item,) = [i for i in json.loads(out) if i["path"] == str(directory)]
    assert (item["action"], item["owner_pid"]) == ("would remove", 999_999)
    assert directory.is_dir()

    code, out, _ = run(["drill", "reap", "--local", "--yes"], capsys)
    assert code == 0 and "removed" in out
    assert not directory.exists()


def test_without_local_the_aws_reaper_runs_with_the_options(monkeypatch, capsys):
    calls = []

    def fake_run(**kwargs):
        calls.append(kwargs)
        return 1

    import drills.aws.reaper

    monkeypatch.setattr(drills.aws.reaper, "run", fake_run)
    code, _, _ = run(
        ["drill", "reap", "--older-than", "2d", "--region", "eu-west-1", "--region",
         "eu-central-1", "--skip-stack", "drill-20260101", "--yes", "--json"],
        capsys,
    )
    assert code == 1  # the AWS reaper's exit code
    assert calls == [{
        "older_than": timedelta(days=2), "yes": True, "regions": ["eu-west-1", "eu-central-1"],
        "skip_stacks": ["drill-20260101"], "as_json": True,
    }]


def test_an_aws_reaper_missing_a_dependency_is_one_line_exit_2(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def without_boto3(name, *args, **kwargs):
        if name == "drills.aws.reaper":
            raise ModuleNotFoundError("No module named 'boto3'", name="boto3")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "drills.aws.reaper", raising=False)
    monkeypatch.delattr("drills.aws.reaper", raising=False)  # so the import runs again
    monkeypatch.setattr(builtins, "__import__", without_boto3)
    code, _, err = run(["drill", "reap"], capsys)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "'boto3'" in line and "--local" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run", "drill-1; rm -rf /"], "--run 'drill-1; rm -rf /' is not a drill run id"),
        (["--run", "20261202-011500", "--local"], "--run apply to AWS drills"),
        (["--run", "20261202-011500", "--skip-stack", "drill-x"], "--skip-stack does not go"),
    ],
)
def test_reap_run_bad_input_is_one_line_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    code, out, err = run(["drill", "reap", *argv], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err

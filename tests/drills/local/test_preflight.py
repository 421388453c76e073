"""Checks before the local drill creates anything: a TMPDIR the postgres OS user cannot
traverse (the drill run as root) is refused with one line, exit 2, and no record."""

from __future__ import annotations

import os
import tempfile

import pytest

from prism_dr.app import main


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to postgres")
def test_a_tmpdir_the_postgres_user_cannot_traverse_is_refused_before_anything(
    sample_dump, tmp_path, monkeypatch, capsys
):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    records = tmp_path / "records"
    with pytest.raises(SystemExit) as caught:
        main(
            ["drill", "--backup", str(sample_dump), "--tier", "quick", "--record-dir", str(records)]
        )
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.strip().splitlines() == [
        f"prism-dr: error: TMPDIR {private}: the postgres OS user, which runs the ephemeral "
        "cluster when the drill runs as root, cannot traverse it; set TMPDIR to a directory "
        "every user can traverse (e.g. /tmp)"
    ]
    assert not records.exists() or not any(records.iterdir())  # no error record
    assert list(private.iterdir()) == []  # no cluster, no work dir

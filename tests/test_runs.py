"""Run folders: atomic writes, status, refusing to clobber, and the offline Hub push."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from audioclf import runs


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    runs.atomic_write_json(target, {"accuracy": 0.5})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        runs.atomic_write_json(target, {"accuracy": 0.9})
    assert json.loads(target.read_text()) == {"accuracy": 0.5}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # normal permissions, not mkstemp's


def test_status_round_trip_and_require_finished(tmp_path: Path) -> None:
    runs.write_status(tmp_path, "running", started="now")
    with pytest.raises(runs.RunError, match="did not complete"):
        runs.require_finished(tmp_path)
    runs.write_status(tmp_path, "complete", accuracy=1.0)
    status = runs.read_status(tmp_path)
    assert status["status"] == "complete" and status["started"] == "now" and status["accuracy"] == 1.0
    runs.require_finished(tmp_path)
    runs.require_finished(tmp_path / "plain-model-folder")  # no run.json: a plain model folder is fine


def test_prepare_run_dir_refuses_existing_content_unless_overwrite(tmp_path: Path) -> None:
    run = tmp_path / "run"
    runs.prepare_run_dir(run, overwrite=False)
    runs.write_status(run, "complete")
    with pytest.raises(runs.RunError, match="a complete run; pass --overwrite"):
        runs.prepare_run_dir(run, overwrite=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(runs.RunError, match="not an audioclf run"):
        runs.prepare_run_dir(tmp_path / "other", overwrite=False)
    runs.prepare_run_dir(run, overwrite=True)
    assert list(run.iterdir()) == []


def test_a_run_that_failed_before_training_is_replaced_without_overwrite(tmp_path: Path) -> None:
    run = runs.prepare_run_dir(tmp_path / "run", overwrite=False)
    (run / runs.CONFIG_FILE).write_text("seed: 1\n")
    runs.write_status(run, "failed", error="TooManyBadClips: ...")
    runs.prepare_run_dir(run, overwrite=False)  # only its status and config: nothing to lose
    assert list(run.iterdir()) == []
    runs.write_status(run, "failed", error="KeyboardInterrupt")
    (run / runs.CHECKPOINT_DIR).mkdir()  # it had started training: keep it unless asked
    with pytest.raises(runs.RunError, match="a failed run; pass --overwrite"):
        runs.prepare_run_dir(run, overwrite=False)


def test_push_to_hub_offline_says_so_and_keeps_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert runs.push_run_to_hub(tmp_path, "someone/audioclf-test-run") is None
    assert "saved locally" in caplog.text and (tmp_path / "config.json").is_file()

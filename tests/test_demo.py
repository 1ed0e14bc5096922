"""The offline demo end to end, small: synthesized intents, a tiny model, held-out voices."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_models import save_tiny

from audioclf.demo import DEMO_MODEL, demo_config, run_demo
from audioclf.presets import available, preset_path


def test_demo_runs_end_to_end_and_prints_samples(tmp_path: Path, capsys) -> None:
    model = save_tiny("whisper", tmp_path / "tiny")
    run = run_demo(tmp_path / "demo", model=str(model), voices=4)
    out = capsys.readouterr().out
    assert "minutes on a 2-core CPU" in out and "sample predictions on unseen voices" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["per_class"]) == 14 and metrics["num_eval_clips"] == 14 * 4  # one of 4 voices held out
    assert (run / "confusion_matrix.png").is_file() and (run / "README.md").is_file()


def test_demo_defaults_to_the_shipped_from_scratch_preset(tmp_path: Path) -> None:
    assert DEMO_MODEL in available() and (preset_path(DEMO_MODEL) / "preprocessor_config.json").is_file()
    config = demo_config(tmp_path / "run", tmp_path / "data", DEMO_MODEL)
    assert config["group_by"] == "group" and config["model"] == DEMO_MODEL

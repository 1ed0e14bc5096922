"""--report-to tensorboard: the probe stage, every fine-tuning epoch and the test metrics in one run's event files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_tone_folder

import audioclf
from audioclf.config import ConfigError

pytest.importorskip("tensorboard", reason="TensorBoard logging needs the tensorboard package")


def _scalars(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[float]] = {}
    for events in sorted({p.parent for p in folder.rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend(e.value for e in accumulator.Scalars(tag))
    return found


def test_tensorboard_gets_the_probe_the_epochs_and_the_test_metrics(tmp_path: Path, tiny_wav2vec2: Path) -> None:
    data = write_tone_folder(tmp_path / "data", per_label=6)
    run = audioclf.train(data=str(data), model=str(tiny_wav2vec2), output=str(tmp_path / "run"), epochs=2,
                         batch_size=4, gradient_accumulation_steps=1, strategy="finetune", probe_first=True,
                         report_to="tensorboard", device="cpu")
    scalars = _scalars(run / "logs")
    metrics = __import__("json").loads((run / "metrics.json").read_text())
    assert scalars["test/accuracy"] == [pytest.approx(metrics["accuracy"])]
    assert scalars["test/macro_f1"] == [pytest.approx(metrics["macro_f1"])]
    assert len(scalars["eval/accuracy"]) == 2  # one per fine-tuning epoch
    assert len(scalars["train/probe_train_accuracy"]) == 1 and "train/probe_validation_accuracy" in scalars


def test_unknown_tracker_is_refused() -> None:
    with pytest.raises(ConfigError, match="report_to='tensorbord' is not allowed"):
        audioclf.train(data="x", report_to="tensorbord")

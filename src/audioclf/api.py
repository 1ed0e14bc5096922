"""The public Python API: `train`, `resume`, `evaluate`, `export`, and the helpers the CLI shares with it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from audioclf.config import TrainConfig, load_config

log = logging.getLogger("audioclf")


def train(config: TrainConfig | dict[str, Any] | str | Path | None = None, **overrides: Any) -> Path:
    """Fine-tune a classifier and return its finished run folder.

    >>> run = audioclf.train({"data": "clips/", "model": "facebook/wav2vec2-base"}, epochs=3)  # doctest: +SKIP
    """
    from audioclf.training.trainer import train as run_training

    return run_training(load_config(config, **overrides))


def resume(run_dir: str | Path) -> Path:
    """Continue an unfinished run (crashed, killed or interrupted) from its newest complete checkpoint, with
    the config saved in it; returns the finished run folder.

    >>> audioclf.resume("runs/minds")   # doctest: +SKIP
    """
    from audioclf.runs import CONFIG_FILE, reopen_run_dir
    from audioclf.training.trainer import train as run_training

    run_dir = reopen_run_dir(Path(run_dir))
    return run_training(load_config(run_dir / CONFIG_FILE, output=str(run_dir)), resume=True)


def evaluate(
    model: str | Path,
    data: str,
    data_config: str | None = None,
    data_split: str = "train",
    audio_column: str | None = None,
    label_column: str | None = None,
    output: str | Path | None = None,
    trust_remote_code: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Score a trained model on a data source (its test split if it has one, else every clip) and write
    metrics.json and confusion_matrix.png to `output` (default: MODEL/evaluation); the model runs on `device`."""
    from audioclf.evaluation import score_clips
    from audioclf.inference import Classifier
    from audioclf.sources import DataError, load_data
    from audioclf.training.dataset import decode_records

    clf = Classifier.load(model, trust_remote_code=trust_remote_code, device=device)
    loaded = load_data(data, data_config, data_split, audio_column, label_column)
    records = [r for r in loaded.records if r.split == "test"] or loaded.records
    label2id = {name: i for i, name in enumerate(clf.labels)}
    unknown = sorted({r.label for r in records} - set(label2id))
    if unknown:
        raise DataError(f"{loaded.description}: label(s) {', '.join(unknown)} are not among the model's labels "
                        f"({', '.join(clf.labels)})")
    clips = decode_records(records, label2id, clf.rate, clf.max_duration, "decoding", min_samples=clf.min_samples)
    for err in clips.bad:
        log.warning("skipping %s", err)
    out_dir = Path(output) if output else Path(model) / "evaluation"
    return score_clips(clf, clips, len(clips.bad), out_dir)


def export(model: str | Path, output: str | Path, format: str = "onnx", quantize: str | None = None,
           overwrite: bool = False, device: str = "auto") -> Path:
    """Export a trained model folder for fast CPU inference (traced on `device`); `Classifier.load(output)` runs it.

    >>> audioclf.export("runs/minds", "runs/minds-onnx", quantize="int8")   # doctest: +SKIP
    """
    from audioclf.inference.onnx import ExportError, export_onnx

    if format != "onnx":
        raise ExportError(f"unknown export format {format!r}; supported: onnx")
    return export_onnx(model, output, quantize, overwrite, device)

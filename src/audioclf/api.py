"""The public Python API: `train`, `evaluate`, and the helpers the CLI shares with it."""

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


def evaluate(
    model: str | Path,
    data: str,
    data_config: str | None = None,
    data_split: str = "train",
    audio_column: str | None = None,
    label_column: str | None = None,
    output: str | Path | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Score a trained model on a data source (its test split if it has one, else every clip) and write
    metrics.json and confusion_matrix.png to `output` (default: MODEL/evaluation)."""
    from audioclf.evaluation import score_clips
    from audioclf.inference import Classifier
    from audioclf.sources import DataError, load_data
    from audioclf.training.dataset import decode_records

    clf = Classifier.load(model, trust_remote_code=trust_remote_code)
    loaded = load_data(data, data_config, data_split, audio_column, label_column)
    records = [r for r in loaded.records if r.split == "test"] or loaded.records
    label2id = {name: i for i, name in enumerate(clf.labels)}
    unknown = sorted({r.label for r in records} - set(label2id))
    if unknown:
        raise DataError(f"{loaded.description}: label(s) {', '.join(unknown)} are not among the model's labels "
                        f"({', '.join(clf.labels)})")
    clips = decode_records(records, label2id, clf.rate, clf.max_duration, "decoding")
    for err in clips.bad:
        log.warning("skipping %s", err)
    out_dir = Path(output) if output else Path(model) / "evaluation"
    return score_clips(clf, clips, len(clips.bad), out_dir)

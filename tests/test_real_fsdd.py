"""Real check: fine-tune the real pretrained Whisper tiny.en on FSDD speakers george, jackson and lucas,
test on nicolas, whom it never heard (reads ../shared in place; skipped where it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FSDD, WHISPER_TINY_EN, needs_shared, write_manifest

import audioclf

pytestmark = pytest.mark.slow  # make test-all

TEST_SPEAKER = "nicolas"
# The README's two real-data recipes. `python bench/accuracy.py` measures them on every speaker and seed.
PROBE = dict(strategy="probe", batch_size=32, max_duration=1.0, seed=42)
LP_FT = dict(strategy="finetune", probe_first=True, epochs=5, batch_size=16, gradient_accumulation_steps=1,
             learning_rate=5e-5, head_learning_rate=5e-5, augment_speed=0.25, augment_trim="10:35",
             augment_noise_snr="10:30", augment_cut_end=0.6, average_weights=True, wise_ft=0.5, max_duration=1.0,
             seed=42)


def fsdd_manifest(path: Path) -> Path:
    rows = []
    for clip in sorted(FSDD.glob("*.wav")):
        digit, speaker, _ = clip.stem.split("_")
        rows.append({"path": str(clip), "label": digit, "group": speaker,
                     "split": "test" if speaker == TEST_SPEAKER else "train"})
    return write_manifest(path, rows)


@needs_shared
def test_probe_on_whisper_tiny_en_generalises_to_an_unheard_speaker(tmp_path: Path) -> None:
    run = audioclf.train(data=str(fsdd_manifest(tmp_path / "fsdd.csv")), model=str(WHISPER_TINY_EN),
                         output=str(tmp_path / "run"), **PROBE)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_eval_clips"] == 500 and metrics["num_skipped"] == 0
    # Seed 42 scores 0.908 on nicolas (0.904 in bench/accuracy.py's fold); the gate sits 3-4 points under it, a
    # margin that float rounding on other CPUs does not cross, while a broken probe (chance is 0.1) falls far below.
    assert metrics["accuracy"] >= 0.87, metrics["accuracy"]

    # the saved folder is a stock transformers model and agrees with audioclf predict
    from transformers import pipeline

    clf = audioclf.Classifier.load(run)
    stock = pipeline("audio-classification", model=str(run))
    clips = sorted(FSDD.glob(f"*_{TEST_SPEAKER}_[0-4].wav"))
    waves = [clf.prepare(path) for path in clips]
    ours = [p[0]["label"] for p in clf.predict(waves, top_k=1)]
    theirs = [stock(wave, top_k=1)[0]["label"] for wave in waves]
    assert ours == theirs
    assert np.mean([label == path.name.split("_")[0] for label, path in zip(ours, clips)]) >= 0.9


@needs_shared
def test_fine_tuned_whisper_tiny_en_generalises_to_an_unheard_speaker(tmp_path: Path) -> None:
    run = audioclf.train(data=str(fsdd_manifest(tmp_path / "fsdd.csv")), model=str(WHISPER_TINY_EN),
                         output=str(tmp_path / "run"), **LP_FT)
    accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
    # Seed 42 scores 0.96 on nicolas with this recipe (seeds 1 and 2: 0.976 and 0.95; bench/accuracy.py's fold
    # 0.962). The gate sits 3 points under seed 42's figure, a margin that other CPUs' rounding does not cross;
    # the same recipe keeping the best single epoch instead scored 0.79-0.94 (docs/measurements.md).
    assert accuracy >= 0.93, accuracy

"""Classifier: top-k format, equality with the stock transformers pipeline, length batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_tone_folder

from audioclf.inference import Classifier, plan_batches


def test_predict_matches_stock_pipeline_on_16khz_audio(trained_run: tuple[Path, Path]) -> None:
    from transformers import pipeline

    run, data = trained_run
    clf = Classifier.load(run)
    stock = pipeline("audio-classification", model=str(run), top_k=None)
    clips = sorted(data.rglob("*.wav"))
    waves = [clf.prepare(path) for path in clips]  # 16 kHz float32, as the pipeline needs without torchaudio
    ours = clf.predict(waves, top_k=3, batch_size=4)
    for wave, mine in zip(waves, ours):
        theirs = stock(wave)
        assert mine[0]["label"] == theirs[0]["label"]
        np.testing.assert_allclose(
            [p["score"] for p in mine], [p["score"] for p in theirs[:3]], atol=1e-5
        )


def test_equal_length_batching_gives_per_clip_scores(trained_run: tuple[Path, Path]) -> None:
    """wav2vec2-base-style models change their output under zero padding: batches must not pad."""
    run, _ = trained_run
    clf = Classifier.load(run)
    rng = np.random.default_rng(1)
    waves = [tone(440, s, 16000, rng) for s in (0.5, 1.0, 0.5, 0.75, 1.0)]
    batched = clf.probabilities(waves, batch_size=8)
    alone = np.stack([clf.probabilities([w], batch_size=1)[0] for w in waves])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_predict_accepts_arrays_at_another_rate(trained_run: tuple[Path, Path]) -> None:
    run, data = trained_run
    clf = Classifier.load(run)
    path = next((data / "high").rglob("*.wav"))
    import soundfile as sf

    wave, rate = sf.read(path, dtype="float32")
    from_file = clf.predict([path], top_k=2)
    from_array = clf.predict([wave], top_k=2, sampling_rate=rate)
    assert from_file == from_array


def test_top_k_is_validated_and_capped(trained_run: tuple[Path, Path]) -> None:
    run, data = trained_run
    clf = Classifier.load(run)
    path = next(data.rglob("*.wav"))
    assert len(clf.predict([path], top_k=50)[0]) == 3
    with pytest.raises(ValueError, match="top_k"):
        clf.predict([path], top_k=0)


def test_trained_classifier_learns_the_tones(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = trained_run
    fresh = write_tone_folder(tmp_path / "fresh", per_label=4, seed=7)  # unseen clips of the same tones
    clf = Classifier.load(run)
    clips = sorted(fresh.rglob("*.wav"))
    predicted = [p[0]["label"] for p in clf.predict(clips, top_k=1)]
    truth = [path.relative_to(fresh).parts[0] for path in clips]
    assert np.mean([a == b for a, b in zip(predicted, truth)]) >= 0.9


@pytest.mark.parametrize(
    ("lengths", "equal_only", "expected"),
    [
        ([5, 3, 5, 3, 4], True, [[1, 3], [4], [0, 2]]),
        ([5, 3, 5, 3, 4], False, [[1, 3], [4, 0]] + [[2]]),
    ],
)
def test_plan_batches_groups_by_length(lengths: list[int], equal_only: bool, expected: list[list[int]]) -> None:
    assert plan_batches(lengths, 2, equal_only) == expected


def test_incomplete_run_folder_is_refused(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    import json
    import shutil

    run, _ = trained_run
    copy = Path(shutil.copytree(run, tmp_path / "copy", ignore=shutil.ignore_patterns("checkpoints")))
    status = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**status, "status": "running"}))
    with pytest.raises(RuntimeError, match="did not complete"):
        Classifier.load(copy)


def test_bf16_runs_whisper_whose_feature_extraction_stays_float32(tmp_path: Path) -> None:
    from tiny_models import save_tiny

    folder = save_tiny("whisper", tmp_path / "whisper")
    waves = [tone(440, 0.5, 16000, np.random.default_rng(0))]
    full = Classifier.load(folder).probabilities(waves)
    half = Classifier.load(folder, bf16=True).probabilities(waves)  # Whisper's extractor fails in bfloat16
    assert not np.array_equal(full, half)
    np.testing.assert_allclose(half, full, atol=0.05)


def test_bf16_runs_in_bfloat16_and_keeps_the_labels(trained_run: tuple[Path, Path]) -> None:
    import torch

    run, data = trained_run
    clf = Classifier.load(run, bf16=True)
    waves = [clf.prepare(path) for path in sorted(data.rglob("*.wav"))]
    full = Classifier.load(run).probabilities(waves)
    half = clf.probabilities(waves)
    assert not np.array_equal(full, half)  # bfloat16 arithmetic did run
    np.testing.assert_allclose(half, full, atol=0.05)
    assert (half.argmax(1) == full.argmax(1)).all()
    assert clf.model.dtype == torch.bfloat16

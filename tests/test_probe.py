"""--strategy probe: the head trained on cached pooled states is exactly the saved model's head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tone_folder
from tiny_models import save_tiny

import audioclf
from audioclf.config import ConfigError
from audioclf.features import extract_features
from audioclf.inference import Classifier
from audioclf.sources import load_data
from audioclf.training.dataset import decode_records
from audioclf.training.probe import head_logits, pooled_layer_states


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("probe") / "tones", per_label=8, rate=8000)


@pytest.mark.parametrize("kind", ["wav2vec2", "wavlm", "whisper"])
def test_saved_model_scores_equal_the_head_on_cached_states(kind: str, tones: Path, tmp_path: Path) -> None:
    run = audioclf.train(data=str(tones), model=str(save_tiny(kind, tmp_path / "base")), output=str(tmp_path / "run"),
                         strategy="probe", probe_epochs=20, batch_size=4)
    clf = Classifier.load(run)
    assert clf.model.config.use_weighted_layer_sum
    loaded = load_data(str(tones))
    clips = decode_records(loaded.records[:6], {n: i for i, n in enumerate(clf.labels)}, clf.rate, 10.0)
    with torch.no_grad():
        cached = head_logits(clf.model, torch.from_numpy(pooled_layer_states(clf.model, clf.extractor, clips)))
        direct = torch.cat([clf.model(**extract_features(clf.extractor, [w])).logits for w in clips.waves])
    np.testing.assert_allclose(cached.numpy(), direct.numpy(), atol=1e-4)
    assert json.loads((run / "run.json").read_text())["strategy"] == "probe"


def test_probe_learns_from_a_frozen_encoder_in_seconds(tones: Path, tmp_path: Path) -> None:
    base = save_tiny("wav2vec2", tmp_path / "base")
    run = audioclf.train(data=str(tones), model=str(base), output=str(tmp_path / "run"), strategy="probe",
                         batch_size=4)
    assert json.loads((run / "metrics.json").read_text())["accuracy"] >= 0.8
    from safetensors.torch import load_file

    before, after = load_file(str(base / "model.safetensors")), load_file(str(run / "model.safetensors"))
    encoder = [name for name in before if name.startswith("wav2vec2.encoder.layers.0.")]
    assert encoder and all(torch.equal(before[name], after[name]) for name in encoder)


def test_probe_refuses_architectures_without_a_layer_mix(tones: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use --strategy finetune"):
        audioclf.train(data=str(tones), model=str(save_tiny("audio-spectrogram-transformer", tmp_path / "ast")),
                       output=str(tmp_path / "run"), strategy="probe")
    with pytest.raises(ConfigError, match="strategy"):
        audioclf.TrainConfig(data="x", strategy="guess").validate()


def test_probe_first_then_fine_tune_starts_from_the_probed_head(tones: Path, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import logging

    base = save_tiny("wav2vec2", tmp_path / "base")
    with caplog.at_level(logging.INFO, logger="audioclf"):
        run = audioclf.train(data=str(tones), model=str(base), output=str(tmp_path / "run"), probe_first=True,
                             strategy="finetune", epochs=2, batch_size=4, gradient_accumulation_steps=1,
                             learning_rate=1e-4)
    assert "probe: head" in caplog.text
    status = json.loads((run / "run.json").read_text())
    assert status["strategy"] == "finetune" and status["status"] == "complete"
    assert Classifier.load(run).model.config.use_weighted_layer_sum


def test_bf16_probe_states_are_close_to_float32(tones: Path, tmp_path: Path) -> None:
    clf = Classifier.load(save_tiny("wav2vec2", tmp_path / "base"))
    loaded = load_data(str(tones))
    clips = decode_records(loaded.records[:6], {n: i for i, n in enumerate(sorted({r.label for r in loaded.records}))},
                           clf.rate, 10.0)
    full = pooled_layer_states(clf.model, clf.extractor, clips)
    half = pooled_layer_states(clf.model, clf.extractor, clips, precision="bf16")
    assert half.dtype == np.float32 and not np.array_equal(full, half)
    np.testing.assert_allclose(half, full, atol=0.05 * float(np.abs(full).max()))

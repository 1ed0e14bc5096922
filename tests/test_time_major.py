"""The time-major feature encoder (CPU inference and the encoder cache): the stock encoder's frames, the length-aware
norm's too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone
from tiny_models import save_tiny

from audioclf.inference import Classifier
from audioclf.inference import time_major
from audioclf.features import extract_features
from audioclf.inference.exact_batching import EXACT_WITH_MASK, _LengthAwareEncoderForward, clip_lengths, run_batch
from audioclf.inference.time_major import supports_time_major, time_major_encoder_forward

LENGTHS = torch.tensor([16000, 12345, 8000, 4960])


@pytest.mark.parametrize("kind", EXACT_WITH_MASK)
def test_time_major_frames_equal_the_stock_encoders(kind: str, tmp_path: Path) -> None:
    model = Classifier.load(save_tiny(kind, tmp_path / kind)).model
    encoder = model.base_model.feature_extractor
    assert supports_time_major(encoder)
    samples = torch.randn(4, 16000) * (torch.arange(16000)[None, :] < LENGTHS[:, None])  # zero-padded rows
    with torch.inference_mode():
        np.testing.assert_allclose(time_major_encoder_forward(encoder, samples), encoder(samples), atol=1e-5)
        stock = _LengthAwareEncoderForward(encoder, LENGTHS)(samples)
        ours = time_major_encoder_forward(encoder, samples, LENGTHS)
    frames = model.base_model._get_feat_extract_output_lengths(LENGTHS).tolist()
    for row, count in enumerate(frames):  # the frames that see only real samples; the rest are masked later
        np.testing.assert_allclose(ours[row, :, :count], stock[row, :, :count], atol=1e-5)


def test_cpu_batches_run_time_major_and_keep_the_scores(tiny_wav2vec2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clf = Classifier.load(tiny_wav2vec2)
    rng = np.random.default_rng(0)
    waves = [tone(300 + 150 * i, seconds, 16000, rng) for i, seconds in enumerate((0.31, 0.5, 0.77, 1.0))]
    lengths = [len(wave) for wave in waves]
    calls = []
    monkeypatch.setattr(time_major, "time_major_encoder_forward",
                        lambda *args, **kw: calls.append(kw["lengths"]) or time_major_encoder_forward(*args, **kw))
    with torch.inference_mode():
        with clip_lengths(clf.model, lengths):
            stock = clf.model(**extract_features(clf.extractor, waves, attention_mask=True)).logits
        assert not calls
        full = run_batch(clf.model, clf.extractor, waves, length_aware_encoder=True)[0].logits
        half_model = Classifier.load(tiny_wav2vec2, bf16=True).model
        half = run_batch(half_model, clf.extractor, waves, length_aware_encoder=True, precision="bf16")[0].logits
    assert calls == [lengths, lengths]
    np.testing.assert_allclose(full, stock, atol=1e-5)
    assert half.dtype == torch.bfloat16 and "forward" not in vars(half_model.base_model.feature_extractor)
    np.testing.assert_allclose(half.float().softmax(-1), full.softmax(-1), atol=0.05)


def test_layer_norm_encoders_keep_the_stock_forward(tmp_path: Path) -> None:
    model = Classifier.load(save_tiny("data2vec-audio", tmp_path / "d2v")).model
    encoder = model.base_model.feature_extractor
    assert isinstance(encoder.conv_layers[0].layer_norm, torch.nn.LayerNorm) and not supports_time_major(encoder)
    assert not supports_time_major(None)

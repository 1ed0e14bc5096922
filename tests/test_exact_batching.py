"""Exact batching of group-norm checkpoints: length-aware first norm + attention mask = scores one clip at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone
from tiny_models import save_tiny

from audioclf.inference import Classifier
from audioclf.inference.exact_batching import EXACT_WITH_MASK, run_batch, supports_exact_batching
from audioclf.training.dataset import DecodedClips
from audioclf.training.probe import pooled_layer_states

LENGTHS_S = (0.31, 0.5, 0.77, 1.0)


def _waves(seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [tone(300 + 100 * i, seconds, 16000, rng) for i, seconds in enumerate(LENGTHS_S)]


def _one_by_one(model, extractor, waves, **kwargs):
    return [run_batch(model, extractor, [wave], length_aware_encoder=False, **kwargs)[0] for wave in waves]


@pytest.mark.parametrize("kind", EXACT_WITH_MASK)
def test_length_aware_encoder_batches_give_one_clip_scores(kind: str, tmp_path: Path) -> None:
    clf = Classifier.load(save_tiny(kind, tmp_path / kind))
    model, extractor, waves = clf.model, clf.extractor, _waves()
    assert supports_exact_batching(model)
    with torch.inference_mode():
        alone = torch.cat([out.logits for out in _one_by_one(model, extractor, waves)])
        exact = run_batch(model, extractor, waves, length_aware_encoder=True)[0].logits
        padded = run_batch(model, extractor, waves, length_aware_encoder=False)[0].logits
    np.testing.assert_allclose(exact.numpy(), alone.numpy(), atol=1e-5)
    assert not np.allclose(padded.numpy(), alone.numpy(), atol=1e-5)  # plain zero padding does change scores
    assert "forward" not in vars(model.base_model.feature_extractor)  # the stand-in is gone after the batch


def test_classifier_batches_unequal_lengths_exactly(tiny_wav2vec2: Path) -> None:
    clf = Classifier.load(tiny_wav2vec2)
    waves = _waves()
    calls = []
    clf.model.register_forward_hook(lambda module, args, output: calls.append(1))
    batched = clf.probabilities(waves, batch_size=8)
    assert len(calls) == 1  # four lengths, one model call
    alone = np.stack([clf.probabilities([wave], batch_size=1)[0] for wave in waves])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_unsupported_types_keep_equal_length_batches(tmp_path: Path) -> None:
    """SEW's squeeze pooling mixes a clip's last frames with padding: no length-aware encoder there."""
    clf = Classifier.load(save_tiny("sew", tmp_path / "sew"))
    assert not supports_exact_batching(clf.model) and clf._equal_lengths_only


def test_probe_cache_batched_equals_one_clip_at_a_time(tiny_wav2vec2: Path) -> None:
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(tiny_wav2vec2, use_weighted_layer_sum=True).eval()
    extractor = AutoFeatureExtractor.from_pretrained(tiny_wav2vec2)
    waves = _waves()
    clips = DecodedClips(waves=waves, labels=[0, 1, 0, 1], lengths=[len(w) for w in waves])
    batched = pooled_layer_states(model, extractor, clips, batch_size=8)
    with torch.inference_mode():
        alone = np.stack([torch.stack([layer[0].mean(dim=0) for layer in out.hidden_states]).numpy()
                          for out in _one_by_one(model, extractor, waves, output_hidden_states=True)])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_clips_shorter_than_the_encoder_reads_are_refused_by_name(tiny_wav2vec2: Path) -> None:
    """Alone such a clip crashed inside the convolution; batched it would have scored NaN."""
    from audioclf.audio import AudioError

    clf = Classifier.load(tiny_wav2vec2)
    wave = _waves()[0]
    with pytest.raises(AudioError, match="too short for this model"):
        clf.prepare(wave[:clf.min_samples - 1])
    scores = clf.probabilities([clf.prepare(wave[:clf.min_samples]), wave], batch_size=4)
    assert np.isfinite(scores).all()

"""Fine-tuning on frozen feature-encoder outputs computed once: same scores as the model on waveforms."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone, write_tone_folder
from tiny_models import _wav2vec2_family, save_tiny
from transformers import AutoModelForAudioClassification

import audioclf
from audioclf.features import load_feature_extractor
from audioclf.inference.exact_batching import EXACT_WITH_MASK, run_batch
from audioclf.models import freeze_feature_encoder, load_for_training
from audioclf.training.cache import CacheWriter
from audioclf.training.dataset import DecodedClips
from audioclf.training.encoder_cache import (EncodedClipDataset, EncodedCollator, can_cache_encoder_outputs,
                                             encoder_outputs_as_input, frozen_encoder_outputs)

LAYER_NORM = "wav2vec2-layer-norm"
LENGTHS_S = (0.77, 0.31, 1.0, 0.5)  # unsorted: outputs must come back in the clips' order


def _clips(on_disk: Path | None = None) -> DecodedClips:
    rng = np.random.default_rng(5)
    waves = [tone(300 + 90 * i, seconds, 16000, rng) for i, seconds in enumerate(LENGTHS_S)]
    if on_disk is not None:
        writer = CacheWriter(on_disk / "entry")
        for wave in waves:
            writer.add(wave)
        waves = writer.commit({})
    return DecodedClips(waves=waves, labels=[0, 1, 0, 1], lengths=[len(w) for w in waves])


def _model(kind: str, folder: Path):
    if kind == LAYER_NORM:  # wav2vec2-large-lv60 style: layer norm in every convolution, attention masks
        config, extractor = _wav2vec2_family("Wav2Vec2Config", feat_extract_norm="layer", do_stable_layer_norm=True)()
        torch.manual_seed(0)
        AutoModelForAudioClassification.from_config(config).save_pretrained(folder)
        extractor.save_pretrained(folder)
        path = folder
    else:
        path = save_tiny(kind, folder)
    model = load_for_training(str(path), ["a", "b"])
    freeze_feature_encoder(model)
    return model.eval(), load_feature_extractor(str(path))


@pytest.mark.parametrize("kind", EXACT_WITH_MASK + (LAYER_NORM,))
@pytest.mark.parametrize("store", ["memory", "disk"])
def test_batches_of_cached_outputs_score_as_each_clip_alone(kind: str, store: str, tmp_path: Path) -> None:
    model, extractor = _model(kind, tmp_path / "m")
    clips = _clips(tmp_path if store == "disk" else None)
    assert can_cache_encoder_outputs(model)
    with torch.inference_mode():
        alone = torch.cat([run_batch(model, extractor, [w], length_aware_encoder=False)[0].logits
                           for w in clips.waves])
    with frozen_encoder_outputs(model, extractor, 3, "float32", clips) as ([encoded], seconds):
        assert [len(frames) for frames in encoded] == [int(n) for n in
                                                      model._get_feat_extract_output_lengths(torch.tensor(clips.lengths))]
        items = [EncodedClipDataset(encoded, clips, "input_values")[i] for i in range(4)]
        batch = EncodedCollator("input_values")(items)
        with encoder_outputs_as_input(model), torch.inference_mode():
            cached = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"]).logits
    assert seconds >= 0
    np.testing.assert_allclose(cached.numpy(), alone.numpy(), atol=1e-5)
    assert "forward" not in vars(model.base_model.feature_extractor)  # the pass-through is gone after the block
    assert not list(tmp_path.glob(".encoder-outputs-*"))  # the scratch entry beside the disk cache is removed


def test_only_frozen_encoders_of_masking_types_are_cached(tmp_path: Path) -> None:
    path = save_tiny("wav2vec2", tmp_path / "w")
    model = load_for_training(str(path), ["a", "b"])
    assert not can_cache_encoder_outputs(model)  # the encoder still learns
    freeze_feature_encoder(model)
    assert can_cache_encoder_outputs(model)
    sew = load_for_training(str(save_tiny("sew", tmp_path / "s")), ["a", "b"])
    freeze_feature_encoder(sew)
    assert not can_cache_encoder_outputs(sew)  # its squeeze pooling mixes real and padded frames


@pytest.mark.parametrize("augment", [{}, {"augment_speed": 0.1}])
def test_fine_tuning_uses_the_cache_unless_waveforms_change(augment: dict, tmp_path: Path, tiny_wav2vec2: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    data = write_tone_folder(tmp_path / "data", per_label=8)
    with caplog.at_level(logging.INFO, logger="audioclf"):
        run = audioclf.train(data=str(data), model=str(tiny_wav2vec2), output=str(tmp_path / "run"), epochs=2,
                             strategy="finetune", batch_size=4, gradient_accumulation_steps=1, **augment)
    used = "computed once" in caplog.text
    assert used == (not augment)
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert audioclf.Classifier.load(run).predict([tone(300, 0.5, 16000, np.random.default_rng(0))])[0]


def test_augmented_fine_tuning_runs_the_frozen_encoder_over_each_clips_samples(
        tmp_path: Path, tiny_wav2vec2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audioclf.inference import time_major

    calls = []
    forward = time_major.time_major_encoder_forward
    monkeypatch.setattr(time_major, "time_major_encoder_forward",
                        lambda encoder, values, lengths=None: encoder.training
                        and calls.append((values.shape[-1], lengths)) or forward(encoder, values, lengths))
    data = write_tone_folder(tmp_path / "data", per_label=8)
    audioclf.train(data=str(data), model=str(tiny_wav2vec2), output=str(tmp_path / "run"), epochs=1,
                   strategy="finetune", batch_size=4, gradient_accumulation_steps=1, augment_speed=0.2)
    assert calls and all(lengths is not None and max(lengths) == width for width, lengths in calls)
    assert any(len(set(lengths)) > 1 for _, lengths in calls)  # padded batches, each clip normed on its own


def test_bf16_encoder_pass_runs_in_bfloat16_and_keeps_float32_outputs(tmp_path: Path) -> None:
    model, extractor = _model("wav2vec2", tmp_path / "m")
    clips = _clips(None)
    with frozen_encoder_outputs(model, extractor, 3, "float32", clips) as ([full], _), \
            frozen_encoder_outputs(model, extractor, 3, "bf16", clips) as ([half], _):
        assert all(frames.dtype == np.float32 for frames in half)
        assert not all(np.array_equal(a, b) for a, b in zip(full, half))
        for a, b in zip(full, half):
            np.testing.assert_allclose(b, a, atol=0.1 * float(np.abs(a).max()))

"""Every architecture the HF guide lists trains, saves, reloads and predicts; label maps and dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tone_folder
from tiny_models import BUILDERS, save_tiny

import audioclf
from audioclf.models import label_maps, load_for_training, whisper_context_seconds

FEW_STEPS = dict(epochs=1, batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-3, warmup_ratio=0.0)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_architecture_trains_saves_reloads_and_predicts(kind: str, tmp_path: Path) -> None:
    checkpoint = save_tiny(kind, tmp_path / "base")
    data = write_tone_folder(tmp_path / "data", per_label=4, rate=8000)
    run = audioclf.train(data=str(data), model=str(checkpoint), output=str(tmp_path / "run"), **FEW_STEPS)

    clf = audioclf.Classifier.load(run)
    assert clf.labels == ["high", "low", "mid"]
    clip = next((data / "mid").rglob("*.wav"))
    [prediction] = clf.predict([clip], top_k=3)
    assert [p["label"] for p in prediction] != [] and len(prediction) == 3
    assert {p["label"] for p in prediction} == {"high", "low", "mid"}
    scores = [p["score"] for p in prediction]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4
    metrics = json.loads((run / "metrics.json").read_text())
    right = sum(row["recall"] * row["support"] for row in metrics["per_class"].values())
    assert metrics["num_eval_clips"] > 0 and metrics["accuracy"] == pytest.approx(right / metrics["num_eval_clips"])


WITH_LAYER_MIX = sorted(kind for kind, build in BUILDERS.items() if hasattr(build()[0], "use_weighted_layer_sum"))


@pytest.mark.parametrize("kind", WITH_LAYER_MIX)
def test_new_layer_mix_starts_even_on_every_layer(kind: str, tmp_path: Path) -> None:
    """The checkpoint has no `layer_weights`; transformers 5.24 leaves them as uninitialised memory."""
    checkpoint = save_tiny(kind, tmp_path / "base")
    model = load_for_training(str(checkpoint), ["a", "b", "c"], weighted_layer_sum=True)
    layers = model.layer_weights.numel()
    assert layers > 1 and torch.equal(model.layer_weights.detach(), torch.full((layers,), 1.0 / layers))


def test_float16_checkpoint_trains_in_float32(tmp_path: Path) -> None:
    checkpoint = save_tiny("whisper", tmp_path / "fp16", dtype=torch.float16)
    assert "float16" in (checkpoint / "config.json").read_text()
    data = write_tone_folder(tmp_path / "data", per_label=4)
    run = audioclf.train(data=str(data), model=str(checkpoint), output=str(tmp_path / "run"), **FEW_STEPS)
    clf = audioclf.Classifier.load(run)
    assert {p.dtype for p in clf.model.parameters()} == {torch.float32}


def test_label_maps_round_trip_through_json_with_integer_ids(tmp_path: Path, tiny_wav2vec2: Path) -> None:
    from transformers import AutoConfig

    label2id, id2label = label_maps(["yes", "no", "up"])
    config = AutoConfig.from_pretrained(tiny_wav2vec2)
    config.label2id, config.id2label, config.num_labels = label2id, id2label, 3
    config.save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["id2label"] == {"0": "yes", "1": "no", "2": "up"}  # JSON keys are strings on disk
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert reloaded.id2label == {0: "yes", 1: "no", 2: "up"} and reloaded.label2id == {"yes": 0, "no": 1, "up": 2}


@pytest.mark.parametrize(
    ("longest", "max_duration", "expected"), [(1.31, 10.0, 2), (2.0, 10.0, 2), (7.5, 5.0, 5), (45.0, 60.0, 30)]
)
def test_whisper_context_is_longest_clip_capped_and_rounded_up(longest: float, max_duration: float, expected: int):
    assert whisper_context_seconds(longest, max_duration) == expected


@pytest.mark.parametrize("padding", ["right", "left"])
def test_whisper_context_cut_keeps_stock_pipeline_compatible(padding: str, tmp_path: Path) -> None:
    from transformers import pipeline

    checkpoint = save_tiny("whisper", tmp_path / "base")
    data = write_tone_folder(tmp_path / "data", per_label=4)
    run = audioclf.train(data=str(data), model=str(checkpoint), output=str(tmp_path / "run"), whisper_padding=padding,
                         **FEW_STEPS)
    config = json.loads((run / "config.json").read_text())
    extractor = json.loads((run / "preprocessor_config.json").read_text())
    assert config["max_source_positions"] == 100 and extractor["chunk_length"] == 2  # clips <= 1.2 s -> 2 s
    assert extractor["padding_side"] == padding

    clf = audioclf.Classifier.load(run)
    wave = clf.prepare(next((data / "low").rglob("*.wav")))
    frames = clf.extractor([wave], sampling_rate=16000, return_tensors="np").input_features[0]
    silent = frames.std(axis=0) < 1e-6  # the mel frames of padding are all at the clamp floor
    filled = len(wave) // clf.extractor.hop_length  # frames the clip itself fills
    assert silent[filled + 2:].all() if padding == "right" else silent[:-filled - 2].all()
    assert not silent[:filled - 2].any() if padding == "right" else not silent[-filled + 2:].any()
    stock = pipeline("audio-classification", model=str(run), top_k=3)(wave)
    ours = clf.predict([wave], top_k=3)[0]
    assert [p["label"] for p in ours] == [p["label"] for p in stock]
    np.testing.assert_allclose([p["score"] for p in ours], [p["score"] for p in stock], atol=1e-5)


class _WrongUnderAutocast(torch.nn.Conv1d):
    """A convolution computed wrong in bfloat16 only, as torch 2.13's oneDNN did for some shapes on an AMX CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return -out if torch.is_autocast_enabled("cpu") else out


def test_bf16_is_refused_where_this_machine_gets_a_convolution_wrong(tiny_wav2vec2: Path) -> None:
    from audioclf.config import ConfigError
    from audioclf.inference import Classifier
    from audioclf.models import require_correct_bf16_convolutions

    model = Classifier.load(tiny_wav2vec2).model
    require_correct_bf16_convolutions(model)  # the real kernels: bfloat16 rounding only
    encoder = model.base_model.feature_extractor
    good = encoder.conv_layers[1].conv
    wrong = _WrongUnderAutocast(good.in_channels, good.out_channels, good.kernel_size, good.stride, bias=False)
    encoder.conv_layers[1].conv = wrong
    with pytest.raises(ConfigError, match=r"1 of the model's convolutions .*feature_extractor\.conv_layers\.1\.conv"
                                          r" \(Conv1d 32->32, kernel \(4,\), stride \(4,\).*off by 200%"):
        require_correct_bf16_convolutions(model)


def test_bf16_check_runs_before_prediction_and_training(tiny_wav2vec2: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from audioclf import models
    from audioclf.config import ConfigError
    from audioclf.inference import Classifier

    monkeypatch.setattr(models, "_bf16_conv_errors", lambda model: [("conv", torch.nn.Conv1d(1, 1, 1), 1.0)])
    Classifier.load(tiny_wav2vec2)  # float32: not checked
    with pytest.raises(ConfigError, match="leave --bf16 off"):
        Classifier.load(tiny_wav2vec2, bf16=True)
    with pytest.raises(ConfigError, match="leave --bf16 off"):
        audioclf.train(data=str(write_tone_folder(tmp_path / "data", per_label=4)), model=str(tiny_wav2vec2),
                       output=str(tmp_path / "run"), epochs=1, bf16=True)
    assert not (tmp_path / "run" / "checkpoints").exists()

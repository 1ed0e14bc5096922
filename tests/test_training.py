"""Training internals: decode-once dataset, collation, augmentation, optimizer groups, bad-clip limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_tone_folder
from tiny_models import save_tiny

from audioclf.audio import AudioError
from audioclf.config import TrainConfig
from audioclf.features import load_feature_extractor
from audioclf.models import load_for_training
from audioclf.sources import load_data
from audioclf.training.augment import Augmenter
from audioclf.training.dataset import AudioCollator, ClipDataset, decode_records
from audioclf.training.finetune import optimizer_for
from audioclf.training.trainer import TooManyBadClips, check_bad_clips


def test_decode_records_resamples_once_and_collects_bad_clips(tmp_path: Path) -> None:
    root = write_tone_folder(tmp_path / "d", per_label=2, rate=8000)
    (root / "low" / "broken.wav").write_bytes(b"junk")
    loaded = load_data(str(root))
    clips = decode_records(loaded.records, {n: i for i, n in enumerate(loaded.label_names)}, 16000, 0.5)
    assert len(clips.waves) == 6 and [e.name for e in clips.bad] == [str(root / "low" / "broken.wav")]
    assert max(len(w) for w in clips.waves) == 8000  # cropped to max_duration at 16 kHz


def test_disk_cache_matches_memory_is_reused_and_invalidated(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from audioclf.training import dataset

    root = write_tone_folder(tmp_path / "d", per_label=3, rate=8000)
    (root / "low" / "broken.wav").write_bytes(b"junk")
    loaded = load_data(str(root))
    label2id = {n: i for i, n in enumerate(loaded.label_names)}
    cache = tmp_path / "cache"
    in_memory = decode_records(loaded.records, label2id, 16000, 1.0)
    cached = decode_records(loaded.records, label2id, 16000, 1.0, cache_dir=cache)
    assert type(cached.waves).__name__ == "CachedWaves" and len(list(cache.iterdir())) == 1
    for ours, theirs in zip(cached.waves, in_memory.waves):
        np.testing.assert_array_equal(ours, theirs)
    assert cached.labels == in_memory.labels and cached.lengths == [len(w) for w in in_memory.waves]

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(dataset, "load_audio", no_decoding)
    again = decode_records(loaded.records, label2id, 16000, 1.0, cache_dir=cache)
    assert again.names == cached.names and [e.reason for e in again.bad] == [e.reason for e in cached.bad]
    np.testing.assert_array_equal(again.waves[-1], in_memory.waves[-1])
    monkeypatch.undo()

    changed = sorted(root.rglob("*.wav"))[1]
    sf.write(changed, np.zeros(4000, np.float32), 8000)  # new content, size and time
    fresh = decode_records(load_data(str(root)).records, label2id, 16000, 1.0, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2
    assert np.abs(fresh.waves[fresh.names.index(str(changed))]).max() == 0.0
    assert decode_records(loaded.records, label2id, 16000, 0.5, cache_dir=cache).lengths != cached.lengths


def test_collator_pads_dynamically_with_the_models_extractor(tmp_path: Path) -> None:
    extractor = load_feature_extractor(str(save_tiny("wav2vec2", tmp_path / "m")))
    clips = decode_records([], {}, 16000, 1.0)
    clips.waves, clips.labels = [np.ones(800, np.float32), np.ones(1200, np.float32)], [0, 1]
    dataset = ClipDataset(clips, "input_values")
    batch = AudioCollator(extractor, "input_values")([dataset[0], dataset[1]])
    assert tuple(batch["input_values"].shape) == (2, 1200) and batch["labels"].tolist() == [0, 1]


def test_speed_perturbation_is_bounded_and_seeded() -> None:
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    lengths = [len(Augmenter(16000, 0.1, seed=5)(wave)) for _ in range(2)]
    assert lengths[0] == lengths[1]
    many = Augmenter(16000, 0.1, seed=1)
    observed = {len(many(wave)) for _ in range(20)}
    assert len(observed) > 5 and all(16000 / 1.1 - 2 <= n <= 16000 / 0.9 + 2 for n in observed)


def test_noise_augmentation_hits_the_requested_snr() -> None:
    t = np.arange(16000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    noisy = Augmenter(16000, noise_snr=(20.0, 20.0), seed=0)(wave)
    snr = 10 * np.log10(np.mean(wave**2) / np.mean((noisy - wave) ** 2))
    assert len(noisy) == len(wave) and abs(snr - 20) < 0.5
    assert not Augmenter(16000).active


def test_noise_snr_must_be_a_range() -> None:
    from audioclf.config import ConfigError

    assert TrainConfig(augment_noise_snr="10:30").noise_snr_range() == (10.0, 30.0)
    with pytest.raises(ConfigError, match="augment_noise_snr"):
        TrainConfig.build({"augment_noise_snr": "30:10"})


def test_head_gets_its_own_learning_rate(tmp_path: Path) -> None:
    model = load_for_training(str(save_tiny("wav2vec2", tmp_path / "m")), ["a", "b"])
    _, kwargs = optimizer_for(model, TrainConfig(learning_rate=1e-5, head_learning_rate=1e-3))
    encoder, head = kwargs["params"]
    assert (encoder["lr"], head["lr"]) == (1e-5, 1e-3)
    head_ids = {id(p) for p in head["params"]}
    assert head_ids == {id(p) for p in [*model.projector.parameters(), *model.classifier.parameters()]}


def test_bad_clip_fraction_limit() -> None:
    bad = [AudioError("a.wav", "empty clip")]
    check_bad_clips(bad, 100, 0.01)  # 1% is allowed
    with pytest.raises(TooManyBadClips, match="a.wav: empty clip"):
        check_bad_clips(bad, 50, 0.01)

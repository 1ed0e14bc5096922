"""Training internals: decode-once dataset, collation, augmentation, optimizer groups, bad-clip limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import write_tone_folder
from tiny_models import save_tiny

from audioclf.audio import AudioError
from audioclf.config import ConfigError, TrainConfig
from audioclf.features import load_feature_extractor
from audioclf.models import freeze_first_layers, load_for_training
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


def test_time_shift_and_gain_keep_the_clip_and_move_or_scale_it() -> None:
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
    shift = Augmenter(16000, max_shift_s=0.25, seed=3)
    outs = [shift(wave) for _ in range(10)]
    assert all(len(out) == 8000 + 4000 for out in outs)  # 0.25 s of silence added, split around the clip
    offsets = [int(np.flatnonzero(out)[0]) for out in outs]
    assert len(set(offsets)) > 5 and all(np.array_equal(out[o : o + 8000], wave) for out, o in zip(outs, offsets))
    louder = Augmenter(16000, gain_db=(6.0, 6.0))(wave)
    np.testing.assert_allclose(louder, wave * 10 ** (6 / 20), rtol=1e-6)
    assert Augmenter(16000, gain_db=(-3.0, 3.0)).active and Augmenter(16000, max_shift_s=0.1).active


def test_random_crop_cuts_long_clips_to_windows_that_move_and_keeps_short_ones() -> None:
    wave = np.arange(32000, dtype=np.float32)  # each sample its own index: a window's start is its first value
    crop = Augmenter(16000, crop_s=0.5, seed=1)
    outs = [crop(wave) for _ in range(10)]
    assert crop.active and all(len(out) == 8000 for out in outs)
    assert all(np.array_equal(out, wave[int(out[0]):int(out[0]) + 8000]) for out in outs)
    assert len({int(out[0]) for out in outs}) > 5
    short = wave[:4000]
    assert np.array_equal(crop(short), short)


def test_edge_trim_cuts_the_quiet_start_and_end_at_the_drawn_level() -> None:
    frame = 160  # 10 ms at 16 kHz
    levels_db = np.array([-40, -25, -12, 0, 0, -5, -12, -25, -40])  # per frame, relative to the loudest
    wave = np.concatenate([np.full(frame, 10 ** (db / 20), np.float32) for db in levels_db])
    def kept_frames(low: float, high: float) -> int:
        return len(Augmenter(16000, trim_db=(low, high))(wave)) // frame
    assert kept_frames(20, 20) == 5  # the -25 and -40 frames go at both ends
    assert kept_frames(30, 30) == 7 and kept_frames(50, 50) == 9 and kept_frames(3, 3) == 2
    drawn = Augmenter(16000, trim_db=(10, 50), seed=0)
    assert {len(drawn(wave)) // frame for _ in range(40)} == {3, 5, 7, 9}
    assert np.array_equal(Augmenter(16000, trim_db=(10, 10))(wave[:100]), wave[:100])  # under one frame: kept
    with pytest.raises(ConfigError, match="augment_trim"):
        TrainConfig.build({"augment_trim": "-5:10"})



def test_end_cut_drops_a_random_part_of_the_end_and_keeps_the_start() -> None:
    wave = np.arange(16000, dtype=np.float32)  # 1 s at 16 kHz
    cut = Augmenter(16000, cut_end=0.6, seed=0)
    outs = [cut(wave) for _ in range(200)]
    lengths = [len(out) for out in outs]
    assert cut.active and all(np.array_equal(out, wave[:len(out)]) for out in outs)
    assert min(lengths) >= 0.4 * 16000 - 1 and max(lengths) <= 16000
    assert min(lengths) < 0.45 * 16000 and max(lengths) > 0.95 * 16000  # the fraction is drawn in [0, 0.6]
    short = wave[:2000]  # 0.125 s: at least 0.1 s is kept
    assert all(1600 <= len(cut(short)) for _ in range(50))
    assert np.array_equal(Augmenter(16000, cut_end=0.9)(wave[:1000]), wave[:1000])  # under 0.1 s: kept whole
    with pytest.raises(ConfigError, match="augment_cut_end"):
        TrainConfig.build({"augment_cut_end": 1.0})

def test_each_loader_worker_and_epoch_draws_its_own_augmentation() -> None:
    from torch.utils.data import DataLoader

    wave = np.arange(32000, dtype=np.float32)
    crop = Augmenter(16000, crop_s=0.1, seed=0)

    class WindowStarts(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> float:
            return float(crop(wave)[0])  # where the random window starts

    torch.manual_seed(0)
    loader = DataLoader(WindowStarts(), batch_size=1, num_workers=2)
    first, second = ([float(start) for start in loader] for _ in range(2))
    assert len(set(first)) == 4  # the two workers do not repeat each other's draws
    assert first != second  # nor does the next epoch repeat this one


def test_spectrogram_time_masks_only_while_training() -> None:
    from audioclf.training.augment import MASK_WIDTH, SpectrogramTimeMask

    torch.manual_seed(0)
    features = torch.randn(4, 80, 100)  # Whisper: (batch, mel bins, time)
    module = torch.nn.Linear(1, 1)
    mask = SpectrogramTimeMask(0.2, "input_features", time_axis=-1)
    _, kwargs = mask(module, (), {"input_features": features})
    changed = (kwargs["input_features"] != features).all(dim=1)  # whole frames (every bin) replaced
    assert changed.any(1).all() and (changed.sum(1) <= 2 * MASK_WIDTH).all()
    assert torch.equal(kwargs["input_features"][~changed.unsqueeze(1).expand_as(features)],
                       features[~changed.unsqueeze(1).expand_as(features)])
    module.eval()
    assert mask(module, (), {"input_features": features}) is None


def test_spec_augment_uses_the_models_own_masking_where_it_has_one(tmp_path: Path) -> None:
    from audioclf.training.augment import enable_spec_augment

    wav2vec2 = load_for_training(str(save_tiny("wav2vec2", tmp_path / "w")), ["a", "b"])
    assert enable_spec_augment(wav2vec2, 0.3) == "model config" and wav2vec2.config.mask_time_prob == 0.3
    whisper = load_for_training(str(save_tiny("whisper", tmp_path / "s")), ["a", "b"])
    assert enable_spec_augment(whisper, 0.3) == "spectrogram masks" and whisper._forward_pre_hooks


def test_vtlp_moves_a_tone_by_its_factor_and_only_while_training() -> None:
    from transformers import WhisperFeatureExtractor

    from audioclf.training.augment import SpectrogramWarp, mel_bin_centres, warp_frequencies

    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=1)
    time = np.arange(16000) / 16000

    def tone_spectrogram(hz: float) -> torch.Tensor:
        wave = (0.5 * np.sin(2 * np.pi * hz * time)).astype(np.float32)
        return torch.as_tensor(extractor(wave, sampling_rate=16000, return_tensors="np")["input_features"])

    centres = mel_bin_centres(80, "slaney", 0.0, 8000.0)
    assert np.allclose(centres[:2], [37.2, 74.5], atol=0.1) and 7650 < centres[-1] < 7750
    source = tone_spectrogram(1000)
    warped = warp_frequencies(source.repeat(3, 1, 1), np.array([0.85, 1.0, 1.15]), centres, freq_axis=1)
    peak_bins = warped.mean(dim=2).argmax(dim=1).tolist()
    # the tone's energy moves to the bin of factor x 1000 Hz, as a tone at that pitch would put it
    assert peak_bins == [int(tone_spectrogram(hz).mean(dim=2).argmax()) for hz in (850, 1000, 1150)]
    assert torch.equal(warped[1], source[0])  # factor 1 leaves it as it was
    assert peak_bins[0] < peak_bins[1] < peak_bins[2]

    module = torch.nn.Linear(1, 1)
    hook = SpectrogramWarp(0.2, "input_features", 1, centres)
    torch.manual_seed(0)
    _, kwargs = hook(module, (), {"input_features": source.repeat(8, 1, 1)})
    drawn = kwargs["input_features"].mean(dim=2).argmax(dim=1)
    assert len(set(drawn.tolist())) > 1  # each clip draws its own factor
    low, high = (int(tone_spectrogram(hz).mean(dim=2).argmax()) for hz in (790, 1210))
    assert ((drawn >= low) & (drawn <= high)).all()
    module.eval()
    assert hook(module, (), {"input_features": source}) is None


def test_vtlp_is_for_spectrogram_models_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import audioclf
    from audioclf.training.augment import enable_vtlp

    wav2vec2 = load_for_training(str(save_tiny("wav2vec2", tmp_path / "w")), ["a", "b"])
    assert not enable_vtlp(wav2vec2, 0.1, 16000) and not wav2vec2._forward_pre_hooks
    ast = load_for_training(str(save_tiny("audio-spectrogram-transformer", tmp_path / "a")), ["a", "b"])
    assert enable_vtlp(ast, 0.1, 16000)
    (hook,) = ast._forward_pre_hooks.values()
    bins = ast.config.num_mel_bins
    rising = torch.linspace(0, 1, bins).expand(2, 30, bins)  # AST: (batch, time, mel bins)
    _, kwargs = hook(ast.train(), (), {"input_values": rising})
    assert kwargs["input_values"].shape == rising.shape and not torch.equal(kwargs["input_values"], rising)
    assert torch.equal(kwargs["input_values"][:, 0], kwargs["input_values"][:, -1])  # warped along frequency only
    with pytest.raises(ConfigError, match="augment_vtlp"):
        TrainConfig.build({"augment_vtlp": 0.5})

    data = write_tone_folder(tmp_path / "tones", per_label=4)
    audioclf.train(data=str(data), model=str(tmp_path / "w"), output=str(tmp_path / "run"), strategy="finetune",
                   epochs=1, batch_size=4, augment_vtlp=0.1, validation_size=0)
    assert "--augment-vtlp ignored" in caplog.text


def test_noise_snr_must_be_a_range() -> None:
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


def test_fine_tuning_with_every_augmentation_on_a_spectrogram_model(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                                     ) -> None:
    import json

    import audioclf

    data = write_tone_folder(tmp_path / "tones", per_label=6)
    run = audioclf.train(data=str(data), model=str(save_tiny("whisper", tmp_path / "base")),
                         output=str(tmp_path / "run"),
                         strategy="finetune", epochs=2, batch_size=4, gradient_accumulation_steps=1,
                         spec_augment=0.2, augment_shift=0.1, augment_gain="-6:6", augment_speed=0.1,
                         augment_crop=0.3, augment_noise_snr="10:30", augment_trim="10:35", augment_vtlp=0.1,
                         augment_cut_end=0.5, validation_size=0)
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert not audioclf.Classifier.load(run).model._forward_pre_hooks  # the training-only masks are not saved
    assert "--augment-crop with Whisper" in caplog.text


def test_clips_too_short_for_the_encoder_are_skipped_by_name(tmp_path: Path, tiny_wav2vec2: Path) -> None:
    """A clip shorter than the conv encoder reads for one frame is reported and skipped, like a bad file."""
    import json

    import soundfile as sf

    import audioclf
    from audioclf.models import load_model_config, min_input_samples

    data = write_tone_folder(tmp_path / "data", per_label=6, rate=16000)
    blip = data / "low" / "blip.wav"
    sf.write(blip, np.zeros(min_input_samples(load_model_config(str(tiny_wav2vec2))) - 1, np.float32), 16000)
    run = audioclf.train(data=str(data), model=str(tiny_wav2vec2), output=str(tmp_path / "run"), epochs=1,
                         batch_size=4, gradient_accumulation_steps=1, max_bad_fraction=0.5, strategy="probe")
    status = json.loads((run / "run.json").read_text())
    assert status["num_skipped"] == 1
    assert "blip.wav" in status["skipped"][0] and "too short for this model" in status["skipped"][0]


def test_bf16_fine_tuning_trains_under_autocast_and_saves_float32(tmp_path: Path, tiny_wav2vec2: Path) -> None:
    from safetensors import safe_open

    import audioclf

    linear_outputs: set[torch.dtype] = set()

    def record(module: torch.nn.Module, args: Any, out: Any) -> None:
        if isinstance(module, torch.nn.Linear) and module.training:
            linear_outputs.add(out.dtype)

    data = write_tone_folder(tmp_path / "tones", per_label=4, rate=16000)
    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        run = audioclf.train(data=str(data), model=str(tiny_wav2vec2), output=str(tmp_path / "run"), bf16=True,
                             strategy="finetune", epochs=1, batch_size=4, gradient_accumulation_steps=1)
    finally:
        hook.remove()
    assert linear_outputs == {torch.bfloat16}
    with safe_open(str(run / "model.safetensors"), "pt") as saved:
        assert {saved.get_slice(name).get_dtype() for name in saved.keys()} == {"F32"}
    assert "bf16: true" in (run / "config.yaml").read_text()


def test_length_grouped_sampler_takes_known_lengths_without_reading_items(tmp_path: Path,
                                                                          tiny_wav2vec2: Path) -> None:
    from audioclf.training.dataset import DecodedClips
    from audioclf.training.finetune import TrainingData, _build_trainer

    lengths = [1600, 8000, 4000, 12000, 2400, 6400]
    clips = DecodedClips([np.zeros(n, np.float32) for n in lengths], [0, 1] * 3, [f"c{i}" for i in range(6)], lengths)
    reads: list[int] = []
    dataset = ClipDataset(clips, "input_values", augment=lambda wave: reads.append(len(wave)) or wave)
    extractor = load_feature_extractor(str(tiny_wav2vec2))
    model = load_for_training(str(tiny_wav2vec2), ["a", "b"])
    trainer = _build_trainer(TrainConfig(batch_size=2, gradient_accumulation_steps=1), tmp_path, model, extractor,
                             TrainingData(dataset, None, AudioCollator(extractor, "input_values")), None)
    sampler = trainer._get_train_sampler()
    assert sampler.lengths == lengths and not reads  # transformers' own sampler would augment every clip once
    order = list(sampler)
    assert sorted(order) == list(range(6)) and lengths.index(max(lengths)) in order[:2]  # longest batch first


def test_length_sorted_sampler_batches_neighbours_in_length_and_reshuffles_them() -> None:
    from audioclf.training.finetune import LengthSortedSampler

    lengths = torch.randint(1000, 20000, (107,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = LengthSortedSampler(lengths, batch_size=8)
    by_length = sorted(range(len(lengths)), key=lengths.__getitem__)
    neighbours = {frozenset(by_length[i : i + 8]) for i in range(0, 104, 8)}  # one window: the whole set
    torch.manual_seed(1)
    epochs = [list(sampler), list(sampler)]
    for order in epochs:
        assert sorted(order) == list(range(107))
        batches = [order[i : i + 8] for i in range(0, 107, 8)]
        assert {frozenset(batch) for batch in batches[:-1]} == neighbours
        assert set(batches[-1]) == set(by_length[104:])  # the short batch, last
        assert max(lengths[i] for i in batches[0]) == max(lengths[i] for batch in batches[:-1] for i in batch)
    assert epochs[0] != epochs[1]  # the batches' order changes between epochs


def test_length_sorted_sampler_sorts_within_windows_of_fifty_batches() -> None:
    from audioclf.training.finetune import LengthSortedSampler

    lengths = list(range(250))
    sampler = LengthSortedSampler(lengths, batch_size=2)
    sampler.WINDOW_BATCHES = 5  # windows of 10 clips: 25 of them
    order = list(sampler)
    batches = [order[i : i + 2] for i in range(0, 250, 2)]
    assert sorted(order) == lengths and all(len(batch) == 2 for batch in batches)
    # within a window, neighbours in length; across windows, random: some batch pairs clips far apart
    assert any(abs(a - b) > 2 for a, b in batches)


@pytest.mark.parametrize(("kind", "before", "first", "second"), [
    ("whisper", "encoder.conv1.weight", "encoder.layers.0.fc1.weight", "encoder.layers.1.fc1.weight"),
    ("wav2vec2", "wav2vec2.feature_projection.projection.weight",
     "wav2vec2.encoder.layers.0.feed_forward.output_dense.weight",
     "wav2vec2.encoder.layers.1.feed_forward.output_dense.weight"),
    ("audio-spectrogram-transformer", "audio_spectrogram_transformer.embeddings.patch_embeddings.projection.weight",
     "audio_spectrogram_transformer.layers.0.attention.q_proj.weight",
     "audio_spectrogram_transformer.layers.1.attention.q_proj.weight"),
])
def test_freeze_first_layers_freezes_those_layers_and_all_before_them(tmp_path: Path, kind: str, before: str,
                                                                      first: str, second: str) -> None:
    model = load_for_training(str(save_tiny(kind, tmp_path / kind)), ["a", "b"])
    params = dict(model.named_parameters())
    frozen = freeze_first_layers(model, 1)
    assert not params[before].requires_grad and not params[first].requires_grad
    head = [param for name, param in params.items() if name.startswith("classifier.")]
    assert params[second].requires_grad and head and all(param.requires_grad for param in head)
    assert frozen == sum(p.numel() for p in model.parameters() if not p.requires_grad)
    with pytest.raises(ConfigError, match="--freeze-layers 3: .* has 2 transformer layers"):
        freeze_first_layers(model, 3)


def test_too_many_frozen_layers_stop_a_run_before_any_training(tmp_path: Path) -> None:
    import audioclf

    base = save_tiny("whisper", tmp_path / "base")
    data = write_tone_folder(tmp_path / "tones", per_label=6)
    with pytest.raises(ConfigError, match="--freeze-layers 5: .* has 2 transformer layers"):
        audioclf.train(data=str(data), model=str(base), output=str(tmp_path / "run"), strategy="auto",
                       freeze_layers=5)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert '"status": "failed"' in (tmp_path / "run" / "run.json").read_text()


def test_fine_tuning_with_frozen_layers_leaves_them_as_they_were(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    import audioclf

    base = save_tiny("whisper", tmp_path / "base")
    data = write_tone_folder(tmp_path / "tones", per_label=6)
    run = audioclf.train(data=str(data), model=str(base), output=str(tmp_path / "run"), strategy="finetune",
                         epochs=2, batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-3,
                         freeze_layers=1, validation_size=0)
    start, tuned = load_file(str(base / "model.safetensors")), load_file(str(run / "model.safetensors"))
    for name in ("encoder.conv1.weight", "encoder.conv2.bias", "encoder.layers.0.fc1.weight",
                 "encoder.layers.0.self_attn.q_proj.weight"):
        assert torch.equal(start[name], tuned[name]), name
    assert not torch.equal(start["encoder.layers.1.fc1.weight"], tuned["encoder.layers.1.fc1.weight"])
    assert "freeze_layers: 1" in (run / "config.yaml").read_text()

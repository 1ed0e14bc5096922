"""Training-time augmentation: of decoded waveforms (edge trim, end cut, speed, random crop, time shift, gain, noise),
per item per epoch, and of the model's input spectrogram (SpecAugment time masks, vocal tract length perturbation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from audioclf.audio import add_noise


@dataclass
class Augmenter:
    """Edge trim (the quiet start and end cut where the 10 ms frames stay more than a level drawn in
    `trim_db` below the loudest frame, as an energy-based segmenter at another threshold would cut them: a
    model trained on loosely cut clips otherwise leans on soft onsets such as the f of "four"); an end cut (a
    random part of the clip's end, up to `cut_end` of its length, dropped, leaving at least 0.1 s: a model
    trained on whole words otherwise misses words cut short, such as a six that ends on its vowel); speed
    perturbation (up to `max_speed_change` faster or slower, pitch moving with it, as in the
    Kaldi recipe: it imitates other speakers' rate and vocal-tract length); a random crop (a clip longer
    than `crop_s` seconds cut to a window of that length at a random start, so each epoch sees another part
    of a long clip, and trains on less audio); a time shift (the clip placed at a random offset in
    `max_shift_s` seconds of added silence, split between start and end); a gain drawn in `gain_db`; then
    noise at a random SNR in `noise_snr` dB. None or 0 turns each off."""

    rate: int
    max_speed_change: float = 0.0
    noise_snr: tuple[float, float] | None = None
    seed: int = 0
    gain_db: tuple[float, float] | None = None
    max_shift_s: float = 0.0
    crop_s: float = 0.0
    trim_db: tuple[float, float] | None = None
    cut_end: float = 0.0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._worker_seed: int | None = None

    @property
    def active(self) -> bool:
        return (self.max_speed_change > 0 or self.noise_snr is not None or self.gain_db is not None
                or self.max_shift_s > 0 or self.crop_s > 0 or self.trim_db is not None or self.cut_end > 0)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        rng = self._generator()
        if self.trim_db is not None:
            wave = _trim_quiet_edges(wave, float(rng.uniform(*self.trim_db)), self.rate // 100)
        if self.cut_end > 0:
            wave = _cut_end(wave, float(rng.uniform(0, self.cut_end)), self.rate // 10)
        if self.max_speed_change > 0:
            factor = float(rng.uniform(1 - self.max_speed_change, 1 + self.max_speed_change))
            wave = soxr.resample(wave, self.rate * factor, self.rate).astype(np.float32, copy=False)
        if self.crop_s > 0:
            wave = _random_window(wave, int(round(self.crop_s * self.rate)), rng)
        if self.max_shift_s > 0:
            silence = int(round(self.max_shift_s * self.rate))
            before = int(rng.integers(0, silence + 1))
            wave = np.pad(wave, (before, silence - before))
        if self.gain_db is not None:
            wave = (wave * 10 ** (float(rng.uniform(*self.gain_db)) / 20)).astype(np.float32)
        if self.noise_snr is not None:
            wave = add_noise(wave, float(rng.uniform(*self.noise_snr)), rng)
        return wave

    def _generator(self) -> np.random.Generator:
        """This process's generator. A data-loader worker (`--num-workers`) gets its own, seeded from the
        seed PyTorch gives it, which differs per worker and per epoch: a copy of the parent's would make
        every worker repeat the same draws, and every epoch the same augmentation."""
        from torch.utils.data import get_worker_info

        worker = get_worker_info()
        if worker is not None and worker.seed != self._worker_seed:
            self._worker_seed = worker.seed
            self._rng = np.random.default_rng([self.seed, worker.seed])
        return self._rng


def _trim_quiet_edges(wave: np.ndarray, below_peak_db: float, frame: int) -> np.ndarray:
    frames = wave.size // frame
    if frames < 2:
        return wave
    power = np.square(wave[:frames * frame].reshape(frames, frame), dtype=np.float64).mean(axis=1)
    loud = np.flatnonzero(power >= power.max() * 10 ** (-below_peak_db / 10))
    return wave[loud[0] * frame:(loud[-1] + 1) * frame]


def _cut_end(wave: np.ndarray, fraction: float, keep_at_least: int) -> np.ndarray:
    return wave[:max(min(keep_at_least, wave.size), int(round(wave.size * (1 - fraction))))]


def _random_window(wave: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    if wave.size <= window:
        return wave
    start = int(rng.integers(0, wave.size - window + 1))
    return wave[start:start + window]


MASK_WIDTH = 10  # frames per SpecAugment time mask, wav2vec2's mask_time_length default


def enable_spec_augment(model: Any, mask_time_prob: float) -> str:
    """SpecAugment while training: through the model config's own time masking where the architecture
    implements it (the wav2vec2 family masks its hidden states), else by masking the spectrogram the model
    is given (Whisper and AST classifiers ignore masking options). Returns which of the two it used."""
    if any(hasattr(module, "_mask_hidden_states") for module in model.modules()):
        model.config.mask_time_prob = mask_time_prob
        return "model config"
    if mask_time_prob > 0:
        # Written by hand: transformers' Whisper applies SpecAugment only in WhisperModel, which the
        # classification head does not use, and AST has none.
        model.register_forward_pre_hook(SpectrogramTimeMask(mask_time_prob, model.main_input_name,
                                                            time_axis=-1 if model.config.model_type == "whisper"
                                                            else 1), with_kwargs=True)
    return "spectrogram masks"


@dataclass
class SpectrogramTimeMask:
    """A forward pre-hook that, in training mode only, sets about `prob` of the input spectrogram's time
    frames (in masks of MASK_WIDTH) to each clip's mean."""

    prob: float
    input_name: str
    time_axis: int

    def __call__(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple, dict] | None:
        import torch

        features = kwargs.get(self.input_name)
        if not module.training or features is None or features.dim() != 3:
            return None
        features = features.movedim(self.time_axis, 1).clone()  # (batch, time, bins)
        frames = features.shape[1]
        masks = max(1, round(self.prob * frames / MASK_WIDTH))
        starts = torch.randint(0, max(1, frames - MASK_WIDTH), (features.shape[0], masks)).to(features.device)
        steps = torch.arange(frames, device=features.device)
        masked = ((steps[None, None, :] >= starts[..., None]) & (steps < starts[..., None] + MASK_WIDTH)).any(1)
        mean = features.mean(dim=(1, 2), keepdim=True).expand_as(features)
        features[masked] = mean[masked]
        return args, {**kwargs, self.input_name: features.movedim(1, self.time_axis)}


# The frequency axis and mel scale of each spectrogram-input architecture's features, as its feature extractor
# builds them without torchaudio: Whisper (batch, mel, time), slaney mel from 0 Hz; AST (batch, time, mel), kaldi
# mel from 20 Hz; both up to half the sampling rate.
MEL_FEATURES = {"whisper": (1, "slaney", 0.0), "audio-spectrogram-transformer": (2, "kaldi", 20.0)}


def enable_vtlp(model: Any, max_warp: float, rate: int) -> bool:
    """Vocal tract length perturbation while training, on the input mel spectrogram of models that take one
    (Whisper, AST). Returns False, registering nothing, for models that take raw waveforms."""
    layout = MEL_FEATURES.get(model.config.model_type)
    if layout is None:
        return False
    freq_axis, mel_scale, low_hz = layout
    centres = mel_bin_centres(model.config.num_mel_bins, mel_scale, low_hz, rate / 2)
    model.register_forward_pre_hook(SpectrogramWarp(max_warp, model.main_input_name, freq_axis, centres),
                                    with_kwargs=True)
    return True


@dataclass
class SpectrogramWarp:
    """A forward pre-hook that, in training mode only, stretches each clip's mel spectrogram along frequency by
    its own factor drawn in [1 - max_warp, 1 + max_warp] (VTLP, Jaitly & Hinton 2013): what was at f Hz moves
    to factor x f, as in a speaker with a shorter or longer vocal tract, and unlike speed perturbation the
    clip keeps its length."""

    max_warp: float
    input_name: str
    freq_axis: int
    centres_hz: np.ndarray  # each mel bin's centre frequency

    def __call__(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple, dict] | None:
        import torch

        features = kwargs.get(self.input_name)
        if not module.training or features is None or features.dim() != 3:
            return None
        factors = 1 + self.max_warp * (2 * torch.rand(features.shape[0]).numpy() - 1)
        return args, {**kwargs, self.input_name: warp_frequencies(features, factors, self.centres_hz, self.freq_axis)}


def mel_bin_centres(bins: int, mel_scale: str, low_hz: float, high_hz: float) -> np.ndarray:
    """The centre frequency (Hz) of each of `bins` mel filters spaced evenly in mel from low_hz to high_hz."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    edges = np.linspace(hertz_to_mel(low_hz, mel_scale), hertz_to_mel(high_hz, mel_scale), bins + 2)
    return mel_to_hertz(edges[1:-1], mel_scale)


def warp_frequencies(features: Any, factors: np.ndarray, centres_hz: np.ndarray, freq_axis: int) -> Any:
    """Each clip's spectrogram (a torch tensor, clips on axis 0) with bin j given the value at centres_hz[j] /
    factor, read by linear interpolation between the neighbouring bins (held at the lowest and highest bin
    beyond them)."""
    import torch

    bins = centres_hz.size
    # (clips, bins) fractional source positions; np.interp holds the end bins beyond the table
    position = np.stack([np.interp(centres_hz / factor, centres_hz, np.arange(bins)) for factor in factors])
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, bins - 1)
    weight = torch.as_tensor(position - below, dtype=features.dtype, device=features.device)
    moved = features.movedim(freq_axis, -1)  # (clips, ..., bins)
    shape = (moved.shape[0],) + (1,) * (moved.dim() - 2) + (bins,)

    def gather(index: np.ndarray) -> Any:
        index = torch.as_tensor(index, device=features.device).view(shape).expand_as(moved)
        return moved.gather(-1, index)

    warped = gather(below) * (1 - weight.view(shape)) + gather(above) * weight.view(shape)
    return warped.movedim(-1, freq_axis)

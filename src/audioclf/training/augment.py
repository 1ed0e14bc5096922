"""Training-time augmentation of decoded waveforms (speed perturbation, background noise), per item per epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from audioclf.audio import add_noise


@dataclass
class Augmenter:
    """Speed perturbation (up to `max_speed_change` faster or slower, pitch moving with it, as in the
    Kaldi recipe: it imitates other speakers' rate and vocal-tract length), then noise at a random SNR
    in `noise_snr` dB (None: no noise)."""

    rate: int
    max_speed_change: float = 0.0
    noise_snr: tuple[float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def active(self) -> bool:
        return self.max_speed_change > 0 or self.noise_snr is not None

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        if self.max_speed_change > 0:
            factor = float(self._rng.uniform(1 - self.max_speed_change, 1 + self.max_speed_change))
            wave = soxr.resample(wave, self.rate * factor, self.rate).astype(np.float32, copy=False)
        if self.noise_snr is not None:
            wave = add_noise(wave, float(self._rng.uniform(*self.noise_snr)), self._rng)
        return wave

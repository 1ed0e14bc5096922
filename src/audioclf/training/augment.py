"""Training-time augmentation of decoded waveforms (speed perturbation), applied per item per epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr


@dataclass
class SpeedPerturbation:
    """Play each clip up to `max_change` faster or slower (pitch moves with it), like the Kaldi recipe:
    it imitates other speakers' rate and vocal-tract length from the voices at hand."""

    max_change: float
    rate: int
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        if self.max_change <= 0:
            return wave
        factor = float(self._rng.uniform(1 - self.max_change, 1 + self.max_change))
        return soxr.resample(wave, self.rate * factor, self.rate).astype(np.float32, copy=False)

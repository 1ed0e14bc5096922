"""Long recordings cut into fixed-length windows, each classified on its own (`predict --window`, `serve`'s
`window`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from audioclf.config import ConfigError
from audioclf.features import longest_input_seconds

if TYPE_CHECKING:
    from audioclf.inference.classifier import Classifier

WindowPrediction = dict[str, Any]  # {"start_s", "end_s", "predictions": [{"label", "score"}, ...]}


def window_bounds(n_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """(start, end) sample indices of windows every `hop` samples, all `window` long: the last one ends at the
    recording's end (overlapping the one before where the hops do not fit evenly), so every window is scored
    on as much audio as the others. A recording no longer than one window is one window."""
    if window < 1 or not 1 <= hop <= window:
        raise ValueError(f"need 1 <= hop <= window samples, got window={window}, hop={hop}")
    if n_samples <= window:
        return [(0, n_samples)]
    starts = [*range(0, n_samples - window, hop), n_samples - window]
    return [(start, start + window) for start in starts]


def window_samples(clf: Classifier, window_s: float, hop_s: float | None) -> tuple[int, int]:
    """`window_s` and `hop_s` (default: `window_s`, windows side by side) in samples at the model's rate, checked
    against what the model can take: its shortest input, the clips it was trained on, the extractor's context."""
    hop_s = window_s if hop_s is None else hop_s
    if not 0 < window_s < math.inf or not 0 < hop_s <= window_s:
        raise ConfigError(f"--window must be > 0 and --hop in (0, window] seconds; got window {window_s}, hop {hop_s}")
    longest = [(clf.max_duration, "the longest clip this model was trained on (its run's max_duration)"),
               (longest_input_seconds(clf.extractor), "what its feature extractor keeps (it truncates the rest)")]
    for seconds, what in longest:
        if seconds is not None and window_s > seconds + 1e-9:
            raise ConfigError(f"--window {window_s:g} s is longer than {what}: {seconds:g} s")
    window, hop = round(window_s * clf.rate), max(1, round(hop_s * clf.rate))
    if window < clf.min_samples:
        raise ConfigError(f"--window {window_s:g} s is {window} samples at {clf.rate} Hz; this model needs at least "
                          f"{clf.min_samples}")
    return window, hop


def classify_windows(clf: Classifier, wave: np.ndarray, window: int, hop: int, top_k: int = 5,
                     batch_size: int = 8) -> list[WindowPrediction]:
    """The `top_k` labels of each window of `wave` (at the model's rate), in time order. The windows share one
    length, so they batch without padding, exactly, for every model type."""
    bounds = window_bounds(len(wave), window, hop)
    scores = clf.probabilities(cut_windows(wave, bounds), batch_size, progress=len(bounds) > 64)
    return window_predictions(clf, bounds, scores, top_k)


def cut_windows(wave: np.ndarray, bounds: list[tuple[int, int]]) -> list[np.ndarray]:
    return [wave[start:end] for start, end in bounds]


def window_predictions(clf: Classifier, bounds: list[tuple[int, int]], scores: np.ndarray | list[np.ndarray],
                       top_k: int) -> list[WindowPrediction]:
    """Each window's place in seconds and its `top_k` labels, from its row of scores."""
    return [{"start_s": round(start / clf.rate, 3), "end_s": round(end / clf.rate, 3),
             "predictions": clf.top_labels(row, top_k)} for (start, end), row in zip(bounds, scores)]

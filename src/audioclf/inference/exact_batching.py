"""Exact batching for wav2vec2-base-style checkpoints: the convolutional feature encoder runs on each clip
alone, everything after it runs batched with an attention mask, and the scores equal one-clip-at-a-time.

Why by hand: in these checkpoints (`feat_extract_norm="group"`) the first convolution's group norm spans
the whole input, so zero padding changes every frame, and transformers offers no way to pad them exactly.
Only that norm needs the clip alone: the convolutions have no padding, so real frames never see padded
samples, and after the encoder the model's own code masks padded frames (positional convolution,
attention, the head's mean pooling). The transformer, most of the compute, then runs batched.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

# Model types whose code after the feature encoder masks padded frames exactly (tests/test_exact_batching.py
# checks each). SEW is left out: its squeeze pooling averages a clip's last frames with padding.
EXACT_WITH_MASK = ("wav2vec2", "hubert", "wavlm", "unispeech", "unispeech-sat")


class _PerClipForward:
    """Stands in for a feature encoder's `forward`: each batch row is encoded from its own samples, and
    the frames are zero-padded to the longest row's."""

    def __init__(self, plain: Callable[[Any], Any], lengths: Sequence[int]) -> None:
        self.plain = plain
        self.lengths = lengths

    def __call__(self, input_values: Any) -> Any:
        import torch
        import torch.nn.functional as F

        frames = [self.plain(input_values[row:row + 1, :length]) for row, length in enumerate(self.lengths)]
        longest = max(f.shape[-1] for f in frames)
        return torch.cat([F.pad(f, (0, longest - f.shape[-1])) for f in frames])


def supports_exact_batching(model: Any) -> bool:
    """True for a PyTorch group-norm model of a type whose code masks padded frames (see module doc)."""
    config = getattr(model, "config", None)
    return (getattr(config, "feat_extract_norm", None) == "group" and config.model_type in EXACT_WITH_MASK
            and hasattr(getattr(model, "base_model", None), "feature_extractor"))


@contextmanager
def clip_lengths(model: Any, lengths: Sequence[int]) -> Iterator[None]:
    """Within this block, `model`'s feature encoder encodes batch row i from its first `lengths[i]` samples
    alone (pass the model an attention mask too). Not thread-safe: one batch at a time per model."""
    encoder = model.base_model.feature_extractor
    encoder.forward = _PerClipForward(encoder.forward, list(lengths))
    try:
        yield
    finally:
        del encoder.forward  # the class's own forward again; weights and state dict were never touched


def per_clip_encoder_needed(model: Any, extractor: Any) -> bool:
    """True where padding would change the output and the per-clip encoder makes batching exact."""
    from audioclf.features import padding_changes_output

    return padding_changes_output(extractor) and supports_exact_batching(model)


def run_batch(model: Any, extractor: Any, waves: Sequence[Any], per_clip_encoder: bool, **kwargs: Any) -> tuple[Any, Any]:
    """The model's outputs on one batch of waveforms (`kwargs` go to the model), and the features it got."""
    from audioclf.features import extract_features

    if not per_clip_encoder:
        features = extract_features(extractor, waves)
        return model(**features, **kwargs), features
    features = extract_features(extractor, waves, attention_mask=True)
    with clip_lengths(model, [len(wave) for wave in waves]):
        return model(**features, **kwargs), features

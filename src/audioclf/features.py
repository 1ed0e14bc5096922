"""Features per model: the checkpoint's own feature extractor, called one way everywhere (train, predict, serve)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from transformers import BatchFeature, FeatureExtractionMixin


def load_feature_extractor(name_or_path: str, trust_remote_code: bool = False) -> FeatureExtractionMixin:
    from transformers import AutoFeatureExtractor

    from audioclf.presets import preset_path

    source = preset_path(name_or_path) or name_or_path
    return AutoFeatureExtractor.from_pretrained(str(source), trust_remote_code=trust_remote_code)


def sampling_rate(extractor: FeatureExtractionMixin) -> int:
    return int(extractor.sampling_rate)


def is_whisper(extractor: FeatureExtractionMixin) -> bool:
    return type(extractor).__name__ == "WhisperFeatureExtractor"


def pads_to_fixed_length(extractor: FeatureExtractionMixin) -> bool:
    """Whisper (its context window) and AST (its max_length frames) pad every clip to one size."""
    return is_whisper(extractor) or type(extractor).__name__ == "ASTFeatureExtractor"


def longest_input_seconds(extractor: FeatureExtractionMixin) -> float | None:
    """Seconds of audio the extractor keeps (it truncates the rest): Whisper's context, AST's max_length frames
    of 10 ms; None where any length passes through."""
    if is_whisper(extractor):
        return extractor.n_samples / sampling_rate(extractor)
    if type(extractor).__name__ == "ASTFeatureExtractor":
        return extractor.max_length * 0.01  # its Kaldi filter bank shifts 10 ms per frame
    return None


def padding_changes_output(extractor: FeatureExtractionMixin) -> bool:
    """True for wav2vec2-base-style checkpoints: zero padding without an attention mask changes the
    model's output (group norm over time), so such clips may only be batched with equal-length ones."""
    return not pads_to_fixed_length(extractor) and not getattr(extractor, "return_attention_mask", False)


def extract_features(extractor: FeatureExtractionMixin, waves: Sequence[np.ndarray],
                     attention_mask: bool | None = None) -> BatchFeature:
    """Turn 1-D float32 waveforms at the extractor's rate into one padded batch of model inputs, with an
    attention mask where the extractor gives one by default or `attention_mask` asks for it."""
    kwargs: dict[str, Any] = {"sampling_rate": sampling_rate(extractor), "return_tensors": "pt"}
    if not pads_to_fixed_length(extractor):
        kwargs["padding"] = True  # dynamic padding to the batch's longest clip
        default = bool(getattr(extractor, "return_attention_mask", False))
        kwargs["return_attention_mask"] = default if attention_mask is None else attention_mask
    return extractor(list(waves), **kwargs)


def set_whisper_context(extractor: FeatureExtractionMixin, seconds: int) -> None:
    """Make a Whisper extractor pad/truncate to `seconds` instead of 30 s (model side: models.py)."""
    extractor.chunk_length = seconds
    extractor.n_samples = seconds * sampling_rate(extractor)
    extractor.nb_max_frames = extractor.n_samples // extractor.hop_length


def set_whisper_padding(extractor: FeatureExtractionMixin, side: str) -> bool:
    """Make a Whisper extractor fill its context with silence on `side` ("right": after the clip, its default;
    "left": before it). Saved with the extractor, so the stock pipeline pads the same way. False, changing
    nothing, for other extractors (their models expect right padding under an attention mask)."""
    if not is_whisper(extractor):
        return False
    extractor.padding_side = side
    return True

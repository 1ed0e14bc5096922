"""Exact batching for wav2vec2-base-style checkpoints: the first convolution's group norm is taken over
each clip's own frames, the rest of the model runs under an attention mask, and the scores equal
one-clip-at-a-time, in PyTorch and in the ONNX export alike.

Why by hand: in these checkpoints (`feat_extract_norm="group"`) the first convolution's group norm spans
the whole input, so zero padding changes every frame, and transformers offers no way to pad them exactly.
Only that norm needs the clip's length: the convolutions have no padding, so real frames never see
padded samples, and after the feature encoder the model's own code masks padded frames (positional
convolution, attention, the head's mean pooling).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Sequence

from audioclf.models import forwards_replaced

# Model types whose code after the feature encoder masks padded frames exactly (tests/test_exact_batching.py
# checks each). SEW is left out: its squeeze pooling averages a clip's last frames with padding.
EXACT_WITH_MASK = ("wav2vec2", "hubert", "wavlm", "unispeech", "unispeech-sat")


class _LengthAwareEncoderForward:
    """Stands in for a feature encoder's `forward`: the first layer's group norm (one group per channel)
    is computed over each row's own frames only; the other layers run as they are."""

    def __init__(self, encoder: Any, lengths: Any) -> None:
        self.encoder = encoder
        self.lengths = lengths

    def __call__(self, input_values: Any) -> Any:
        first, *rest = self.encoder.conv_layers
        hidden = _masked_group_norm_layer(first, input_values[:, None], self.lengths)
        for layer in rest:
            hidden = layer(hidden)
        return hidden


def _masked_group_norm_layer(layer: Any, samples: Any, lengths: Any) -> Any:
    """conv -> group norm over the frames that see only real samples -> activation."""
    import torch

    frames = layer.conv(samples)
    valid = real_frame_counts(layer.conv, lengths).to(frames.device)
    mask = (torch.arange(frames.shape[-1], device=frames.device)[None, :] < valid[:, None]).to(frames.dtype)
    mask = mask[:, None, :]
    count = mask.sum(dim=-1, keepdim=True)
    mean = (frames * mask).sum(dim=-1, keepdim=True) / count
    variance = (((frames - mean) * mask) ** 2).sum(dim=-1, keepdim=True) / count
    norm = layer.layer_norm
    normed = (frames - mean) / torch.sqrt(variance + norm.eps)
    return layer.activation(normed * norm.weight[None, :, None] + norm.bias[None, :, None])


def real_frame_counts(conv: Any, lengths: Any) -> Any:
    """Per row, how many output frames of an unpadded 1-D convolution see only its first `lengths` samples."""
    import torch

    return torch.div(torch.as_tensor(lengths) - conv.kernel_size[0], conv.stride[0], rounding_mode="floor") + 1


def supports_exact_batching(model: Any) -> bool:
    """True for a PyTorch group-norm model of a type whose code masks padded frames (see module doc)."""
    import torch

    config = getattr(model, "config", None)
    if getattr(config, "feat_extract_norm", None) != "group" or config.model_type not in EXACT_WITH_MASK:
        return False
    encoder = getattr(getattr(model, "base_model", None), "feature_extractor", None)
    norm = getattr(encoder.conv_layers[0], "layer_norm", None) if encoder is not None else None
    return isinstance(norm, torch.nn.GroupNorm) and norm.num_groups == norm.num_channels


@contextmanager
def clip_lengths(model: Any, lengths: Any) -> Iterator[None]:
    """Within this block, `model`'s feature encoder treats batch row i as its first `lengths[i]` samples
    (a sequence or a tensor; pass the model an attention mask too). Not thread-safe: one batch at a time."""
    import torch

    with forwards_replaced([model.base_model.feature_extractor],
                           lambda encoder: _LengthAwareEncoderForward(encoder, torch.as_tensor(lengths))):
        yield


def length_aware_encoder_needed(model: Any, extractor: Any) -> bool:
    """True where padding would change the output and the length-aware first norm makes batching exact."""
    from audioclf.features import padding_changes_output

    return padding_changes_output(extractor) and supports_exact_batching(model)


def run_batch(model: Any, extractor: Any, waves: Sequence[Any], length_aware_encoder: bool,
              precision: str = "float32", **kwargs: Any) -> tuple[Any, Any]:
    """The model's outputs on one batch of waveforms (`kwargs` go to the model), and the features it got, on
    the model's device. `precision` bf16 or fp16: the model (not the feature extraction, which Whisper's does
    in torch) under that autocast. A wav2vec2-family feature encoder on the CPU runs time-major
    (`encoder_forward`), its positional convolution cropped to a short batch's taps (`positional_conv`)."""
    from audioclf.features import extract_features
    from audioclf.inference.positional_conv import cropped_positional_conv
    from audioclf.models import autocast, model_device

    features = extract_features(extractor, waves, attention_mask=True if length_aware_encoder else None)
    features = features.to(model_device(model))
    lengths = [len(wave) for wave in waves] if length_aware_encoder else None
    with encoder_forward(model, lengths), cropped_positional_conv(model), autocast(model, precision):
        return model(**features, **kwargs), features


@contextmanager
def encoder_forward(model: Any, lengths: Sequence[int] | None) -> Iterator[None]:
    """Within this block, the feature encoder runs over each row's own `lengths` where given, time-major
    (`time_major`) where that reproduces it and its weights are on the CPU, where that is faster (elsewhere
    the stock forward, which the GPUs' libraries already run fast)."""
    from audioclf.inference.time_major import supports_time_major, time_major_encoder_forward

    encoder = getattr(getattr(model, "base_model", None), "feature_extractor", None)
    if not (supports_time_major(encoder) and next(encoder.parameters()).device.type == "cpu"):
        with clip_lengths(model, lengths) if lengths is not None else nullcontext():
            yield
        return
    with forwards_replaced([encoder], lambda module: functools.partial(time_major_encoder_forward, module,
                                                                       lengths=lengths)):
        yield

"""A time-major (channels-last) forward of the wav2vec2 family's convolutional feature encoder, for the CPU.

Why by hand: on a CPU, torch's oneDNN bfloat16 Conv1d over the raw waveform (one input channel) runs at a few
GFLOP/s, and every layer writes its output channel-major, which bfloat16 transposes make slow: in the
wav2vec2-base config of `bench/inference.py` the feature encoder took 60% of a batch's time. Here the first
convolution is a matrix product over a strided view of the samples, its group norm is taken along time, and
the other convolutions run as 2-D ones in channels-last layout, which oneDNN does fast. In float32 too: the
same config's encoder took 402 ms per batch of 16 clips of 0.25-1 s against the stock 670 ms (timing,
Intel Xeon with AMX). Same weights, same arithmetic up to rounding order; transformers has no such switch.
"""

from __future__ import annotations

from typing import Any

from audioclf.inference.exact_batching import real_frame_counts


def supports_time_major(encoder: Any) -> bool:
    """True for a feature encoder this forward reproduces: a group-norm first layer (one group per channel)
    or no norm at all, no norm after it, and plain convolutions (no padding, dilation or groups) from one
    input channel."""
    import torch

    layers = list(getattr(encoder, "conv_layers", []))
    if not layers or layers[0].conv.in_channels != 1:
        return False
    first_norm = getattr(layers[0], "layer_norm", None)
    if first_norm is not None and not (isinstance(first_norm, torch.nn.GroupNorm)
                                       and first_norm.num_groups == first_norm.num_channels):
        return False
    return all(_plain_conv(layer.conv) and (i == 0 or not hasattr(layer, "layer_norm"))
               for i, layer in enumerate(layers))


def _plain_conv(conv: Any) -> bool:
    import torch

    return (isinstance(conv, torch.nn.Conv1d) and conv.padding == (0,) and conv.dilation == (1,)
            and conv.groups == 1)


def time_major_encoder_forward(encoder: Any, input_values: Any, lengths: Any = None) -> Any:
    """The encoder's output ([batch, channels, frames], a channels-last view) on `input_values` [batch,
    samples]. With `lengths` (samples per row), the first layer's group norm covers each row's own frames."""
    first, *rest = encoder.conv_layers
    hidden = _first_layer(first, input_values, lengths)  # [batch, channels, 1, frames], channels-last
    for layer in rest:
        hidden = layer.activation(_conv2d_channels_last(layer.conv, hidden))
    return hidden.squeeze(2)


def _first_layer(layer: Any, input_values: Any, lengths: Any) -> Any:
    """conv (a product over overlapping windows of the samples) -> group norm over each row's real frames
    -> activation."""
    conv = layer.conv
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    frames = input_values.unfold(-1, kernel, stride) @ conv.weight[:, 0, :].T  # [batch, frames, channels]
    if conv.bias is not None:
        frames = frames + conv.bias
    hidden = frames.transpose(1, 2).unsqueeze(2)  # [batch, channels, 1, frames], channels-last in memory
    norm = getattr(layer, "layer_norm", None)
    if norm is not None and lengths is None:
        hidden = norm(hidden)
    elif norm is not None:
        hidden = _group_norm_per_row(hidden, norm, real_frame_counts(conv, lengths))
    return layer.activation(hidden)


def _group_norm_per_row(hidden: Any, norm: Any, valid: Any) -> Any:
    """The norm of each row over its first `valid[row]` frames, those that see only real samples; the frames
    after them (which no real frame of a later layer sees: the convolutions have no padding) are zeros."""
    import torch

    out = torch.zeros_like(hidden)
    for row, count in enumerate(valid.tolist()):
        out[row, :, :, :count] = norm(hidden[row : row + 1, :, :, :count])[0]
    return out


def _conv2d_channels_last(conv: Any, hidden: Any) -> Any:
    import torch

    weight = conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    return torch.nn.functional.conv2d(hidden, weight, conv.bias, stride=(1, conv.stride[0]))

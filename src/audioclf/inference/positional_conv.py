"""The wav2vec2 family's positional convolution cut to the taps that can meet a batch shorter than its kernel.

Why by hand: the convolution (kernel 128, padding 64 in wav2vec2-base) multiplies zero padding with most of
its taps when a batch has fewer frames than the kernel (an FSDD clip has about 25). Only the 2T - 1 taps that
can reach T frames are kept, with the padding cut to match, which is exact. On the wav2vec2-base config, batch
16 of 25 frames: 54 against 22 ms in float32, 29 against 10 ms under bfloat16 autocast, and 151 against 71 ms
forward and backward in training (timings on an Intel Xeon with AMX). Used by prediction (`run_batch`) and
fine-tuning (`training/cpu_forwards.py`). The ONNX export cannot crop (its length is dynamic); it writes the
convolution as a 2-D one, which onnxruntime's CPU runs several times faster on short batches
(`onnx.convolutions_as_2d`).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Iterator

from audioclf.inference.exact_batching import EXACT_WITH_MASK
from audioclf.models import forwards_replaced


@contextmanager
def cropped_positional_conv(model: Any) -> Iterator[None]:
    """Within this block, `model`'s positional convolution (wav2vec2 family, on the CPU) runs cropped to a short
    batch's taps; other models and devices are left as they are, and so is a block within another (fine-tuning's
    holds it for the whole run). Not thread-safe: one batch at a time."""
    module = positional_conv(model)
    if module is None or "forward" in vars(module) or module.conv.weight.device.type != "cpu":
        yield
        return
    with forwards_replaced([module], lambda conv: functools.partial(cropped_positional_conv_forward, conv)):
        yield


def positional_conv(model: Any) -> Any:
    """The wav2vec2-family positional convolution module that `cropped_positional_conv_forward` reproduces, or
    None (other models, and an `OnnxModel`)."""
    import torch

    if getattr(getattr(model, "config", None), "model_type", None) not in EXACT_WITH_MASK:
        return None
    module = getattr(getattr(getattr(model, "base_model", None), "encoder", None), "pos_conv_embed", None)
    conv = getattr(module, "conv", None)
    if not isinstance(conv, torch.nn.Conv1d) or getattr(module, "batch_norm", None) is not None:
        return None
    kernel = conv.kernel_size[0]
    plain = conv.stride == (1,) and conv.dilation == (1,) and conv.padding == (kernel // 2,)
    removes = getattr(getattr(module, "padding", None), "num_pad_remove", None)
    return module if plain and removes == (1 if kernel % 2 == 0 else 0) else None


def cropped_positional_conv_forward(module: Any, hidden: Any) -> Any:
    """The module's forward on [batch, frames, channels]; with fewer frames T than half the kernel, only the
    2T - 1 middle taps are used, over T - 1 frames of padding, the only ones that meet a real frame."""
    import torch

    conv, frames = module.conv, hidden.shape[1]
    half = conv.kernel_size[0] // 2
    channels_first = hidden.transpose(1, 2)
    if 2 * frames - 1 >= conv.kernel_size[0]:
        out = module.padding(conv(channels_first))
    else:
        taps = conv.weight[:, :, half - frames + 1: half + frames]
        out = torch.nn.functional.conv1d(channels_first, taps, conv.bias, padding=frames - 1, groups=conv.groups)
    return module.activation(out).transpose(1, 2)

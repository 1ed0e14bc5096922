"""Faster CPU forwards for fine-tuning: dropout's random mask, and the wav2vec2 family's positional convolution
on inputs shorter than its kernel. Both give what the stock forwards give (the mask in distribution).

Why by hand (no library offers either): on a CPU, torch draws dropout's mask one 32-bit random number per
element (`bernoulli_`); on the wav2vec2-base config 10% of a fine-tuning step went there (torch.profiler,
batches of 16 FSDD clips). Here each element takes 16 random bits, four from every 64-bit draw. And the
positional convolution (kernel 128, padding 64) multiplies zero padding with most of its taps when a batch
has fewer frames than the kernel (an FSDD clip has about 25): only the 2T - 1 taps that can reach T frames
are kept, with the padding cut to match, which is exact. The wav2vec2-base config's fine-tuning on 160 FSDD
clips (the audioclf leg of `bench/training.py`, run alone) went from 55.6 to 52.7 s with the first and to
50.0 s with both (one scratch run each, Intel Xeon with AMX).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Iterator

from audioclf.inference.exact_batching import EXACT_WITH_MASK

MASK_STEPS = 1 << 16  # dropout's keep probability is a multiple of 2^-16 (0.1 -> 6554 / 65536 dropped)


@contextmanager
def faster_cpu_forwards(model: Any) -> Iterator[None]:
    """Within this block, `model`'s dropout modules run this module's forward on CPU tensors (elsewhere their
    own), and its positional convolution (wav2vec2 family) this module's on any; outside it, their own."""
    patched = [(module, functools.partial(_dropout, module)) for module in _dropouts(model)]
    position = _positional_conv(model)
    if position is not None:
        patched.append((position, functools.partial(_positional_conv_forward, position)))
    for module, forward in patched:
        module.forward = forward
    try:
        yield
    finally:
        for module, _ in patched:
            del module.forward  # the class's own forward again


def _dropouts(model: Any) -> list[Any]:
    import torch

    return [module for module in model.modules() if type(module) is torch.nn.Dropout and 0 < module.p < 1]


def _dropout(module: Any, hidden: Any) -> Any:
    """Dropout with a mask from 16 random bits per element, scaled by the exact keep probability."""
    import torch

    if not module.training or hidden.device.type != "cpu":
        return torch.nn.functional.dropout(hidden, module.p, module.training, module.inplace)
    dropped = round(module.p * MASK_STEPS)
    draws = torch.empty((hidden.numel() + 3) // 4, dtype=torch.int64).random_(-(1 << 63), None)  # all 64 bits
    keep = draws.view(torch.int16)[: hidden.numel()].view(hidden.shape) >= dropped - MASK_STEPS // 2
    return hidden * (keep * (MASK_STEPS / (MASK_STEPS - dropped))).to(hidden.dtype)


def _positional_conv(model: Any) -> Any:
    """The wav2vec2-family positional convolution module this forward reproduces, or None."""
    import torch

    if getattr(model.config, "model_type", None) not in EXACT_WITH_MASK:
        return None
    module = getattr(getattr(model.base_model, "encoder", None), "pos_conv_embed", None)
    conv = getattr(module, "conv", None)
    if not isinstance(conv, torch.nn.Conv1d) or getattr(module, "batch_norm", None) is not None:
        return None
    kernel = conv.kernel_size[0]
    plain = conv.stride == (1,) and conv.dilation == (1,) and conv.padding == (kernel // 2,)
    removes = getattr(getattr(module, "padding", None), "num_pad_remove", None)
    return module if plain and removes == (1 if kernel % 2 == 0 else 0) else None


def _positional_conv_forward(module: Any, hidden: Any) -> Any:
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

"""Faster CPU forwards for fine-tuning: dropout's random mask, and (from `inference/positional_conv.py`) the
wav2vec2 family's positional convolution on batches shorter than its kernel. Both give what the stock forwards
give (the mask in distribution).

Why the dropout by hand (no library offers it): on a CPU, torch draws dropout's mask one 32-bit random number
per element (`bernoulli_`); on the wav2vec2-base config 10% of a fine-tuning step went there (torch.profiler,
batches of 16 FSDD clips). Here each element takes 16 random bits, four from every 64-bit draw. The
wav2vec2-base config's fine-tuning on 160 FSDD clips (the audioclf leg of `bench/training.py`, run alone) went
from 55.6 to 52.7 s with the dropout and to 50.0 s with both (one run each, Intel Xeon with AMX).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Iterator

from audioclf.inference.positional_conv import cropped_positional_conv
from audioclf.models import forwards_replaced

MASK_STEPS = 1 << 16  # dropout's keep probability is a multiple of 2^-16 (0.1 -> 6554 / 65536 dropped)


@contextmanager
def faster_cpu_forwards(model: Any) -> Iterator[None]:
    """Within this block, `model`'s dropout modules run this module's forward on CPU tensors (elsewhere their
    own), and its positional convolution (wav2vec2 family) is cropped to short batches; outside it, their own."""
    with forwards_replaced(_dropouts(model), lambda module: functools.partial(_dropout, module)), \
            cropped_positional_conv(model):
        yield


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

"""Fine-tuning's CPU forwards: the 16-bit dropout mask drops at the asked rate, keeps the expectation, and leaves
evaluation alone; the positional convolution is cropped within the block (tests/test_positional_conv.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audioclf.inference import Classifier
from audioclf.inference.positional_conv import positional_conv
from audioclf.training.cpu_forwards import _dropout, faster_cpu_forwards


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_mask_drops_at_the_rate_and_keeps_the_mean(p: float) -> None:
    module = torch.nn.Dropout(p).train()
    hidden = torch.full((1000, 1001), 2.0, requires_grad=True)  # an odd count: the last draw is cut
    out = _dropout(module, hidden)
    dropped = (out == 0).double().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / hidden.numel()) ** 0.5
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 2 / (1 - round(p * 65536) / 65536)))
    out.sum().backward()
    torch.testing.assert_close(hidden.grad, out.detach() / 2)  # the gradient is the same mask, scaled


def test_dropout_rows_differ_and_repeat_with_the_seed() -> None:
    module = torch.nn.Dropout(0.1).train()
    hidden = torch.ones(4, 4096)
    torch.manual_seed(3)
    first = _dropout(module, hidden)
    torch.manual_seed(3)
    torch.testing.assert_close(_dropout(module, hidden), first)
    assert not torch.equal(first[0] == 0, first[1] == 0)


def test_forwards_apply_within_the_block_and_evaluation_is_untouched(tiny_wav2vec2: Path) -> None:
    model = Classifier.load(tiny_wav2vec2).model
    dropouts = [module for module in model.modules() if type(module) is torch.nn.Dropout and module.p > 0]
    assert dropouts
    samples = torch.randn(2, 4000)
    with torch.inference_mode():
        stock = model(samples).logits
        with faster_cpu_forwards(model):
            assert all("forward" in vars(module) for module in [*dropouts, positional_conv(model)])
            torch.testing.assert_close(model(samples).logits, stock, atol=1e-5, rtol=1e-4)  # eval: no dropout
            model.train()
            torch.manual_seed(0)
            trained = model(samples).logits
            model.eval()
    assert not torch.allclose(trained, stock)
    assert not any("forward" in vars(module) for module in [*dropouts, positional_conv(model)])

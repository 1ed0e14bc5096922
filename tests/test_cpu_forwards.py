"""Fine-tuning's CPU forwards: the cropped positional convolution equals the stock one, values and gradients;
the 16-bit dropout mask drops at the asked rate, keeps the expectation, and leaves evaluation alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import save_tiny

from audioclf.inference import Classifier
from audioclf.inference.exact_batching import EXACT_WITH_MASK
from audioclf.training.cpu_forwards import _dropout, _positional_conv, _positional_conv_forward, faster_cpu_forwards


def _stock_and_ours(module: torch.nn.Module, frames: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Output and gradients (input, conv parameters) of the stock forward and of ours on `frames` frames."""
    hidden = torch.randn(3, frames, module.conv.in_channels)
    results = []
    for forward in (module.forward, lambda x: _positional_conv_forward(module, x)):
        given = hidden.clone().requires_grad_()
        out = forward(given)
        weights = [param for param in module.parameters()]
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum(),
                                    [given, *weights])
        results.append([out.detach(), *grads])
    return results[0], results[1]


@pytest.mark.parametrize("kind", EXACT_WITH_MASK)
@pytest.mark.parametrize("frames", [1, 5, 8, 20])
def test_cropped_positional_conv_equals_the_stock_one(kind: str, frames: int, tmp_path: Path) -> None:
    module = _positional_conv(Classifier.load(save_tiny(kind, tmp_path / kind)).model)
    assert module is not None and module.conv.kernel_size == (16,)
    stock, ours = _stock_and_ours(module, frames)
    for expected, got in zip(stock, ours):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_cropped_positional_conv_with_an_odd_kernel(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Config
    from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2PositionalConvEmbedding

    module = Wav2Vec2PositionalConvEmbedding(Wav2Vec2Config(hidden_size=32, num_conv_pos_embeddings=15,
                                                            num_conv_pos_embedding_groups=2))
    for frames in (3, 7, 9):
        stock, ours = _stock_and_ours(module, frames)
        for expected, got in zip(stock, ours):
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_models_without_that_convolution_keep_theirs(tmp_path: Path) -> None:
    assert _positional_conv(Classifier.load(save_tiny("data2vec-audio", tmp_path / "d2v")).model) is None


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
            assert all("forward" in vars(module) for module in dropouts)
            torch.testing.assert_close(model(samples).logits, stock, atol=1e-5, rtol=1e-4)  # eval: no dropout
            model.train()
            torch.manual_seed(0)
            trained = model(samples).logits
            model.eval()
    assert not torch.allclose(trained, stock)
    assert not any("forward" in vars(module) for module in [*dropouts, _positional_conv(model)])

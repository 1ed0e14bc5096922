"""The cropped positional convolution (prediction and fine-tuning) equals the stock one, values and gradients,
and prediction uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone
from tiny_models import save_tiny

from audioclf.inference import Classifier
from audioclf.inference import positional_conv as pc
from audioclf.inference.exact_batching import EXACT_WITH_MASK, run_batch
from audioclf.inference.positional_conv import cropped_positional_conv_forward, positional_conv


def _stock_and_ours(module: torch.nn.Module, frames: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Output and gradients (input, conv parameters) of the stock forward and of ours on `frames` frames."""
    hidden = torch.randn(3, frames, module.conv.in_channels)
    results = []
    for forward in (module.forward, lambda x: cropped_positional_conv_forward(module, x)):
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
    module = positional_conv(Classifier.load(save_tiny(kind, tmp_path / kind)).model)
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
    assert positional_conv(Classifier.load(save_tiny("data2vec-audio", tmp_path / "d2v")).model) is None


def test_prediction_batches_use_it_and_keep_the_scores(tiny_wav2vec2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clf = Classifier.load(tiny_wav2vec2)
    waves = [tone(300 + 150 * i, seconds, 16000, np.random.default_rng(i)) for i, seconds in enumerate((0.03, 0.04))]
    frames = []
    monkeypatch.setattr(pc, "cropped_positional_conv_forward",
                        lambda module, hidden: frames.append(hidden.shape[1]) or cropped_positional_conv_forward(
                            module, hidden))
    with torch.inference_mode():
        ours = run_batch(clf.model, clf.extractor, waves, length_aware_encoder=True)[0].logits
        monkeypatch.setattr(pc, "cropped_positional_conv_forward", lambda module, hidden: type(module).forward(
            module, hidden))
        stock = run_batch(clf.model, clf.extractor, waves, length_aware_encoder=True)[0].logits
    assert frames == [7]  # the longer clip's frames: 13 taps of the kernel's 16
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=1e-4)
    assert "forward" not in vars(positional_conv(clf.model))


def test_a_block_within_another_leaves_the_outer_ones_forward(tiny_wav2vec2: Path) -> None:
    model = Classifier.load(tiny_wav2vec2).model
    module = positional_conv(model)
    with pc.cropped_positional_conv(model):
        with pc.cropped_positional_conv(model):
            pass
        assert "forward" in vars(module)
    assert "forward" not in vars(module)

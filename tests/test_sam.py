"""Sharpness-aware fine-tuning (--sam-rho): the gradient is the stepped weights', the weights come back, it trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_tone_folder
from tiny_models import save_tiny

import audioclf
from audioclf.training import finetune
from audioclf.training.sam import sharpness_aware_backward


def test_the_gradient_is_taken_rho_along_the_normalised_gradient_and_added_to_earlier_ones() -> None:
    torch.manual_seed(0)
    layer, unused = torch.nn.Linear(3, 2), torch.nn.Parameter(torch.ones(2))
    x, rho = torch.randn(5, 3), 0.3

    def loss_at(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return ((x @ weight.T + bias) ** 2).sum()

    def backward() -> torch.Tensor:
        loss = loss_at(layer.weight, layer.bias)
        loss.backward()
        return loss.detach()

    start = [layer.weight.detach().clone(), layer.bias.detach().clone()]
    earlier = torch.full_like(layer.bias, 7.0)
    layer.bias.grad = earlier.clone()  # as if an earlier micro-batch of the same update had run
    loss = sharpness_aware_backward(backward, [layer.weight, layer.bias, unused], rho)

    at_start = [w.clone().requires_grad_() for w in start]
    grads = torch.autograd.grad(loss_at(*at_start), at_start)
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    stepped = [(w + rho * g / norm).detach().requires_grad_() for w, g in zip(start, grads)]
    expected = torch.autograd.grad(loss_at(*stepped), stepped)
    assert torch.allclose(layer.weight.grad, expected[0], atol=1e-5)
    assert torch.allclose(layer.bias.grad, expected[1] + earlier, atol=1e-5)
    assert not torch.allclose(expected[0], grads[0], atol=1e-3)  # the step changed the gradient
    assert torch.equal(layer.weight, start[0]) and torch.equal(layer.bias, start[1])  # the weights came back
    assert unused.grad is None and torch.allclose(loss, loss_at(*start))


def test_sam_rho_fine_tunes_with_two_passes_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[int] = []

    def counted(backward, params, rho):
        def counting_backward():
            passes.append(1)
            return backward()
        return sharpness_aware_backward(counting_backward, params, rho)

    monkeypatch.setattr(finetune, "sharpness_aware_backward", counted)
    tones = write_tone_folder(tmp_path / "tones", per_label=12, rate=8000)
    run = audioclf.train(data=str(tones), model=str(save_tiny("wav2vec2", tmp_path / "base")), strategy="finetune",
                         output=str(tmp_path / "run"), epochs=3, learning_rate=2e-3, sam_rho=0.05, batch_size=8,
                         gradient_accumulation_steps=1, warmup_ratio=0.0, freeze_feature_encoder=False)
    state = json.loads(next((run / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert len(passes) == 2 * state["global_step"] > 0
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "complete" and status["accuracy"] >= 0.8
    assert yaml.safe_load((run / "config.yaml").read_text())["sam_rho"] == 0.05  # saved with the run
    assert audioclf.Classifier.load(run).predict([str(next(tones.rglob("*.wav")))])[0][0]["label"]


def test_sam_rho_is_checked() -> None:
    with pytest.raises(audioclf.ConfigError, match="sam_rho=-0.1 .*radius"):
        audioclf.TrainConfig(data="x", sam_rho=-0.1).validate()
    audioclf.TrainConfig(data="x", sam_rho=0.05).validate()

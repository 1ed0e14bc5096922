"""--device: auto picks the CPU here, a GPU that is not there is one clear error, and everything runs on the CPU
when asked to. (The CUDA path itself runs in bench/gpu_check.py, on a machine with a GPU.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone

from audioclf.cli import main
from audioclf.config import ConfigError, TrainConfig
from audioclf.inference import Classifier
from audioclf.models import resolve_device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a CUDA GPU")


@no_gpu
def test_auto_is_the_cpu_without_a_gpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_a_gpu_that_is_not_there_is_a_clear_error(spec: str) -> None:
    with pytest.raises(ConfigError, match=f"--device {spec}: torch sees no CUDA GPU here"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "CPU", ""])
def test_unknown_device_names_are_refused_with_the_choices(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected auto .*cpu, cuda or cuda:N"):
        TrainConfig.build({"device": spec})


@no_gpu
def test_cli_refuses_a_missing_gpu_and_fp16_on_the_cpu(trained_run: tuple[Path, Path], capsys) -> None:
    run, data = trained_run
    clip = str(next(data.rglob("*.wav")))
    assert main(["predict", str(run), clip, "--device", "cuda"]) == 2
    assert "torch sees no CUDA GPU" in capsys.readouterr().err
    assert main(["predict", str(run), clip, "--device", "cpu", "--fp16"]) == 2
    assert "--fp16 needs a CUDA device" in capsys.readouterr().err
    assert main(["predict", str(run), clip, "--bf16", "--fp16"]) == 2
    assert "pick one" in capsys.readouterr().err
    assert main(["predict", str(run), clip, "--device", "cpu"]) == 0


def test_classifier_on_the_cpu_scores_as_auto_does(trained_run: tuple[Path, Path]) -> None:
    run, _ = trained_run
    wave = tone(660.0, 0.7, 16000, np.random.default_rng(2))
    cpu = Classifier.load(run, device="cpu")
    assert next(cpu.model.parameters()).device == torch.device("cpu")
    np.testing.assert_array_equal(cpu.probabilities([wave]), Classifier.load(run).probabilities([wave]))


@pytest.mark.parametrize(("spec", "visible"), [("cuda", 2), ("auto", 4), ("cuda:1", 2)])
def test_training_refuses_what_one_process_cannot_train_on(monkeypatch: pytest.MonkeyPatch, spec: str,
                                                           visible: int) -> None:
    from audioclf.training.trainer import _training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError, match=f"{visible} GPUs are visible.*CUDA_VISIBLE_DEVICES=N.*torchrun "
                                          f"--nproc_per_node {visible}"):
        _training_device(spec)

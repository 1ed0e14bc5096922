"""`audioclf train` under torchrun: 2 CPU processes (gloo), one run folder written by rank 0."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tone_folder

import audioclf
from audioclf.inference import Classifier

pytestmark = pytest.mark.slow  # make test-all

HYPER = dict(strategy="finetune", epochs=12, batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-3,
             warmup_ratio=0.0,
             freeze_feature_encoder=False)


def _torchrun_train(model: Path, data: Path, run: Path, *flags: str) -> subprocess.CompletedProcess:
    """`audioclf train` in 2 torchrun CPU processes; skips where torchrun is missing, fails on a non-zero exit."""
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    command = [str(torchrun), "--standalone", "--nproc_per_node=2", shutil.which("audioclf") or
               str(Path(sys.executable).parent / "audioclf"), "train", "--data", str(data), "--model",
               str(model), "--output", str(run), *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_processes_train_one_complete_run(tiny_wav2vec2: Path, tmp_path: Path) -> None:
    data = write_tone_folder(tmp_path / "tones", per_label=16)
    run = tmp_path / "ddp"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in HYPER.items() if not isinstance(v, bool)]
    done = _torchrun_train(tiny_wav2vec2, data, run, "--no-freeze-feature-encoder", *flags)
    assert done.stdout.count("run folder:") == 1  # only rank 0 reports
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "complete"
    newest = max(run.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((newest / "trainer_state.json").read_text())
    train_size = status["num_train_clips"]
    assert state["global_step"] == HYPER["epochs"] * -(-train_size // (2 * HYPER["batch_size"]))  # data sharded

    single = audioclf.train(data=str(data), model=str(tiny_wav2vec2), output=str(tmp_path / "single"), **HYPER)
    ddp_accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
    single_accuracy = json.loads((single / "metrics.json").read_text())["accuracy"]
    assert ddp_accuracy >= 0.8 and abs(ddp_accuracy - single_accuracy) <= 0.2, (ddp_accuracy, single_accuracy)
    clip = sorted(data.rglob("*.wav"))[0]
    assert Classifier.load(run).predict([clip], top_k=1)[0][0]["label"] in {"low", "mid", "high"}


def test_two_processes_train_on_cached_encoder_outputs(tiny_wav2vec2: Path, tmp_path: Path) -> None:
    """The default frozen feature encoder: each process computes its outputs once and trains on them."""
    data = write_tone_folder(tmp_path / "tones", per_label=8)
    run = tmp_path / "ddp"
    done = _torchrun_train(tiny_wav2vec2, data, run, "--strategy", "finetune", "--epochs", "2", "--batch-size", "4",
                           "--gradient-accumulation-steps", "1")
    assert (done.stdout + done.stderr).count("computed once") == 1  # the cache was used; only rank 0 logs
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert Classifier.load(run).predict([sorted(data.rglob("*.wav"))[0]], top_k=1)[0][0]["label"]

"""Resume: a run killed with SIGKILL or stopped with Ctrl-C continues from its newest checkpoint."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_tone_folder

import audioclf
from audioclf.cli import main
from audioclf.inference import Classifier
from audioclf.runs import RunError

EPOCHS = 10
HYPER = dict(strategy="finetune", epochs=EPOCHS, batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-3,
             warmup_ratio=0.0, freeze_feature_encoder=False)


def train_command(data: Path, model: Path, output: Path) -> list[str]:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in HYPER.items() if not isinstance(value, bool)]
    return [str(Path(sys.executable).parent / "audioclf"), "train", "--data", str(data), "--model", str(model),
            "--output", str(output), "--no-freeze-feature-encoder", *flags]


def start_and_wait_for_checkpoint(command: list[str], output: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list(output.glob("checkpoints/checkpoint-*/trainer_state.json")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no checkpoint appeared: {process.communicate()[0][-2000:]}")
        time.sleep(0.05)
    return process


def eval_epochs(run: Path) -> list[float]:
    newest = max(run.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((newest / "trainer_state.json").read_text())["log_history"]
    return [entry["epoch"] for entry in history if "eval_loss" in entry]


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tone_folder(tmp_path_factory.mktemp("resume") / "tones", per_label=8)


def test_sigkilled_run_resumes_without_repeating_epochs(tones: Path, tiny_wav2vec2: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    process = start_and_wait_for_checkpoint(train_command(tones, tiny_wav2vec2, run), run)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    with pytest.raises(RunError, match="did not complete"):
        Classifier.load(run)
    done_before = len(eval_epochs(run))
    assert done_before < EPOCHS

    with caplog.at_level(logging.INFO, logger="audioclf"):
        assert main(["resume", str(run)]) == 0
    assert "resuming from checkpoint-" in caplog.text
    assert eval_epochs(run) == [float(e) for e in range(1, EPOCHS + 1)]  # each epoch evaluated exactly once
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "complete" and status["resumed"]

    uninterrupted = audioclf.train(data=str(tones), model=str(tiny_wav2vec2), output=str(tmp_path / "straight"),
                                   **HYPER)
    ours = json.loads((run / "metrics.json").read_text())["accuracy"]
    reference = json.loads((uninterrupted / "metrics.json").read_text())["accuracy"]
    assert abs(ours - reference) <= 0.2, (ours, reference)
    assert Classifier.load(run).predict([sorted(tones.rglob("*.wav"))[0]], top_k=1)[0][0]["label"] in {
        "low", "mid", "high"}


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tones: Path, tiny_wav2vec2: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    process = start_and_wait_for_checkpoint(train_command(tones, tiny_wav2vec2, run), run)
    saved_before = {p.name for p in run.glob("checkpoints/checkpoint-*")}
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-2000:]
    assert f"audioclf resume {run}" in output
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "interrupted"
    newest = max(run.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert newest.name not in saved_before or len(eval_epochs(run)) < EPOCHS  # stopped early, state saved
    assert main(["resume", str(run)]) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


def test_resume_refuses_finished_runs_and_non_runs(trained_run: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", str(trained_run[0])]) == 2
    assert "already complete" in capsys.readouterr().err
    assert main(["resume", str(tmp_path)]) == 2
    assert "no run to resume" in capsys.readouterr().err


def test_checkpoint_saves_skip_zip_checksums_and_load_back(tmp_path: Path) -> None:
    import zipfile

    import torch

    from audioclf.training.finetune import torch_save_without_crc32

    state = {"exp_avg": torch.randn(1000), "step": torch.tensor(3.0)}
    with torch_save_without_crc32():
        torch.save(state, tmp_path / "optimizer.pt")
    assert torch.serialization.get_crc32_options()  # restored
    with zipfile.ZipFile(tmp_path / "optimizer.pt") as archive:
        tensors = [entry for entry in archive.infolist() if "/data/" in entry.filename]
    assert tensors and all(entry.CRC == 0 for entry in tensors)
    torch.testing.assert_close(torch.load(tmp_path / "optimizer.pt"), state)

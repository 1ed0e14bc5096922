"""The real `audioclf` command on a tiny random model and synthesized clips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_tone_folder

from audioclf.cli import main

TRAIN_FLAGS = ["--epochs", "1", "--batch-size", "4", "--gradient-accumulation-steps", "1", "--learning-rate", "1e-3"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioclf.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, tiny_wav2vec2: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    data = write_tone_folder(root / "data", per_label=5)
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_wav2vec2), "epochs": 3, "seed": 3, "max_duration": 5}))
    result = run_cli("train", "--config", str(config), "--data", str(data), "--output", str(root / "run"),
                     *TRAIN_FLAGS)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "run folder" in result.stdout
    return root / "run", data


def test_train_writes_a_complete_run_folder(cli_run: tuple[Path, Path]) -> None:
    run, _ = cli_run
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json",
                 "confusion_matrix.png", "config.yaml", "README.md", "run.json"):
        assert (run / name).is_file(), name
    assert (run / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "macro_f1", "per_class", "num_eval_clips", "num_skipped"}
    assert set(metrics["per_class"]) == {"high", "low", "mid"}
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "complete"
    assert status["train_runtime_s"] > 0 and status["strategy"] == "auto"
    # 15 clips of 3 labels: auto keeps the probe, says why, and reports the validation score it judged by
    assert status["strategy_used"] == "probe" and "per label" in status["strategy_reason"]
    assert status["num_validation_clips"] == 3 and round(status["validation_accuracy"] * 3, 6) in {0, 1, 2, 3}
    assert "accuracy" in (run / "README.md").read_text()


def test_flags_override_yaml_which_overrides_defaults(cli_run: tuple[Path, Path]) -> None:
    run, _ = cli_run
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 1.0  # flag beat the YAML's 3
    assert saved["seed"] == 3 and saved["max_duration"] == 5.0  # from the YAML
    assert saved["test_size"] == 0.2  # default
    # how that invocation ran is in run.json, not in what `--config` replays
    assert not {"output", "overwrite", "push_to_hub", "device", "threads", "cache_dir"} & set(saved)
    assert json.loads((run / "run.json").read_text())["runtime"]["output"] == str(run)


def test_predict_json_reports_bad_files_and_predicts_the_rest(cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = cli_run
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a truncated WAV header
    clip = next((data / "mid").rglob("*.wav"))
    result = run_cli("predict", str(run), str(data / "low"), str(broken), str(clip), "--top-k", "2",
                     "--format", "json")
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    low = sorted(str(p) for p in (data / "low").rglob("*.wav"))
    assert [r["path"] for r in rows] == [*low, str(broken), str(clip)]  # input order, the failure in its place
    errors = [r for r in rows if "error" in r]
    assert [r["path"] for r in errors] == [str(broken)]
    good = [r for r in rows if "predictions" in r]
    assert len(good) == len(low) + 1
    assert all(len(r["predictions"]) == 2 and set(r["predictions"][0]) == {"label", "score"} for r in good)


def test_predict_csv_and_table(cli_run: tuple[Path, Path]) -> None:
    run, data = cli_run
    clip = next((data / "mid").rglob("*.wav"))
    csv_out = run_cli("predict", str(run), str(clip), "--format", "csv", "--top-k", "3")
    assert csv_out.returncode == 0
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0] == "path,rank,label,score,error" and len(lines) == 4
    table = run_cli("predict", str(run), str(clip))
    assert table.returncode == 0 and str(clip) in table.stdout
    assert table.stderr.strip() == ""  # one file: no progress bars, no load report


def test_evaluate_prints_and_writes_metrics(cli_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = cli_run
    code = main(["evaluate", str(run), "--data", str(data), "--output", str(tmp_path / "eval")])
    assert code == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_eval_clips"] == 15 and (tmp_path / "eval" / "confusion_matrix.png").is_file()


def test_existing_run_is_not_overwritten_without_flag(cli_run: tuple[Path, Path], capsys) -> None:
    run, data = cli_run
    before = (run / "model.safetensors").stat().st_mtime_ns
    code = main(["train", "--data", str(data), "--output", str(run), "--model", "unused"])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (run / "model.safetensors").stat().st_mtime_ns == before


def test_too_many_bad_clips_stop_training_with_the_list(tmp_path: Path, tiny_wav2vec2: Path, capsys) -> None:
    data = write_tone_folder(tmp_path / "data", per_label=4)
    (data / "low" / "empty.wav").write_bytes(b"")
    code = main(["train", "--data", str(data), "--model", str(tiny_wav2vec2), "--output", str(tmp_path / "run"),
                 *TRAIN_FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and "max-bad-fraction" in err and "empty.wav" in err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_bad_clips_under_the_limit_are_skipped_and_counted(tmp_path: Path, tiny_wav2vec2: Path) -> None:
    data = write_tone_folder(tmp_path / "data", per_label=4)
    (data / "low" / "empty.wav").write_bytes(b"")
    code = main(["-q", "train", "--data", str(data), "--model", str(tiny_wav2vec2), "--output",
                 str(tmp_path / "run"), "--max-bad-fraction", "0.2", *TRAIN_FLAGS])
    assert code == 0
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["num_skipped"] == 1 and "empty.wav" in status["skipped"][0]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["num_skipped"] == 1


def test_config_errors_are_one_line_messages(tmp_path: Path, capsys) -> None:
    assert main(["train", "--epochs", "-1", "--output", str(tmp_path / "r")]) == 2
    assert "epochs=-1.0 is not allowed" in capsys.readouterr().err
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("learning_rat: 0.1\n")
    assert main(["train", "--config", str(bad_yaml)]) == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().err


def test_predict_on_missing_model_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["predict", str(tmp_path / "nope"), "x.wav"]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_push_to_hub_offline_completes_the_local_run_first(tmp_path: Path, tiny_wav2vec2: Path, caplog) -> None:
    data = write_tone_folder(tmp_path / "data", per_label=4)
    code = main(["train", "--data", str(data), "--model", str(tiny_wav2vec2), "--output", str(tmp_path / "run"),
                 "--push-to-hub", "--hub-model-id", "someone/tones", *TRAIN_FLAGS])
    assert code == 0 and "saved locally" in caplog.text
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "complete"

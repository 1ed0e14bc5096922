"""The benchmark scripts run (small) and write well-formed results; their figures are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_shared

BENCH = Path(__file__).resolve().parents[1] / "bench"

pytestmark = pytest.mark.slow  # make test-all


def run_quick(script: str, output: Path) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--output", str(output)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text())


def test_gpu_check_cpu_against_cpu_passes_every_check(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    done = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--quick", "--output",
                           str(tmp_path / "gpu.json")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert results["device"] == "cpu" and results["all_passed"]
    sys.path.insert(0, str(BENCH))
    from report import gpu_check_rows

    count = sum(len(by_check) for by_check in results["checks"].values())
    (row,) = gpu_check_rows(results)
    assert row[1] == f"{count} of {count} checks passed" and count >= 7
    checks = next(iter(results["checks"].values()))
    assert {"train probe", "train finetune", "predict float32", "predict --bf16", "windows", "serve"} <= {
        name.split(":")[0] for name in checks} and any(name.startswith("export") for name in checks)


@needs_shared
def test_serve_load_quick_writes_results(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    results = run_quick("serve_load.py", tmp_path / "serve.json")
    assert results["benchmark"] == "serve_load" and results["machine"]["cpu_cores"] >= 1
    assert "serve_load.py --quick" in results["command"] and results["versions"]["torch"]
    for mode in ("batching on", "batching off"):
        figures = results["modes"][mode]
        assert figures["requests"] == 10 and figures["non_2xx"] == 0
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]


@needs_shared
def test_inference_quick_writes_results(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    results = run_quick("inference.py", tmp_path / "inference.json")
    (model, figures), = results["models"].items()
    assert results["clips"] == 16 and "whisper" in model
    runners = figures["runners"]
    bf16 = {"audioclf (PyTorch, --bf16)"} if results["cpu_native_bf16"] else set()  # emulated: not timed
    assert set(runners) == {"stock pipeline, per clip", "audioclf (PyTorch)", "audioclf ONNX float32",
                            "audioclf ONNX int8", *bf16}
    assert runners["stock pipeline, per clip"]["speedup_vs_stock"] == 1.0
    assert runners["audioclf (PyTorch)"]["top1_agreement_vs_stock"] == 1.0  # same model, same scores
    assert figures["held_out_clips"] == 32  # the untimed agreement pass, on more clips than were timed
    assert runners["audioclf (PyTorch)"]["top1_agreement_vs_stock_held_out"] == 1.0
    shares = [r["top1_agreement_vs_stock_held_out"] for r in runners.values()]
    shares.append(runners["audioclf ONNX int8"]["top1_agreement_vs_onnx_float32_held_out"])
    assert all(abs(share * 32 - round(share * 32)) < 0.02 for share in shares)  # clips of 32 that agree
    assert isinstance(results["cpu_native_bf16"], bool) and results["matmul_bf16_gflop_s"] > 0
    assert all(r["clips_per_s"] > 0 and r["p50_ms"] <= r["p95_ms"] for r in runners.values())
    assert results["rounds"] == 1 and all(r["clips_per_s_each_round"] == [r["clips_per_s"]] for r in runners.values())
    assert figures["onnx_size_mb"]["int8"] < figures["onnx_size_mb"]["float32"]
    assert results["matmul_fp32_gflop_s"] > 0 and figures["forward_gflop_per_clip"] > 0
    for r in runners.values():  # each figure rounded
        assert r["gflop_s"] == pytest.approx(r["clips_per_s"] * figures["forward_gflop_per_clip"], rel=0.002, abs=0.06)
    stock = runners["stock pipeline, per clip"]["gflop_s"]
    fastest = max(results["matmul_fp32_gflop_s"], results["matmul_fp32_onnxruntime_gflop_s"])
    assert figures["fp32_ceiling_vs_stock"] == pytest.approx(fastest / stock, rel=0.02)


@needs_shared
def test_cold_start_quick_writes_results(tmp_path: Path) -> None:
    results = run_quick("cold_start.py", tmp_path / "cold.json")
    assert results["runs"] == 1 and results["help_target_s"] == 0.5
    assert len(results["seconds"]) == 5 and all(s > 0 for s in results["seconds"].values())


def assert_training_ceiling(figures: dict, epochs: int) -> None:
    """The float32 ceiling is the guide's time over audioclf's arithmetic at the faster of the two rates."""
    arithmetic = figures["arithmetic"]
    work = arithmetic["train_gflop_per_clip_epoch"]
    # the guide runs every clip at 1 s and back through the convolutions: more work than audioclf's short batches
    assert work["guide recipe"] > work["audioclf"] > 0
    clip_epochs = figures["train_clips"] * epochs
    guide_s = figures["guide recipe"]["train_runtime_s"]
    assert arithmetic["guide_gflop_s"] == pytest.approx(work["guide recipe"] * clip_epochs / guide_s, rel=0.01)
    rate = max(arithmetic["matmul_fp32_gflop_s"], arithmetic["guide_gflop_s"])
    ceiling = guide_s * rate / (work["audioclf"] * clip_epochs)
    assert arithmetic["fp32_ceiling_vs_guide"] == pytest.approx(ceiling, rel=0.02)


@needs_shared
def test_training_quick_writes_results(tmp_path: Path) -> None:
    results = run_quick("training.py", tmp_path / "training.json")
    assert results["eval_calls"] == 4 and set(results["long_calls"]) == set(results["models"])
    assert isinstance(results["cpu_native_bf16"], bool)
    for data, clips in (("models", 16), ("long_calls", 4)):
        for name, figures in results[data].items():
            assert figures["train_clips"] == clips
            ours = {"audioclf": "speedup"} | ({"audioclf, 1 s like the guide": "speedup_1s"}
                                              if data == "long_calls" and name.startswith("wav2vec2") else {})
            ours |= {"audioclf --bf16": "speedup_bf16"} if data == "models" and results["cpu_native_bf16"] else {}
            padding = ({"padded_frames_per_clip", "arithmetic"} if data == "models" and name.startswith("wav2vec2")
                       else set())
            assert set(figures) == {"train_clips", "guide recipe", *ours, *ours.values(), *padding}
            if padding:
                pad = figures["padded_frames_per_clip"]
                assert 0 < pad["clips"] <= pad["audioclf"] <= pad["transformers"]
                assert_training_ceiling(figures, results["epochs"])
            for side, speedup in ours.items():
                assert figures["guide recipe"]["train_runtime_s"] > 0 and figures[side]["clips_per_s"] > 0
                ratio = figures["guide recipe"]["train_runtime_s"] / figures[side]["train_runtime_s"]
                assert figures[speedup] == pytest.approx(ratio, rel=0.01, abs=0.005)  # rounded to 2 places


def test_memory_quick_writes_results(tmp_path: Path) -> None:
    results = run_quick("memory.py", tmp_path / "memory.json")
    assert len(results["runs"]) == 4 and all(r["peak_rss_mb"] > 0 for r in results["runs"].values())
    assert set(results["growth_mb"]) == {"disk cache (default)", "in memory (reference)"}


@needs_shared
def test_accuracy_quick_writes_results(tmp_path: Path) -> None:
    results = run_quick("accuracy.py", tmp_path / "accuracy.json")
    assert set(results["summary"]) == {"probe", "finetune", "auto"}
    for speaker, fold in results["folds"].items():
        assert fold["probe"]["strategy_used"] == "probe" and fold["finetune"]["strategy_used"] == "finetune"
        assert fold["auto"]["strategy_used"] in {"probe", "finetune"} and fold["auto"]["reason"]
        assert all(0 <= r["test_accuracy"] <= 1 and r["cpu_s"] > 0 for r in fold.values())
    for name, summary in results["summary"].items():
        accuracies = [fold[name]["test_accuracy"] for fold in results["folds"].values()]
        assert summary["worst_accuracy"] == min(accuracies)


def test_accuracy_synth_quick_writes_results(tmp_path: Path) -> None:
    results = run_quick("accuracy_synth.py", tmp_path / "accuracy_synth.json")
    assert results["voices"] == 4 and results["strategy_used"] == "finetune"  # from scratch: nothing to probe
    assert results["num_test_clips"] == 14 * 4
    assert abs(results["test_accuracy"] * 56 - round(results["test_accuracy"] * 56)) < 0.03  # clips of 56 right
    assert results["training"]["cpu_s"] > 0 and results["synthesis"]["wall_s"] > 0


@needs_shared
def test_long_digit_calls_are_5_to_10_s_of_one_speakers_digit(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    from _common import long_digit_calls

    import soundfile as sf

    calls = long_digit_calls(tmp_path, ("george", "lucas"), 12)
    assert [c.stem.split("_")[:2] for c in calls[:3]] == [["0", "george"], ["1", "lucas"], ["2", "george"]]
    for call in calls:
        info = sf.info(call)
        assert info.samplerate == 16000 and 5.0 <= info.duration <= 10.0
        assert sf.read(call)[0].std() > 0.01  # speech, not the pauses alone


@needs_shared
def test_fsdd_transcribe_quick_scores_each_speaker(tmp_path: Path) -> None:
    results = run_quick("fsdd_transcribe.py", tmp_path / "transcribe.json")
    assert results["clips"] == 40 and set(results["lead_silence"]) == {"0.0 s", "0.3 s"}
    for speakers in results["lead_silence"].values():
        assert set(speakers) == {"george", "jackson", "lucas", "nicolas"}
        for speaker in speakers.values():
            assert set(speaker["per_digit"]) == set("0123456789")
            assert speaker["recognized"] == pytest.approx(sum(speaker["per_digit"].values()) / 10, abs=0.001)
    for cut in results["cut"].values():
        assert 0 < cut["length_s"] < 3 and cut["first_10ms_db"] <= 0 and cut["last_10ms_db"] <= 0


def test_transcripts_name_a_digit_only_when_they_name_exactly_one() -> None:
    sys.path.insert(0, str(BENCH))
    from fsdd_transcribe import heard_digit

    assert [heard_digit(t) for t in (" Six.", " 6", "Oh", "eight.", " Peace.", "", "one two", "Thanks.")] == \
        ["6", "6", "0", "8", None, None, None, None]


def test_readme_benchmark_table_is_the_results() -> None:
    done = subprocess.run([sys.executable, str(BENCH / "report.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_report_takes_each_figure_from_the_results(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    from report import RESULTS, table, with_table

    for path in RESULTS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    training = json.loads((tmp_path / "training.json").read_text())
    training["models"]["wav2vec2-base config (random weights)"]["speedup"] = 9.87
    (tmp_path / "training.json").write_text(json.dumps(training))
    (tmp_path / "memory.json").unlink()
    made = table(tmp_path)
    assert "**9.87x**" in made and "peak RSS" not in made and "peak RSS" in table()
    assert made.count("\n") == table().count("\n") - 1  # memory's one row gone, nothing else
    assert f"`{training['command']}`" in made
    with pytest.raises(SystemExit, match="markers"):
        with_table("a README without the markers", made)


def test_machine_record_names_the_cpus_widest_vector_instructions() -> None:
    sys.path.insert(0, str(BENCH))
    from _common import vector_isa
    from report import _machine

    assert [vector_isa(flags) for flags in ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"},
                                            {"avx2", "avx512f", "avx512_bf16"}, {"avx2", "avx512f"},
                                            {"sse4_2", "avx2"}, {"sse4_2"})] == \
        ["AMX", "AVX-512 BF16", "AVX-512", "AVX2", "no AVX2"]
    run = {"machine": {"cpu_cores": 2, "cpu": "AMD EPYC (AVX2)"}, "cpu_native_bf16": False}
    assert _machine(run) == "2 cores, AMD EPYC (AVX2)"
    # results written before the vector instructions were recorded: native bfloat16 or not, where measured
    older = {"machine": {"cpu_cores": 2, "cpu": "AMD EPYC"}}
    assert _machine({**older, "cpu_native_bf16": False}) == "2 cores, AMD EPYC (no native bfloat16)"
    assert _machine({**older, "cpu_native_bf16": True}) == "2 cores, AMD EPYC (native bfloat16)"
    assert _machine(older) == "2 cores, AMD EPYC"

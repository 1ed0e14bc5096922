"""Inference speed on CPU: the stock transformers pipeline (per clip) against audioclf's Classifier (float32
and under `--bf16`, on CPUs with native bfloat16 only, as `predict` advises) and its ONNX exports (float and
int8), on the same FSDD files, with top-1 agreement.
Beside the speeds, the compute: each model's forward-pass GFLOP per clip (counted by torch's FlopCounterMode
at the clips' own lengths), the GFLOP/s each runner reaches, and this machine's matrix-product rates
(float32 through torch and through onnxruntime, bfloat16 through torch); the faster float32 rate bounds how
much faster than the stock pipeline a float32 runner of the same model can be.

Throughput is timed in rounds, each runner once per round in turn, and each runner's fastest round is
reported (all rounds are kept in the JSON): the machine is shared, and a single pass of a fast runner can
land on a busy moment.

Top-1 agreement is counted twice: on the timed clips, and, untimed, on every clip of the two speakers the
heads never heard (1,000), where one clip is 0.1% rather than 0.5%. The wav2vec2-base config's encoder has
random weights (the real compute, no download); its head is trained (`--strategy probe` on 160 clips of the
other two speakers), as a random head's top-1 is a near-tie on most clips, which any rounding flips.

    python bench/inference.py            # 200 clips, 3 rounds; whisper-tiny.en head fine-tuned 1 epoch first
    python bench/inference.py --quick    # 16 clips, 1 round, whisper only, untrained head: checks the script
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import (WHISPER_TINY_EN, bench_parser, fsdd_clips, fsdd_manifest, matmul_gflop_s,
                     onnxruntime_matmul_gflop_s, print_table, quiet_transformers, require_shared,
                     wav2vec2_base_digits_model, whisper_digits_model, write_results)

LATENCY_CLIPS = 40  # clips timed one by one for p50/p95
FLOP_SAMPLE_EVERY = 5  # FLOPs are counted on every 5th clip
HELD_OUT = ("lucas", "nicolas")  # the clips timed; the whisper head is trained on george and jackson


def main() -> None:
    parser = bench_parser(__doc__, "16 clips, whisper only, untrained head.", "inference")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="Timed passes per runner (default 3; --quick: 1).")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    require_shared()
    quiet_transformers()
    clips = fsdd_clips(HELD_OUT, 16 if args.quick else args.clips)
    agreement_clips = fsdd_clips(HELD_OUT, 32 if args.quick else None)
    from audioclf.models import native_bf16

    bf16 = native_bf16()  # emulated bfloat16 ran at 0.3 GFLOP/s on an AVX2-only EPYC: timed only where native
    results: dict[str, Any] = {"clips": len(clips), "rounds": rounds, "matmul_fp32_gflop_s": matmul_gflop_s(),
                               "matmul_fp32_onnxruntime_gflop_s": onnxruntime_matmul_gflop_s(),
                               # emulated, 20 products of 2048 would take ~20 min: 256 is enough to show the rate
                               "matmul_bf16_gflop_s": matmul_gflop_s(size=2048 if bf16 else 256, dtype="bfloat16"),
                               "cpu_native_bf16": bf16, "models": {}}
    fp32_rate = max(results["matmul_fp32_gflop_s"], results["matmul_fp32_onnxruntime_gflop_s"])
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, trained) in model_builders(Path(tmp), args.quick).items():
            results["models"][name] = bench_model(build(), Path(tmp) / name, clips, rounds, fp32_rate,
                                                  agreement_clips if trained else [], bf16)
    show(results)
    print(f"wrote {write_results('inference', results, args.output)}")


def model_builders(tmp: Path, quick: bool) -> dict[str, tuple[Callable[[], Path], bool]]:
    """Per model: how to build it, and whether its head is trained (so that its top-1 means something)."""
    def whisper() -> Path:
        if quick:
            return whisper_digits_model(tmp / "whisper")
        import audioclf  # a trained head, so that top-1 agreement is about real decisions, not near-ties

        manifest = fsdd_manifest(tmp / "fsdd.csv", train=("george", "jackson"), test=("lucas",))
        return audioclf.train(data=str(manifest), model=str(WHISPER_TINY_EN), output=str(tmp / "whisper"),
                              epochs=1, batch_size=16, gradient_accumulation_steps=1, learning_rate=5e-5,
                              head_learning_rate=1e-3, max_duration=1.0, strategy="finetune")

    def wav2vec2() -> Path:
        import audioclf  # its head probe-trained on the random encoder: decisions with margins, not near-ties

        manifest = fsdd_manifest(tmp / "w2v.csv", train=("george", "jackson"), test=("lucas",), limit=240)
        return audioclf.train(data=str(manifest), model=str(wav2vec2_base_digits_model(tmp / "w2v-random")),
                              output=str(tmp / "w2v"), strategy="probe", max_duration=1.0)

    if quick:  # untrained, but the agreement pass still runs on it, to check the script
        return {"whisper-tiny.en (1 s context)": (whisper, True)}
    return {"wav2vec2-base config (random encoder), head probe-trained": (wav2vec2, True),
            "whisper-tiny.en (1 s context), head trained 1 epoch": (whisper, True)}


def bench_model(model_dir: Path, work: Path, clips: list[Path], rounds: int, fp32_gflop_s: float,
                agreement_clips: list[Path], bf16: bool) -> dict[str, Any]:
    import audioclf
    from audioclf.inference import Classifier

    runners = {"stock pipeline, per clip": stock_pipeline(model_dir),
               "audioclf (PyTorch)": classifier_runner(Classifier.load(model_dir))}
    if bf16:
        runners["audioclf (PyTorch, --bf16)"] = classifier_runner(Classifier.load(model_dir, bf16=True))
    sizes = {}
    for quantize in (None, "int8"):
        exported = audioclf.export(model_dir, work / f"onnx-{quantize or 'float'}", quantize=quantize)
        runners[f"audioclf ONNX {quantize or 'float32'}"] = classifier_runner(Classifier.load(exported))
        sizes[quantize or "float32"] = round((exported / "model.onnx").stat().st_size / 1e6, 1)
    figures = measure(runners, clips, rounds)
    stock = figures["stock pipeline, per clip"]
    for row in figures.values():
        row["speedup_vs_stock"] = round(row["clips_per_s"] / stock["clips_per_s"], 2)
    add_agreement(figures, {name: row.pop("labels") for name, row in figures.items()}, "")
    if agreement_clips:
        add_agreement(figures, {name: run(agreement_clips, 16) for name, run in runners.items()}, "_held_out")
    gflop = forward_gflop_per_clip(model_dir, clips[::FLOP_SAMPLE_EVERY])
    for row in figures.values():
        row["gflop_s"] = round(row["clips_per_s"] * gflop, 1)
    return {"runners": figures, "onnx_size_mb": sizes, "forward_gflop_per_clip": round(gflop, 3),
            "fp32_ceiling_vs_stock": round(fp32_gflop_s / stock["gflop_s"], 2),
            "held_out_clips": len(agreement_clips)}


def add_agreement(figures: dict[str, dict[str, Any]], labels: dict[str, np.ndarray], suffix: str) -> None:
    """Each runner's top-1 agreement with the stock pipeline, and the int8 export's with the float32 one."""
    def agreement(a: str, b: str) -> float:
        return round(float(np.mean(labels[a] == labels[b])), 4)

    for name, row in figures.items():
        row[f"top1_agreement_vs_stock{suffix}"] = agreement(name, "stock pipeline, per clip")
    figures["audioclf ONNX int8"][f"top1_agreement_vs_onnx_float32{suffix}"] = agreement("audioclf ONNX int8",
                                                                                       "audioclf ONNX float32")


def forward_gflop_per_clip(model_dir: Path, clips: list[Path]) -> float:
    """Mean GFLOP of one forward pass per clip, each at its own length as the stock pipeline runs it."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from audioclf.audio import load_audio

    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():  # not inference_mode: weight-norm parametrizations fail under it with the counter
        for clip in clips:
            model(**extractor(load_audio(clip, extractor.sampling_rate), sampling_rate=extractor.sampling_rate,
                              return_tensors="pt"))
    return counter.get_total_flops() / len(clips) / 1e9


def stock_pipeline(model_dir: Path) -> Callable[[list[Path], int], np.ndarray]:
    """transformers.pipeline, one clip per call, fed 16 kHz arrays (it resamples only through torchaudio)."""
    from transformers import pipeline

    from audioclf.audio import load_audio

    pipe = pipeline("audio-classification", model=str(model_dir))

    def run(paths: list[Path], batch_size: int) -> np.ndarray:
        return np.array([pipe(load_audio(path, 16000), top_k=1)[0]["label"] for path in paths])

    return run


def classifier_runner(clf: Any) -> Callable[[list[Path], int], np.ndarray]:
    def run(paths: list[Path], batch_size: int) -> np.ndarray:
        return np.array([p[0]["label"] for p in clf.predict(paths, top_k=1, batch_size=batch_size)])

    return run


def measure(runners: dict[str, Callable[[list[Path], int], np.ndarray]], clips: list[Path], rounds: int
            ) -> dict[str, dict[str, Any]]:
    """Per runner: clips/s of its fastest of `rounds` passes over `clips` (batch 16; the runners take turns
    within a round, so a busy spell of the machine does not fall on one runner alone), every round's
    clips/s, p50/p95 latency of one clip at a time, and the labels it gave."""
    for run in runners.values():
        run(clips[:2], 2)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    labels = {}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            labels[name] = run(clips, 16)
            seconds[name].append(time.perf_counter() - start)
    return {name: {"clips_per_s": round(len(clips) / min(seconds[name]), 2),
                   "clips_per_s_each_round": [round(len(clips) / s, 2) for s in seconds[name]],
                   **latency_ms(run, clips[:LATENCY_CLIPS]), "labels": labels[name]}
            for name, run in runners.items()}


def latency_ms(run: Callable[[list[Path], int], np.ndarray], clips: list[Path]) -> dict[str, float]:
    latencies = []
    for clip in clips:
        one = time.perf_counter()
        run([clip], 1)
        latencies.append((time.perf_counter() - one) * 1000)
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(float(np.percentile(latencies, 95)), 1)}


def show(results: dict[str, Any]) -> None:
    for model, figures in results["models"].items():
        print(f"\n{model}, {results['clips']} FSDD clips (ONNX sizes MB: {figures['onnx_size_mb']})")
        rows = [[name, r["clips_per_s"], f"{r['speedup_vs_stock']}x", r["p50_ms"], r["p95_ms"],
                 r["top1_agreement_vs_stock"], r.get("top1_agreement_vs_onnx_float32", ""), r["gflop_s"]]
                for name, r in figures["runners"].items()]
        print_table(["runner", "clips/s", "vs stock", "p50 ms", "p95 ms", "top-1 = stock", "top-1 = ONNX fp32",
                     "GFLOP/s"], rows)
        if figures["held_out_clips"]:
            print(f"top-1 on all {figures['held_out_clips']} clips of {' and '.join(HELD_OUT)} (untimed): " + ", ".join(
                f"{name} = stock {r['top1_agreement_vs_stock_held_out']}" for name, r in figures["runners"].items()
                if name != "stock pipeline, per clip") + ", int8 = ONNX fp32 "
                f"{figures['runners']['audioclf ONNX int8']['top1_agreement_vs_onnx_float32_held_out']}")
        print(f"{figures['forward_gflop_per_clip']} GFLOP per clip; at this machine's faster float32 matrix-product "
              f"rate (torch {results['matmul_fp32_gflop_s']}, onnxruntime "
              f"{results['matmul_fp32_onnxruntime_gflop_s']} GFLOP/s) a float32 runner would be at most "
              f"{figures['fp32_ceiling_vs_stock']}x the stock pipeline (bfloat16 products: "
              f"{results['matmul_bf16_gflop_s']} GFLOP/s, native: {results['cpu_native_bf16']})")


if __name__ == "__main__":
    main()

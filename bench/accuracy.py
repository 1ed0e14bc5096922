"""Accuracy per CPU-minute: leave-one-speaker-out over the 4 FSDD speakers in ../shared with the real
whisper-tiny.en, for `--strategy probe`, `finetune` and `auto`. Each fold trains on three speakers (10% of
their clips held out for validation) and tests on the fourth, whom the model never heard. Reports test
accuracy per fold, the mean and the worst fold, wall and CPU seconds per fold (CPU: all threads of this
process, i.e. up to cores x wall), and what auto chose.

    python bench/accuracy.py            # 4 folds x 3 strategies, about 40 min on 2 cores
    python bench/accuracy.py --quick    # 2 folds of 40 clips per speaker, 1 epoch: checks the script
    python bench/accuracy.py --folds nicolas --strategies finetune --set spec_augment=0.1 --output x.json
                                        # one variant on one fold (--set takes any TrainConfig key)
    python bench/accuracy.py --calls 40 --folds nicolas --strategies finetune --set max_duration=10 augment_crop=2
                                        # on 40 calls of 5-10 s per speaker made from its clips
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (FSDD, WHISPER_TINY_EN, bench_parser, long_digit_calls, print_table, quiet_transformers,
                     require_shared, write_results)

SPEAKERS = ("george", "jackson", "lucas", "nicolas")
COMMON = dict(max_duration=1.0, seed=42, batch_size=16, gradient_accumulation_steps=1)
# The fine-tuning recipe of tests/test_real_fsdd.py: short, a higher rate than the guide's, speed perturbation.
FINETUNE = dict(epochs=5, learning_rate=5e-5, head_learning_rate=5e-5, augment_speed=0.25)
STRATEGIES = {"probe": dict(strategy="probe"), "finetune": dict(strategy="finetune", **FINETUNE),
              "auto": dict(strategy="auto", **FINETUNE)}


def main() -> None:
    parser = bench_parser(__doc__, "2 folds of 40 clips per speaker, 1 fine-tuning epoch.", "accuracy")
    parser.add_argument("--folds", nargs="+", choices=SPEAKERS, help="Held-out speakers to run (default: all).")
    parser.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="TrainConfig values added to every strategy's run, e.g. spec_augment=0.1.")
    parser.add_argument("--calls", type=int, metavar="N",
                        help="N calls of 5-10 s per speaker, made from its FSDD clips, instead of the clips.")
    args = parser.parse_args()
    require_shared()
    quiet_transformers()
    speakers = SPEAKERS[-2:] if args.quick else SPEAKERS
    extra = dict(item.split("=", 1) for item in args.set)
    strategies = {name: {**STRATEGIES[name], **extra, **({"epochs": 1} if args.quick and name != "probe" else {})}
                  for name in args.strategies}
    results: dict[str, Any] = {"model": "whisper-tiny.en", "speakers": list(speakers), "settings": COMMON,
                               "extra_settings": extra, "strategies": strategies, "calls_per_speaker": args.calls,
                               "folds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clips = {speaker: speaker_clips(speaker, 4 if args.quick else None, args.calls, Path(tmp) / "calls")
                 for speaker in speakers}
        for held_out in args.folds or speakers:
            manifest = fold_manifest(Path(tmp) / f"{held_out}.csv", clips, held_out)
            results["folds"][held_out] = {
                name: run_fold(manifest, Path(tmp) / f"{held_out}-{name}", settings)
                for name, settings in results["strategies"].items()}
    results["summary"] = summarise(results["folds"])
    show(results)
    print(f"wrote {write_results('accuracy', results, args.output)}")


def speaker_clips(speaker: str, per_digit: int | None, calls: int | None, folder: Path) -> list[Path]:
    """The speaker's FSDD clips (the first `per_digit` takes of each digit), or `calls` long calls made from them."""
    if calls:
        return long_digit_calls(folder / speaker, (speaker,), calls, seed=SPEAKERS.index(speaker))
    clips = sorted(FSDD.glob(f"*_{speaker}_*.wav"))
    if per_digit:  # FSDD names clips <digit>_<speaker>_<0..49>
        clips = [clip for clip in clips if int(clip.stem.split("_")[2]) < per_digit]
    return clips


def fold_manifest(path: Path, clips: dict[str, list[Path]], held_out: str) -> Path:
    rows = ["path,label,group,split"]
    for speaker, paths in clips.items():
        rows += [f"{clip},{clip.stem.split('_')[0]},{speaker},{'test' if speaker == held_out else 'train'}"
                 for clip in paths]
    path.write_text("\n".join(rows) + "\n")
    return path


def run_fold(manifest: Path, output: Path, settings: dict[str, Any]) -> dict[str, Any]:
    import audioclf

    wall, cpu = time.perf_counter(), time.process_time()
    run = audioclf.train(data=str(manifest), model=str(WHISPER_TINY_EN), output=str(output), **{**COMMON, **settings})
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    status = json.loads((run / "run.json").read_text())
    return {"test_accuracy": status["accuracy"], "validation_accuracy": status["validation_accuracy"],
            "strategy_used": status["strategy_used"], "reason": status["strategy_reason"],
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def summarise(folds: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    summary = {}
    for name in next(iter(folds.values())):
        runs = [fold[name] for fold in folds.values()]
        accuracies = [r["test_accuracy"] for r in runs]
        summary[name] = {"mean_accuracy": round(statistics.mean(accuracies), 4),
                         "worst_accuracy": round(min(accuracies), 4),
                         "mean_cpu_min": round(statistics.mean(r["cpu_s"] for r in runs) / 60, 2),
                         "mean_wall_min": round(statistics.mean(r["wall_s"] for r in runs) / 60, 2)}
    return summary


def show(results: dict[str, Any]) -> None:
    extra = f", with {results['extra_settings']}" if results["extra_settings"] else ""
    data = f"{results['calls_per_speaker']} calls of 5-10 s per speaker" if results["calls_per_speaker"] else "FSDD"
    print(f"leave-one-speaker-out, {results['model']}, {data}, speakers {', '.join(results['speakers'])}{extra}")
    folds = list(results["folds"])
    rows = [[name, *(results["folds"][s][name]["test_accuracy"] for s in folds),
             r["mean_accuracy"], r["worst_accuracy"], r["mean_cpu_min"], r["mean_wall_min"]]
            for name, r in results["summary"].items()]
    print_table(["strategy", *folds, "mean", "worst", "CPU min/fold", "wall min/fold"], rows)
    for speaker, fold in results["folds"].items():
        if "auto" in fold:
            print(f"auto on {speaker}: kept {fold['auto']['strategy_used']} ({fold['auto']['reason']})")


if __name__ == "__main__":
    main()

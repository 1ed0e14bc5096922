"""The README's benchmark table, made from bench/results/*.json, so that every figure in it is one a
benchmark wrote (with its command, date and commit beside it in the JSON).

    python bench/report.py            # print the table (markdown)
    python bench/report.py --write    # put it in README.md, between its bench-table markers
    python bench/report.py --check    # exit 1 when README.md's table differs from the results
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

from _common import RESULTS, ROOT

README = ROOT / "README.md"
BEGIN = "<!-- bench-table: made by `python bench/report.py --write` from bench/results/*.json; do not edit -->"
END = "<!-- /bench-table -->"
HEADERS = ("benchmark", "command", "audioclf", "reference (same run)", "ratio", "target", "run")
WAV2VEC2 = "wav2vec2-base config (random weights)"
WHISPER = "whisper-tiny.en"

Row = tuple[str, str, str, str, str]  # benchmark, audioclf, reference, ratio, target


def _bf16_seconds(figures: dict[str, Any]) -> str:
    """The `--bf16` time of a training row; empty where the run skipped it (no native bfloat16)."""
    return f"; `--bf16` {_seconds(figures['audioclf --bf16'])}" if "audioclf --bf16" in figures else ""


def _bf16_speedup(figures: dict[str, Any], bold: bool) -> str:
    """The `--bf16` ratio of a training row; empty where the run skipped it."""
    mark = "**" if bold else ""
    return f"; `--bf16` {mark}{figures['speedup_bf16']}x{mark}" if "speedup_bf16" in figures else ""


def training_rows(r: dict[str, Any]) -> list[Row]:
    w2v, whisper = r["models"][WAV2VEC2], r["models"][WHISPER]
    calls_w2v, calls_whisper = r["long_calls"][WAV2VEC2], r["long_calls"][WHISPER]
    clips = f"{r['epochs']} epochs, batch {r['batch_size']}"
    return [
        (f"training, wav2vec2-base config, {w2v['train_clips']} FSDD clips, {clips}",
         _seconds(w2v["audioclf"]) + _bf16_seconds(w2v),
         "guide recipe " + _seconds(w2v["guide recipe"]),
         f"**{w2v['speedup']}x**" + _bf16_speedup(w2v, bold=True) + "; float32 ceiling "
         f"{w2v['arithmetic']['fp32_ceiling_vs_guide']}x", ">= 3x"),
        (f"training, whisper-tiny.en, {whisper['train_clips']} FSDD clips, {clips}",
         _seconds(whisper["audioclf"]) + _bf16_seconds(whisper),
         "guide recipe (30 s padding) " + _seconds(whisper["guide recipe"]),
         f"**{whisper['speedup']}x**" + _bf16_speedup(whisper, bold=False), ">= 20x"),
        (f"training, wav2vec2-base config, {calls_w2v['train_clips']} calls of 5-10 s",
         f"1 s of each, as the guide: {_seconds(calls_w2v['audioclf, 1 s like the guide'])}; whole calls: "
         + _seconds(calls_w2v["audioclf"]),
         "guide recipe (1 s of each) " + _seconds(calls_w2v["guide recipe"]),
         f"**{calls_w2v['speedup_1s']}x** (1 s); {calls_w2v['speedup']}x (whole calls)", ""),
        (f"training, whisper-tiny.en, {calls_whisper['train_clips']} calls of 5-10 s",
         "whole calls, 10 s context: " + _seconds(calls_whisper["audioclf"]),
         "guide recipe (30 s padding) " + _seconds(calls_whisper["guide recipe"]), f"**{calls_whisper['speedup']}x**",
         ""),
    ]


def _seconds(figures: dict[str, Any]) -> str:
    return f"{figures['train_runtime_s']} s ({figures['clips_per_s']} clips/s)"


def inference_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for model, figures in r["models"].items():
        runners = dict(figures["runners"])
        stock = runners.pop("stock pipeline, per clip")
        reference = f"stock pipeline per clip: {stock['clips_per_s']} clips/s, p50 {stock['p50_ms']} ms"
        held_out = figures.get("held_out_clips", 0)
        for name, f in runners.items():
            rows.append((f"inference, {model}, {r['clips']} FSDD files: {_runner(name)}",
                         f"{f['clips_per_s']} clips/s, p50 {f['p50_ms']} ms; top-1 = stock "
                         + _agreement(f, "stock", held_out), reference, f"**{f['speedup_vs_stock']}x**",
                         ">= 5x at top-1 >= 99.5%" if "int8" not in name else "top-1 = float32 >= 99%"))
        sizes = figures["onnx_size_mb"]
        rows.append((f"ONNX export size, {model}", f"int8 {sizes['int8']} MB", f"float32 {sizes['float32']} MB",
                     f"{sizes['int8'] / sizes['float32']:.2f}x", ""))
    return rows


def _runner(name: str) -> str:
    """"audioclf (PyTorch, --bf16)" -> "PyTorch `--bf16`"; "audioclf ONNX int8" -> "ONNX int8"."""
    return name.removeprefix("audioclf ").strip("()").replace(", --bf16", " `--bf16`")


def _agreement(figures: dict[str, Any], against: str, held_out: int) -> str:
    """Top-1 agreement with the stock pipeline (or the ONNX float32 export), on the timed clips and, where
    measured, on the untimed held-out ones; for int8, with the float32 export as well."""
    timed = f"{figures[f'top1_agreement_vs_{against}']:.1%}"
    if held_out and f"top1_agreement_vs_{against}_held_out" in figures:
        timed += f" ({figures[f'top1_agreement_vs_{against}_held_out']:.1%} of {held_out:,} unheard)"
    if against == "stock" and "top1_agreement_vs_onnx_float32" in figures:
        timed += "; = float32 " + _agreement(figures, "onnx_float32", held_out)
    return timed


IMPORT_REFERENCE = "reference: python -c 'import torch, transformers'"  # bench/cold_start.py's name for it


def cold_start_rows(r: dict[str, Any]) -> list[Row]:
    s = r["seconds"]
    return [(f"cold start, median of {r['runs']}",
             f"`audioclf --help` {s['audioclf --help']} s; one-file `predict` "
             f"{s['audioclf predict (PyTorch folder, 1 file)']} s (PyTorch), "
             f"{s['audioclf predict (ONNX folder, 1 file)']} s (ONNX)",
             f"`import torch, transformers` {s[IMPORT_REFERENCE]} s; one-file stock "
             f"pipeline script {s['reference: stock pipeline script, 1 file']} s",
             f"{s['reference: stock pipeline script, 1 file'] / s['audioclf predict (PyTorch folder, 1 file)']:.2f}x "
             "(predict)", f"`--help` < {r['help_target_s']} s")]


def serve_rows(r: dict[str, Any]) -> list[Row]:
    on, off = r["modes"]["batching on"], r["modes"]["batching off"]
    return [(f"`audioclf serve`, {r['clients']} clients x {r['requests_per_client']} requests, {r['model']}",
             f"batching on: {on['requests_per_s']} requests/s, p50/p95 {on['p50_ms']}/{on['p95_ms']} ms, "
             f"{on['non_2xx']} errors", f"batching off: {off['requests_per_s']} requests/s, p50/p95 "
             f"{off['p50_ms']}/{off['p95_ms']} ms", f"**{r['batching_speedup']:.2f}x**", "")]


def memory_rows(r: dict[str, Any]) -> list[Row]:
    runs = list(r["runs"].values())
    peak = {(run["scale"], run["mode"]): run["peak_rss_mb"] for run in runs}
    modes = sorted({run["mode"] for run in runs}, key=lambda mode: "reference" in mode)
    clips = {run["scale"]: run["clips"] for run in runs}
    cells = [f"{mode}: {peak[(1, mode)]} -> {peak[(10, mode)]} MB (+{r['growth_mb'][mode]} MB)" for mode in modes]
    return [(f"peak RSS of `audioclf train`, {clips[1]} -> {clips[10]} synthesized {r['clip_seconds']:g} s clips",
             cells[0], cells[1], "", "flat in dataset size")]


def accuracy_rows(r: dict[str, Any]) -> list[Row]:
    cells = [f"`{name}`: mean {s['mean_accuracy']} ({_folds(r['folds'], name)}), {s['mean_cpu_min']} CPU-min per fold"
             for name, s in r["summary"].items()]
    targets = {"probe": "probe mean >= 0.99 in <= 2 CPU-min", "finetune": "finetune >= 0.985 in <= 10"}
    return [(f"accuracy, leave-one-speaker-out over {len(r['speakers'])} FSDD speakers, real whisper-tiny.en"
             + (", the command's `--set` settings" if r.get("extra_settings") else ""), "; ".join(cells), "", "",
             "; ".join(target for name, target in targets.items() if name in r["summary"]))]


def _folds(folds: dict[str, Any], strategy: str) -> str:
    return ", ".join(f"{speaker} {fold[strategy]['test_accuracy']:.3f}" for speaker, fold in folds.items())


def accuracy_synth_rows(r: dict[str, Any]) -> list[Row]:
    return [(f"accuracy, synthesized banking intents, `{r['model']}` from scratch, unheard voices",
             f"test {r['test_accuracy']:.3f} ({r['num_test_clips']} clips; validation {r['validation_accuracy']:.3f}), "
             f"{r['training']['cpu_s'] / 60:.1f} CPU-min of training", "chance 0.071", "", "")]


def gpu_check_rows(r: dict[str, Any]) -> list[Row]:
    checks = [(model, name, figures) for model, by_check in r["checks"].items() for name, figures in by_check.items()]
    failed = [f"{model}: {name}" for model, name, figures in checks if not figures["passed"]]
    return [(f"every stage on {r['device_name']} ({r['device']}): train, predict, windows, export, serve",
             f"{len(checks) - len(failed)} of {len(checks)} checks passed" + (f" (failed: {'; '.join(failed)})"
                                                                              if failed else ""),
             "the same models and clips on the CPU", "", "all pass")]


REPORTS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "training": training_rows, "inference": inference_rows, "cold_start": cold_start_rows,
    "serve_load": serve_rows, "memory": memory_rows, "accuracy": accuracy_rows,
    "accuracy_lpft": accuracy_rows, "accuracy_synth": accuracy_synth_rows, "gpu_check": gpu_check_rows,
}


def table(results: Path = RESULTS) -> str:
    """The markdown table of every benchmark whose results JSON is present."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for name, rows_of in REPORTS.items():
        path = results / f"{name}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        run = f"{r['when'][:10]}, {r.get('commit') or 'commit not recorded'}, {_machine(r)}"
        for label, ours, reference, ratio, target in rows_of(r):
            lines.append("| " + " | ".join([label, f"`{r['command']}`", ours, reference, ratio, target, run]) + " |")
    return "\n".join(lines)


def _machine(r: dict[str, Any]) -> str:
    """Cores and CPU of a run; results written before the CPU's vector instructions were recorded say at least
    whether it had native bfloat16, where they measured that."""
    cpu = r["machine"].get("cpu") or "CPU not recorded"
    if "(" not in cpu and "cpu_native_bf16" in r:
        cpu += " (native bfloat16)" if r["cpu_native_bf16"] else " (no native bfloat16)"
    return f"{r['machine']['cpu_cores']} cores, {cpu}"


def with_table(readme: str, made: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), flags=re.S)
    if not pattern.search(readme):
        raise SystemExit(f"report: {README} has no bench-table markers ({BEGIN} ... {END})")
    return pattern.sub(lambda _: f"{BEGIN}\n{made}\n{END}", readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="Replace the table in README.md.")
    group.add_argument("--check", action="store_true", help="Exit 1 when README.md's table is not the results'.")
    args = parser.parse_args()
    made = table()
    if not (args.write or args.check):
        print(made)
        return
    readme = README.read_text()
    updated = with_table(readme, made)
    if args.check:
        sys.exit(0 if updated == readme else "report: README.md's benchmark table differs from bench/results; "
                                              "run python bench/report.py --write")
    README.write_text(updated)
    print(f"wrote the benchmark table into {README}")


if __name__ == "__main__":
    main()

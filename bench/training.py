"""Training throughput on CPU: the HF guide's recipe against `audioclf train`'s default path, same model,
same clips, same batch size, the same number of epochs (3; the guide's default is 10), evaluation and
checkpointing included in both, as both do them every epoch. Figures are the Trainer's own
`train_runtime`, plus, for audioclf, the one-off pass that computes the frozen feature encoder's outputs.

The guide's recipe, as written there: the feature extractor run once over the data with
`max_length=16000, truncation=True` (Whisper: its stock 30 s padding, as that encoder takes nothing
else), `Trainer(processing_class=feature_extractor)` and its default padding collator, nothing frozen.

Two data sets: FSDD clips (0.2-1 s) and 5-10 s calls made from them (`_common.long_digit_calls`). On the
calls the guide keeps 1 s of each clip and audioclf, by default, all of it (up to `--max-duration` 10 s),
so the default is not like for like there: audioclf at `--max-duration 1` is timed too (wav2vec2; Whisper
sees whole clips in both recipes). On the FSDD clips audioclf is also timed with `--bf16` (bfloat16
autocast) where the CPU has native bfloat16, which the results record (emulated, it is slower than float32).

    python bench/training.py            # FSDD: wav2vec2-base config on 160 clips, whisper-tiny.en on 48;
                                        # 16 calls each; 3 epochs
    python bench/training.py --quick    # 16 FSDD clips and 4 calls each, 1 epoch: checks the script
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


from _common import (WHISPER_TINY_EN, bench_parser, fsdd_clips, long_digit_calls, matmul_gflop_s, print_table,
                     quiet_transformers, require_shared, wav2vec2_base_digits_model, write_results)

BATCH = 16
LABELS = [str(digit) for digit in range(10)]


def main() -> None:
    parser = bench_parser(__doc__, "16 FSDD clips and 4 calls per model, 1 epoch.", "training")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs
    require_shared()
    quiet_transformers()
    sizes = {"wav2vec2": 16 if args.quick else 160, "whisper": 16 if args.quick else 48}
    from audioclf.models import native_bf16

    results: dict[str, Any] = {"batch_size": BATCH, "epochs": epochs, "cpu_native_bf16": native_bf16(), "models": {},
                               "long_calls": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        eval_clips = fsdd_clips(("lucas",), 16)
        eval_calls = long_digit_calls(work / "calls-eval", ("lucas",), 4 if args.quick else 8, seed=1)
        train_calls = long_digit_calls(work / "calls-train", ("george", "jackson"), 4 if args.quick else 16)
        results |= {"eval_clips": len(eval_clips), "eval_calls": len(eval_calls)}
        models = {"wav2vec2-base config (random weights)": (wav2vec2_base_digits_model(work / "w2v"), "wav2vec2"),
                  "whisper-tiny.en": (WHISPER_TINY_EN, "whisper")}
        for name, (model, kind) in models.items():
            train_clips = fsdd_clips(("george", "jackson"), sizes[kind])
            results["models"][name] = compare(model, train_clips, eval_clips, work / f"fsdd-{kind}", epochs,
                                              bf16=native_bf16())  # emulated: 0.3x (bench/inference.py, AVX2 EPYC)
            if kind == "wav2vec2":
                figures = results["models"][name]
                figures["padded_frames_per_clip"] = padded_frames_per_clip(train_clips)
                figures["arithmetic"] = arithmetic(model, figures, epochs)
            results["long_calls"][name] = compare(model, train_calls, eval_calls, work / f"calls-{kind}", epochs,
                                                  like_guide=kind == "wav2vec2")
    show(results)
    print(f"wrote {write_results('training', results, args.output)}")


def compare(model: Path, train: list[Path], evaluation: list[Path], out: Path, epochs: int,
            like_guide: bool = False, bf16: bool = False) -> dict[str, Any]:
    """The guide's recipe and audioclf's default on the same clips; with `like_guide`, audioclf cut to the
    guide's 1 s as well; with `bf16`, audioclf under --bf16 as well."""
    guide = guide_recipe(model, train, evaluation, out / "guide", epochs)
    ours = audioclf_default(model, train, evaluation, out / "audioclf", epochs)
    figures = {"train_clips": len(train), "guide recipe": guide, "audioclf": ours,
               "speedup": round(guide["train_runtime_s"] / ours["train_runtime_s"], 2)}
    if bf16:
        half = audioclf_default(model, train, evaluation, out / "audioclf-bf16", epochs, bf16=True)
        figures |= {"audioclf --bf16": half,
                    "speedup_bf16": round(guide["train_runtime_s"] / half["train_runtime_s"], 2)}
    if like_guide:
        cut = audioclf_default(model, train, evaluation, out / "audioclf-1s", epochs, max_duration=1.0)
        figures |= {"audioclf, 1 s like the guide": cut,
                    "speedup_1s": round(guide["train_runtime_s"] / cut["train_runtime_s"], 2)}
    return figures


def guide_recipe(model_name: Path, train: list[Path], evaluation: list[Path], out: Path, epochs: int
                 ) -> dict[str, Any]:
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, Trainer, TrainingArguments

    from audioclf.audio import load_audio
    from audioclf.evaluation import accuracy
    from audioclf.features import is_whisper
    from audioclf.models import label_maps

    extractor = AutoFeatureExtractor.from_pretrained(str(model_name))
    limits = {} if is_whisper(extractor) else {"max_length": 16000, "truncation": True}

    def encode(paths: list[Path]) -> list[dict[str, Any]]:
        waves = [load_audio(path, 16000) for path in paths]
        features = extractor(waves, sampling_rate=16000, **limits)
        name = extractor.model_input_names[0]
        return [{name: features[name][i], "label": int(path.stem.split("_")[0])} for i, path in enumerate(paths)]

    label2id, id2label = label_maps(LABELS)
    model = AutoModelForAudioClassification.from_pretrained(  # float32: the shared checkpoint is stored in float16
        str(model_name), num_labels=10, label2id=label2id, id2label=id2label, dtype=torch.float32)
    args = TrainingArguments(output_dir=str(out), eval_strategy="epoch", save_strategy="epoch", learning_rate=3e-5,
                             per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH,
                             num_train_epochs=epochs, warmup_steps=0.1, load_best_model_at_end=True,
                             metric_for_best_model="accuracy", report_to="none", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=encode(train), eval_dataset=encode(evaluation),
                      processing_class=extractor, compute_metrics=accuracy)
    return runtime(trainer.train().metrics["train_runtime"], len(train) * epochs, epochs)


def audioclf_default(model_name: Path, train: list[Path], evaluation: list[Path], out: Path, epochs: int,
                     **overrides: Any) -> dict[str, Any]:
    """`audioclf train` at the benchmark's batch, fine-tuning, and TrainConfig's defaults otherwise (max_duration
    included) but for `overrides`."""
    import audioclf

    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = out.parent / f"{out.name}.csv"
    rows = [f"{path},{path.stem.split('_')[0]},train" for path in train]
    # the eval clips are both the validation split (scored every epoch inside train_runtime, as the guide's
    # are) and the test split (scored once after training, outside it)
    rows += [f"{path},{path.stem.split('_')[0]},{split}" for split in ("validation", "test") for path in evaluation]
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    start = time.perf_counter()
    run = audioclf.train(data=str(manifest), model=str(model_name), output=str(out), epochs=epochs, batch_size=BATCH,
                         gradient_accumulation_steps=1, strategy="finetune", **overrides)
    wall = time.perf_counter() - start
    status = json.loads((run / "run.json").read_text())
    return {**runtime(status["train_runtime_s"], len(train) * epochs, epochs), "whole_command_s": round(wall, 1)}


def padded_frames_per_clip(clips: list[Path], epochs: int = 20) -> dict[str, float]:
    """Frames per clip (wav2vec2's 20 ms) that training batches pad to, over `epochs` epochs' orders, with
    audioclf's sampler and with transformers' length-grouped one; and the clips' own mean."""
    import soundfile as sf
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from audioclf.training.finetune import LengthSortedSampler

    lengths = [sf.info(str(clip)).duration * 50 for clip in clips]

    def padded(sampler: Any) -> float:
        torch.manual_seed(0)
        total = 0.0
        for _ in range(epochs):
            order = list(sampler)
            total += sum(len(b) * max(lengths[i] for i in b) for b in (order[i : i + BATCH] for i in
                                                                        range(0, len(order), BATCH)))
        return round(total / (epochs * len(order)), 1)

    return {"audioclf": padded(LengthSortedSampler(lengths, BATCH)),
            "transformers": padded(LengthGroupedSampler(BATCH, lengths=lengths)),
            "clips": round(sum(lengths) / len(lengths), 1)}


def arithmetic(model_dir: Path, figures: dict[str, Any], epochs: int) -> dict[str, Any]:
    """GFLOP per clip and epoch of the two recipes' training steps (torch's FlopCounterMode on one batch of
    each), and the float32 ceiling they set on audioclf's speedup: its arithmetic done at the faster of this
    machine's float32 matrix-product rate and the rate the guide's recipe reached, nothing else taking time.
    The guide: forward and backward at 1 s (`max_length=16000`), nothing frozen. audioclf: the transformer's
    forward and backward, on the frozen encoder's outputs, over the frames its batches pad to (positional
    convolution cropped, as it trains), and that encoder's forward once per clip at the clips' mean length."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForAudioClassification

    from audioclf.inference.positional_conv import cropped_positional_conv
    from audioclf.training.encoder_cache import encoder_outputs_as_input

    model = AutoModelForAudioClassification.from_pretrained(str(model_dir)).train()
    labels = torch.zeros(BATCH, dtype=torch.long)

    def gflop_per_clip(step: Callable[[], Any]) -> float:
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        model.zero_grad()
        return counter.get_total_flops() / BATCH / 1e9

    second = torch.randn(BATCH, 16000)
    guide = gflop_per_clip(lambda: model(input_values=second, labels=labels).loss.backward())
    encoder = model.base_model.feature_extractor.requires_grad_(False)
    frames = figures["padded_frames_per_clip"]
    with torch.no_grad():
        encoded = encoder(second)  # 1 s: 49 frames
        encoder_pass = gflop_per_clip(lambda: encoder(second)) * frames["clips"] / encoded.shape[-1]
    padded = round(frames["audioclf"])
    with encoder_outputs_as_input(model), cropped_positional_conv(model):
        short = encoded[..., :padded]
        steps = gflop_per_clip(lambda: model(input_values=short, labels=labels).loss.backward())
    ours = steps * frames["audioclf"] / padded + encoder_pass / epochs
    clip_epochs = figures["train_clips"] * epochs
    guide_s, ours_s = figures["guide recipe"]["train_runtime_s"], figures["audioclf"]["train_runtime_s"]
    matmul, guide_rate = matmul_gflop_s(), guide * clip_epochs / guide_s
    return {"train_gflop_per_clip_epoch": {"guide recipe": round(guide, 2), "audioclf": round(ours, 2)},
            "guide_gflop_s": round(guide_rate, 1), "audioclf_gflop_s": round(ours * clip_epochs / ours_s, 1),
            "matmul_fp32_gflop_s": matmul,
            "fp32_ceiling_vs_guide": round(guide_s * max(matmul, guide_rate) / (ours * clip_epochs), 2)}


def runtime(seconds: float, clips: int, epochs: int) -> dict[str, float]:
    return {"train_runtime_s": round(seconds, 2), "s_per_epoch": round(seconds / epochs, 2),
            "clips_per_s": round(clips / seconds, 2)}


def show(results: dict[str, Any]) -> None:
    headers = ["model", "clips", "guide s", "s/epoch", "clips/s", "audioclf s", "s/epoch", "clips/s", "speedup"]
    print(f"training, {results['epochs']} epochs, batch {results['batch_size']}, "
          f"FSDD clips ({results['eval_clips']} eval)")
    rows = []
    for name, r in results["models"].items():
        rows.append(row(name, r, "audioclf", r["speedup"]))
        if "audioclf --bf16" in r:
            rows.append(row(f"{name}, audioclf --bf16", r, "audioclf --bf16", r["speedup_bf16"]))
    print_table(headers, rows)
    print(f"(bfloat16 native on this CPU: {results['cpu_native_bf16']})")
    for name, r in results["models"].items():
        if "padded_frames_per_clip" in r:
            pad = r["padded_frames_per_clip"]
            print(f"{name}: batches padded to {pad['audioclf']} frames per clip (transformers' sampler: "
                  f"{pad['transformers']}; the clips' own mean: {pad['clips']})")
        if "arithmetic" in r:
            a = r["arithmetic"]
            work = a["train_gflop_per_clip_epoch"]
            print(f"{name}: training GFLOP per clip and epoch: guide {work['guide recipe']}, audioclf "
                  f"{work['audioclf']}; reached {a['guide_gflop_s']} and {a['audioclf_gflop_s']} GFLOP/s (float32 "
                  f"matrix products here: {a['matmul_fp32_gflop_s']}), so in float32 audioclf can be at most "
                  f"{a['fp32_ceiling_vs_guide']}x the guide")
    print(f"\n5-10 s calls ({results['eval_calls']} eval): the guide keeps 1 s of each, audioclf all of it "
          "(default) or 1 s (like the guide)")
    rows = []
    for name, r in results["long_calls"].items():
        rows.append(row(name, r, "audioclf", r["speedup"]))
        if "speedup_1s" in r:
            rows.append(row(f"{name}, audioclf at 1 s", r, "audioclf, 1 s like the guide", r["speedup_1s"]))
    print_table(headers, rows)


def row(name: str, figures: dict[str, Any], ours: str, speedup: float) -> list[Any]:
    guide, mine = figures["guide recipe"], figures[ours]
    return [name, figures["train_clips"], guide["train_runtime_s"], guide["s_per_epoch"], guide["clips_per_s"],
            mine["train_runtime_s"], mine["s_per_epoch"], mine["clips_per_s"], f"{speedup}x"]


if __name__ == "__main__":
    main()

"""Training throughput on CPU: the HF guide's recipe against `audioclf train`'s default path, same model,
same clips, same batch size, the same number of epochs (3; the guide's default is 10), evaluation and
checkpointing included in both, as both do them every epoch. Figures are the Trainer's own
`train_runtime`, plus, for audioclf, the one-off pass that computes the frozen feature encoder's outputs.

The guide's recipe, as written there: the feature extractor run once over the data with
`max_length=16000, truncation=True` (Whisper: its stock 30 s padding, as that encoder takes nothing
else), `Trainer(processing_class=feature_extractor)` and its default padding collator, nothing frozen.

    python bench/training.py            # wav2vec2-base config on 160 clips; whisper-tiny.en on 48; 3 epochs
    python bench/training.py --quick    # 16 clips each, 1 epoch: checks the script
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any


from _common import (WHISPER_TINY_EN, bench_parser, fsdd_clips, print_table, quiet_transformers, require_shared,
                     wav2vec2_base_digits_model, write_results)

BATCH = 16
LABELS = [str(digit) for digit in range(10)]


def main() -> None:
    parser = bench_parser(__doc__, "16 training clips per model, 1 epoch.", "training")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs
    require_shared()
    quiet_transformers()
    sizes = {"wav2vec2": 16 if args.quick else 160, "whisper": 16 if args.quick else 48}
    eval_clips = fsdd_clips(("lucas",), 16)
    results: dict[str, Any] = {"batch_size": BATCH, "epochs": epochs, "eval_clips": len(eval_clips), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = {"wav2vec2-base config (random weights)": (wav2vec2_base_digits_model(work / "w2v"), "wav2vec2"),
                  "whisper-tiny.en": (WHISPER_TINY_EN, "whisper")}
        for name, (model, kind) in models.items():
            train_clips = fsdd_clips(("george", "jackson"), sizes[kind])
            guide = guide_recipe(model, train_clips, eval_clips, work / f"guide-{kind}", epochs)
            ours = audioclf_default(model, train_clips, eval_clips, work / f"ours-{kind}", epochs)
            results["models"][name] = {"train_clips": len(train_clips), "guide recipe": guide, "audioclf": ours,
                                       "speedup": round(guide["train_runtime_s"] / ours["train_runtime_s"], 2)}
    show(results)
    print(f"wrote {write_results('training', results, args.output)}")


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


def audioclf_default(model_name: Path, train: list[Path], evaluation: list[Path], out: Path, epochs: int
                     ) -> dict[str, Any]:
    import audioclf

    manifest = out.parent / f"{out.name}.csv"
    rows = [f"{path},{path.stem.split('_')[0]},train" for path in train]
    # the eval clips are both the validation split (scored every epoch inside train_runtime, as the guide's
    # are) and the test split (scored once after training, outside it)
    rows += [f"{path},{path.stem.split('_')[0]},{split}" for split in ("validation", "test") for path in evaluation]
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    start = time.perf_counter()
    run = audioclf.train(data=str(manifest), model=str(model_name), output=str(out), epochs=epochs, batch_size=BATCH,
                         gradient_accumulation_steps=1, strategy="finetune")
    wall = time.perf_counter() - start
    status = json.loads((run / "run.json").read_text())
    return {**runtime(status["train_runtime_s"], len(train) * epochs, epochs), "whole_command_s": round(wall, 1)}


def runtime(seconds: float, clips: int, epochs: int) -> dict[str, float]:
    return {"train_runtime_s": round(seconds, 2), "s_per_epoch": round(seconds / epochs, 2),
            "clips_per_s": round(clips / seconds, 2)}


def show(results: dict[str, Any]) -> None:
    rows = []
    for name, r in results["models"].items():
        guide, ours = r["guide recipe"], r["audioclf"]
        rows.append([name, r["train_clips"], guide["train_runtime_s"], guide["s_per_epoch"], guide["clips_per_s"],
                     ours["train_runtime_s"], ours["s_per_epoch"], ours["clips_per_s"], f"{r['speedup']}x"])
    print(f"training, {results['epochs']} epochs, batch {results['batch_size']}, {results['eval_clips']} eval clips, FSDD")
    print_table(["model", "clips", "guide s", "s/epoch", "clips/s", "audioclf s", "s/epoch", "clips/s", "speedup"],
                rows)


if __name__ == "__main__":
    main()

"""Accuracy per CPU-minute on the demo's synthesized banking intents (the 14 MInDS-14 intents, four
English phrasings, eSpeak NG voices), for a model trained from scratch (`audioclf:compact-whisper`, the
recipe of `make demo`), tested on voices it never heard. Reports test and validation accuracy, the
strategy auto kept, and wall and CPU seconds of synthesis and training.

    python bench/accuracy_synth.py            # 24 voices (1,344 clips), 40 epochs, about 8 min on 2 cores
    python bench/accuracy_synth.py --quick    # 4 voices, 1 epoch: checks the script
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import bench_parser, print_table, quiet_transformers, write_results


def main() -> None:
    from audioclf.demo import DEMO_LANGUAGES, DEMO_MODEL, DEMO_VOICES, demo_config
    from audioclf.synth import SynthOptions, bundled_phrases, synthesize_dataset

    parser = bench_parser(__doc__, "4 voices, 1 epoch.", "accuracy_synth")
    args = parser.parse_args()
    quiet_transformers()
    voices, seed = (4 if args.quick else DEMO_VOICES), 42
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        synthesis = timed(lambda: synthesize_dataset(bundled_phrases(), data, SynthOptions(
            voices=voices, sample_rate=16000, languages=DEMO_LANGUAGES, seed=seed)))
        config = {**demo_config(Path(tmp) / "run", data, DEMO_MODEL), **({"epochs": 1.0} if args.quick else {})}
        import audioclf

        training = timed(lambda: audioclf.train(config, seed=seed))
        status = json.loads((Path(tmp) / "run" / "run.json").read_text())
    results: dict[str, Any] = {
        "model": DEMO_MODEL, "voices": voices, "seed": seed, "config": {k: v for k, v in config.items()
                                                                         if k not in ("data", "output")},
        "test_accuracy": status["accuracy"], "validation_accuracy": status["validation_accuracy"],
        "strategy_used": status["strategy_used"], "num_train_clips": status["num_train_clips"],
        "num_validation_clips": status["num_validation_clips"], "num_test_clips": status["num_eval_clips"],
        "synthesis": synthesis, "training": training}
    print(f"synthesized banking intents, {voices} voices, {DEMO_MODEL} from scratch, test on unseen voices")
    print_table(["strategy kept", "train/val/test clips", "test acc", "val acc", "train CPU min", "train wall min",
                 "synth wall min"],
                [[status["strategy_used"], f"{status['num_train_clips']}/{status['num_validation_clips']}/"
                  f"{status['num_eval_clips']}", round(status["accuracy"], 4), round(status["validation_accuracy"], 4),
                  round(training["cpu_s"] / 60, 2), round(training["wall_s"] / 60, 2),
                  round(synthesis["wall_s"] / 60, 2)]])
    print(f"wrote {write_results('accuracy_synth', results, args.output)}")


def timed(work: Any) -> dict[str, float]:
    """Wall and CPU seconds (all threads of this process; synthesis speaks in a child process, so its CPU
    time is not counted here) of `work()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}


if __name__ == "__main__":
    main()

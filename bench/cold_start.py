"""Cold start: wall time of `audioclf --help` and of a one-file `audioclf predict` (PyTorch and ONNX folders),
beside what an eager CLI pays to import torch + transformers and a one-file stock-pipeline script.

    python bench/cold_start.py            # median of 5 runs each
    python bench/cold_start.py --quick    # 1 run each
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import bench_parser, fsdd_clips, print_table, require_shared, whisper_digits_model, write_results

STOCK_SCRIPT = """
import sys, soundfile, soxr
from transformers import pipeline
wave, rate = soundfile.read(sys.argv[2], dtype="float32")
print(pipeline("audio-classification", model=sys.argv[1])(soxr.resample(wave, rate, 16000), top_k=1))
"""


def main() -> None:
    parser = bench_parser(__doc__, "1 run each.", "cold_start")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    require_shared()
    import audioclf

    audioclf_bin = str(Path(sys.executable).parent / "audioclf")
    clip = str(fsdd_clips(("lucas",), 1)[0])
    with tempfile.TemporaryDirectory() as tmp:
        model = whisper_digits_model(Path(tmp) / "whisper")
        onnx = audioclf.export(model, Path(tmp) / "whisper-onnx")
        commands = {
            "audioclf --help": [audioclf_bin, "--help"],
            "reference: python -c 'import torch, transformers'": [sys.executable, "-c", "import torch, transformers"],
            "audioclf predict (PyTorch folder, 1 file)": [audioclf_bin, "-q", "predict", str(model), clip],
            "audioclf predict (ONNX folder, 1 file)": [audioclf_bin, "-q", "predict", str(onnx), clip],
            "reference: stock pipeline script, 1 file": [sys.executable, "-c", STOCK_SCRIPT, str(model), clip],
        }
        seconds = {name: median_wall(command, runs) for name, command in commands.items()}
    print(f"cold start, whisper-tiny.en classifier (1 s context), median of {runs} run(s)")
    print_table(["command", "seconds"], [[name, f"{s:.2f}"] for name, s in seconds.items()])
    path = write_results("cold_start", {"runs": runs, "seconds": seconds, "help_target_s": 0.5}, args.output)
    print(f"wrote {path}")


def median_wall(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


if __name__ == "__main__":
    main()

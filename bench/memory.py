"""Peak memory (RSS) of `audioclf train` on 1x and 10x the data: the disk audio cache (default) against
holding every decoded clip in memory (`--no-cache-audio`, the reference). Synthesized 6 s clips, a small
wav2vec2 config, one epoch; each run is its own process, measured with wait4's ru_maxrss.

    python bench/memory.py            # 100 and 1,000 clips of 6 s
    python bench/memory.py --quick    # 15 and 150 clips of 2 s
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _common import bench_parser, print_table, write_results

FREQUENCIES = {"low": 220.0, "mid": 660.0, "high": 1760.0}


def main() -> None:
    parser = bench_parser(__doc__, "15 and 150 clips of 2 s.", "memory")
    args = parser.parse_args()
    base, seconds = (15, 2.0) if args.quick else (100, 6.0)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = small_wav2vec2(work / "model")
        for scale in (1, 10):
            data = synthesize(work / f"data-{scale}x", base * scale, seconds)
            modes = (("disk cache (default)", "--cache-audio"), ("in memory (reference)", "--no-cache-audio"))
            for mode, flag in modes:
                peak = train_peak_rss_mb(data, model, work / f"run-{scale}x-{flag}", flag, work / "cache")
                rows[f"{scale}x ({base * scale} clips), {mode}"] = {"clips": base * scale, "scale": scale,
                                                                    "mode": mode, "peak_rss_mb": peak}
    print(f"peak RSS of `audioclf train`, {seconds:g} s clips, 1 epoch")
    print_table(["run", "peak RSS MB"], [[name, r["peak_rss_mb"]] for name, r in rows.items()])
    growth = {mode: round(next(r["peak_rss_mb"] for r in rows.values() if r["mode"] == mode and r["scale"] == 10)
                          - next(r["peak_rss_mb"] for r in rows.values() if r["mode"] == mode and r["scale"] == 1), 1)
              for mode in ("disk cache (default)", "in memory (reference)")}
    print("growth from 1x to 10x: " + ", ".join(f"{mode} +{mb} MB" for mode, mb in growth.items()))
    print(f"wrote {write_results('memory', {'clip_seconds': seconds, 'runs': rows, 'growth_mb': growth}, args.output)}")


def small_wav2vec2(folder: Path) -> Path:
    from transformers import AutoModelForAudioClassification, Wav2Vec2Config, Wav2Vec2FeatureExtractor

    config = Wav2Vec2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                             conv_dim=(64, 64, 64), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 8),
                             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0)
    AutoModelForAudioClassification.from_config(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(folder)
    return folder


def synthesize(folder: Path, clips: int, seconds: float, rate: int = 16000) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(clips):
        label, freq = list(FREQUENCIES.items())[i % 3]
        wave = 0.3 * np.sin(2 * np.pi * freq * rng.uniform(0.97, 1.03) * t) + 0.02 * rng.standard_normal(t.size)
        path = folder / label / f"{label}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), rate)
    return folder


def train_peak_rss_mb(data: Path, model: Path, output: Path, cache_flag: str, cache_dir: Path) -> float:
    command = [str(Path(sys.executable).parent / "audioclf"), "-q", "train", "--data", str(data), "--model",
               str(model), "--output", str(output), "--epochs", "1", "--batch-size", "8",
               "--gradient-accumulation-steps", "1", "--strategy", "finetune", cache_flag,
               "--cache-dir", str(cache_dir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: training failed: {process.stderr.read().decode()[-2000:]}")
    return round(usage.ru_maxrss / 1024, 1)  # Linux reports KiB


if __name__ == "__main__":
    main()

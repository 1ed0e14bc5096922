"""Shared by the benchmark scripts: where the real data lies, what machine ran, and writing results JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FSDD = SHARED / "data" / "fsdd" / "recordings"
WHISPER_TINY_EN = SHARED / "models" / "whisper-tiny.en"
RESULTS = Path(__file__).resolve().parent / "results"


def bench_parser(doc: str | None, quick_help: str, name: str, cpu_only: bool = True) -> argparse.ArgumentParser:
    """The flags every benchmark takes: --quick (small, to check the script) and --output. A CPU benchmark
    (`cpu_only`, all but gpu_check.py) hides any GPU from torch, before torch is imported, so that audioclf's
    `--device auto` runs on the CPU like the reference beside it."""
    if cpu_only:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--output", type=Path, help=f"Results JSON (default: bench/results/{name}.json).")
    return parser


def quiet_transformers() -> None:
    """Load reports and progress bars of transformers would bury the benchmark's table."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def require_shared() -> None:
    if not (FSDD.is_dir() and WHISPER_TINY_EN.is_dir()):
        sys.exit(f"bench: needs the real data and model in {SHARED} (the workplace's ../shared)")


def environment() -> dict[str, Any]:
    """The command, machine and versions a figure was measured with."""
    versions = {name: _version(name) for name in ("audioclf", "torch", "transformers", "onnxruntime", "fastapi",
                                                  "uvicorn")}
    return {
        "command": " ".join(shlex.quote(arg) for arg in [Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git_commit(),
        "machine": {"cpu_cores": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "versions": {name: v for name, v in versions.items() if v},
    }


def cpu_model() -> str | None:
    """The CPU's model name and its widest vector instructions, from /proc/cpuinfo (None where there is none):
    these machines' speed, and what --bf16 gains, differ by CPU (one model name covered an AVX2-only and an
    AVX-512 BF16 EPYC here), so a figure names the one it ran on."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    lines = info.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    return name and f"{name} ({vector_isa(flags)})"


def vector_isa(flags: set[str]) -> str:
    """The widest vector (and matrix) instructions among a CPU's /proc/cpuinfo flags."""
    for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
                        ("avx2", "AVX2")):
        if flag in flags:
            return label
    return "no AVX2"


def _git_commit() -> str | None:
    import subprocess

    done = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_results(name: str, results: dict[str, Any], output: Path | None = None) -> Path:
    path = output or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, **environment(), **results}, indent=2) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def whisper_digits_model(folder: Path, context_s: int = 1) -> Path:
    """The real whisper-tiny.en encoder with a fresh 10-digit head and a cut context: the real compute."""
    from audioclf.features import load_feature_extractor
    from audioclf.models import load_for_training, shorten_whisper_context
    from audioclf.runs import save_model

    quiet_transformers()  # the load report lists the unused Whisper decoder
    model = load_for_training(str(WHISPER_TINY_EN), [str(digit) for digit in range(10)])
    extractor = load_feature_extractor(str(WHISPER_TINY_EN))
    shorten_whisper_context(model, extractor, context_s)
    folder.mkdir(parents=True)
    save_model(model, extractor, folder)
    return folder


def wav2vec2_base_digits_model(folder: Path) -> Path:
    """A wav2vec2-base-sized model (random weights: the real compute, no download), wav2vec2-base's extractor
    settings (no attention mask), a 10-digit head. Seeded: every run of a benchmark gets the same weights."""
    from transformers import AutoModelForAudioClassification, Wav2Vec2Config, Wav2Vec2FeatureExtractor, set_seed

    from audioclf.models import label_maps

    label2id, id2label = label_maps([str(digit) for digit in range(10)])
    config = Wav2Vec2Config(num_labels=10, label2id=label2id, id2label=id2label, layerdrop=0.0)
    set_seed(0)
    model = AutoModelForAudioClassification.from_config(config)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=False)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def fsdd_clips(speakers: tuple[str, ...], limit: int | None = None) -> list[Path]:
    """FSDD files (`<digit>_<speaker>_<n>.wav`) of these speakers, spread over digits when limited."""
    clips = sorted(p for p in FSDD.glob("*.wav") if p.stem.split("_")[1] in speakers)
    if limit and limit < len(clips):
        step = len(clips) / limit
        clips = [clips[int(i * step)] for i in range(limit)]
    return clips


def fsdd_manifest(path: Path, train: tuple[str, ...], test: tuple[str, ...], limit: int | None = None) -> Path:
    """A manifest of FSDD with a speaker-disjoint split (`limit`: that many clips in all, spread as `fsdd_clips`)."""
    rows = ["path,label,group,split"]
    for clip in fsdd_clips(train + test, limit):
        digit, speaker, _ = clip.stem.split("_")
        rows.append(f"{clip},{digit},{speaker},{'train' if speaker in train else 'test'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def long_digit_calls(folder: Path, speakers: tuple[str, ...], count: int, seed: int = 0) -> list[Path]:
    """Clips of 5-10 s, as long as MInDS-14 calls, made from FSDD: one speaker saying one digit again and
    again, takes joined by 0.2-0.8 s pauses, 16 kHz. Named like FSDD files, so labels parse the same way."""
    import soundfile as sf

    from audioclf.audio import load_audio

    rate = 16000
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    calls = []
    for i in range(count):
        digit, speaker = i % 10, speakers[i % len(speakers)]
        takes = sorted(FSDD.glob(f"{digit}_{speaker}_*.wav"))
        target = int(rng.uniform(5.0, 10.0) * rate)
        pieces, length = [], 0
        while length < target:
            take = load_audio(takes[rng.integers(len(takes))], rate)
            pieces += [take, np.zeros(int(rng.uniform(0.2, 0.8) * rate), dtype=np.float32)]
            length += take.size + pieces[-1].size
        path = folder / f"{digit}_{speaker}_call{i}.wav"
        sf.write(path, np.concatenate(pieces)[:target], rate)
        calls.append(path)
    return calls


def matmul_gflop_s(size: int = 2048, repeats: int = 20, dtype: str = "float32") -> float:
    """This machine's matrix-product rate through torch (its default threads): a practical ceiling for
    PyTorch inference in that dtype, whose time goes mostly to matrix products and convolutions."""
    import torch

    a, b = (torch.randn(size, size, dtype=getattr(torch, dtype)) for _ in range(2))
    return _product_rate(lambda: a @ b, size, repeats)


def onnxruntime_matmul_gflop_s(size: int = 2048, repeats: int = 20) -> float:
    """The same float32 product through onnxruntime (its default threads), whose own kernels can outrun
    torch's on some CPUs (an AMD EPYC here): the ceiling for the ONNX runners."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
        initializer=[numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"a": rng.standard_normal((size, size), dtype=np.float32)}
    return _product_rate(lambda: session.run(None, feed), size, repeats)


def _product_rate(product: Callable[[], Any], size: int, repeats: int) -> float:
    """GFLOP/s of `product`, one (size x size) @ (size x size) matrix product, after 3 warm-up calls."""
    for _ in range(3):
        product()
    start = time.perf_counter()
    for _ in range(repeats):
        product()
    return round(2 * size**3 * repeats / (time.perf_counter() - start) / 1e9, 1)

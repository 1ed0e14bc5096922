"""Every stage on a GPU, checked against the CPU: train (probe and fine-tune), predict (clips and windows, float32,
--bf16, --fp16), export (traced on the GPU, run by onnxruntime) and serve, each scored beside the same model on
the CPU. Needs no ../shared: the data are synthesized tones and the model a seeded wav2vec2-style config (group
norm, so exact batching runs too); whisper-tiny.en from ../shared is added where it is there.

    python bench/gpu_check.py                  # on a machine with a CUDA GPU
    python bench/gpu_check.py --device cpu     # the same checks CPU against CPU: the script's own test
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import WHISPER_TINY_EN, bench_parser, print_table, quiet_transformers, write_results

TONES = {"low": 220.0, "mid": 660.0, "high": 1760.0}
RATE = 16000
SCORE_ATOL = 1e-3  # float32 on two devices: the same sums in another order
HALF_AGREEMENT = 0.9  # top-1 under bf16/fp16 autocast against float32


def main() -> None:
    parser = bench_parser(__doc__, "Fewer clips and epochs.", "gpu_check", cpu_only=False)
    parser.add_argument("--device", default="cuda", help="The device checked against the CPU (default: cuda).")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench/gpu_check.py: torch sees no CUDA GPU here; run it on a machine with one")
    quiet_transformers()
    checks: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = tone_folder(root / "data", per_label=6 if args.quick else 16)
        models = {"wav2vec2-style (random, group norm)": small_wav2vec2(root / "wav2vec2")}
        if WHISPER_TINY_EN.is_dir():
            models["whisper-tiny.en"] = WHISPER_TINY_EN
        for name, model in models.items():
            checks[name] = check_model(model, data, root / name.split()[0], args.device, args.quick)
    rows = [[model, check, figures["figure"], figures["passed"]]
            for model, by_check in checks.items() for check, figures in by_check.items()]
    print_table(["model", f"check ({args.device} against cpu)", "figure", "passed"], rows)
    if args.device == "cpu":
        print("(--device cpu: CPU against CPU, a check of this script; the figures say nothing of a GPU)")
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    path = write_results("gpu_check", {"device": args.device, "device_name": device_name,
                                       "all_passed": all(r[3] for r in rows), "checks": checks}, args.output)
    print(f"wrote {path}")
    sys.exit(0 if all(r[3] for r in rows) else 1)


def check_model(model: Path, data: Path, work: Path, device: str, quick: bool) -> dict[str, dict[str, Any]]:
    """Each stage on `device` and on the CPU, with the figure that compares them."""
    import audioclf
    from audioclf import Classifier

    common = dict(data=str(data), model=str(model), batch_size=4, gradient_accumulation_steps=1, max_duration=2,
                  learning_rate=1e-3, epochs=1 if quick else 3)
    probe = [audioclf.train(**common, strategy="probe", device=where, output=str(work / f"probe-{i}"))
             for i, where in enumerate((device, "cpu"))]
    tuned, tuned_on_cpu = (audioclf.train(**common, strategy="finetune", device=where, output=str(work / f"tuned-{i}"))
                           for i, where in enumerate((device, "cpu")))
    waves = [wave for _, wave in tone_clips(per_label=4, seed=7)]
    on_cpu = Classifier.load(tuned, device="cpu")
    scores = on_cpu.probabilities(waves)
    checks = {
        "train probe: test accuracy, device vs cpu": _figure(
            *(_metric(run, "accuracy") for run in probe), atol=0.15),
        "train finetune: test accuracy, device vs cpu": _figure(
            *(_metric(run, "accuracy") for run in (tuned, tuned_on_cpu)), atol=0.25),
        "predict float32: max |score difference|": _close(Classifier.load(tuned, device=device).probabilities(waves),
                                                          scores),
        "predict --bf16: top-1 agreement": _agreement(
            Classifier.load(tuned, device=device, bf16=True).probabilities(waves), scores),
        "windows: max |score difference|": _close(*(_window_scores(Classifier.load(tuned, device=where), waves)
                                                    for where in (device, "cpu"))),
    }
    if device.startswith("cuda"):
        checks["predict --fp16: top-1 agreement"] = _agreement(
            Classifier.load(tuned, device=device, fp16=True).probabilities(waves), scores)
    exported = audioclf.export(tuned, work / "onnx", device=device)
    checks["export (traced on device), onnxruntime cpu: max |score difference|"] = _close(
        Classifier.load(exported, device="cpu").probabilities(waves), scores, atol=1e-4)
    checks["serve: max |score difference|"] = _close(_served_scores(tuned, device, waves, on_cpu.labels), scores)
    return checks


def _window_scores(classifier: Any, waves: list[np.ndarray]) -> np.ndarray:
    rows = classifier.predict_windows([np.concatenate(waves)], window_s=0.5, hop_s=0.25, top_k=1)[0]
    return np.array([row["predictions"][0]["score"] for row in rows])


def _served_scores(run: Path, device: str, waves: list[np.ndarray], labels: list[str]) -> np.ndarray:
    """Each clip through `serve`'s HTTP API (FastAPI's test client), as a score row in `labels`' order."""
    import soundfile as sf
    from fastapi.testclient import TestClient

    from audioclf.inference.server import ServeOptions, create_app

    rows = []
    with TestClient(create_app(str(run), ServeOptions(device=device, top_k=len(labels)))) as client:
        deadline = time.monotonic() + 300  # the model loads in the background; /readyz says when it is in
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        for wave in waves:
            body = io.BytesIO()
            sf.write(body, wave, RATE, format="WAV", subtype="FLOAT")
            answer = client.post("/v1/classify", content=body.getvalue(), headers={"content-type": "audio/wav"})
            answer.raise_for_status()
            by_label = {p["label"]: p["score"] for p in answer.json()["predictions"]}
            rows.append([by_label[label] for label in labels])
    return np.array(rows)


def _metric(run: Path, name: str) -> float:
    import json

    return float(json.loads((run / "metrics.json").read_text())[name])


def _close(ours: np.ndarray, cpu: np.ndarray, atol: float = SCORE_ATOL) -> dict[str, Any]:
    difference = float(np.abs(np.asarray(ours) - np.asarray(cpu)).max())
    return _passed(difference <= atol, round(difference, 7))


def _agreement(ours: np.ndarray, cpu: np.ndarray) -> dict[str, Any]:
    share = float((ours.argmax(-1) == cpu.argmax(-1)).mean())
    return _passed(share >= HALF_AGREEMENT, share)


def _figure(ours: float, cpu: float, atol: float) -> dict[str, Any]:
    return _passed(abs(ours - cpu) <= atol, f"{ours:.3f} vs {cpu:.3f}")


def _passed(ok: bool, figure: Any) -> dict[str, Any]:
    return {"figure": figure, "passed": bool(ok)}


def tone_clips(per_label: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Harmonic tones with vibrato and noise, 0.4-1.2 s, one pitch per label."""
    rng = np.random.default_rng(seed)
    clips = []
    for label, freq in TONES.items():
        for _ in range(per_label):
            t = np.arange(int(rng.uniform(0.4, 1.2) * RATE)) / RATE
            phase = 2 * np.pi * freq * np.cumsum(1 + 0.01 * np.sin(2 * np.pi * 4 * t)) / RATE
            wave = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.05 * rng.standard_normal(t.size)
            clips.append((label, (0.3 * wave / np.abs(wave).max()).astype(np.float32)))
    return clips


def tone_folder(root: Path, per_label: int) -> Path:
    import soundfile as sf

    for i, (label, wave) in enumerate(tone_clips(per_label, seed=0)):
        (root / label).mkdir(parents=True, exist_ok=True)
        sf.write(root / label / f"{i}.wav", wave, RATE)
    return root


def small_wav2vec2(folder: Path) -> Path:
    """A seeded wav2vec2-style checkpoint (group norm, no attention mask, weighted-layer-sum head), 4 layers."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                            conv_dim=(64,) * 7, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4)
    torch.manual_seed(0)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True).save_pretrained(folder)
    return folder


if __name__ == "__main__":
    main()

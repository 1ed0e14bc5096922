"""Shared test helpers: synthesized labeled audio, tiny random models, and the ../shared data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FSDD = SHARED / "data" / "fsdd" / "recordings"
WHISPER_TINY_EN = SHARED / "models" / "whisper-tiny.en"

needs_shared = pytest.mark.skipif(
    not (FSDD.is_dir() and WHISPER_TINY_EN.is_dir()),
    reason=f"real data not found at {SHARED} (the workplace's ../shared beside the project root)",
)

TONES = {"low": 220.0, "mid": 660.0, "high": 1760.0}


def tone(freq: float, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone with vibrato and noise: easy to tell apart by pitch, never identical twice."""
    t = np.arange(int(seconds * rate)) / rate
    vibrato = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
    phase = 2 * np.pi * freq * np.cumsum(vibrato) / rate
    wave = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.05 * rng.standard_normal(t.size)
    return (0.3 * rng.uniform(0.5, 1.0) * wave / np.abs(wave).max()).astype(np.float32)


def write_tone_folder(
    root: Path, per_label: int = 8, rate: int = 8000, labels: dict[str, float] | None = None, seed: int = 0
) -> Path:
    """An audiofolder (`<label>/<speaker>/<clip>.wav`) of tones with varied lengths."""
    rng = np.random.default_rng(seed)
    for label, freq in (labels or TONES).items():
        for i in range(per_label):
            path = root / label / f"spk{i % 2}" / f"{label}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(freq, rng.uniform(0.4, 1.2), rate, rng), rate)
    return root


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def tone_folder(tmp_path: Path) -> Path:
    return write_tone_folder(tmp_path / "tones")


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random wav2vec2-base-style checkpoint (group norm, no attention mask) saved to disk."""
    from tiny_models import save_tiny

    return save_tiny("wav2vec2", tmp_path_factory.mktemp("tiny-wav2vec2"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished run folder: a tiny wav2vec2 trained to tell the three tones apart, and its data folder."""
    import audioclf
    from tiny_models import save_tiny

    root = tmp_path_factory.mktemp("trained")
    checkpoint = save_tiny("wav2vec2", root / "base")
    data = write_tone_folder(root / "data", per_label=6, rate=8000)
    run = audioclf.train(data=str(data), model=str(checkpoint), output=str(root / "run"), epochs=8, batch_size=4,
                         gradient_accumulation_steps=1, learning_rate=1e-3, warmup_ratio=0.0,
                         freeze_feature_encoder=False)
    return run, data


@pytest.fixture(scope="session", autouse=True)
def audio_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training's disk cache of decoded audio goes to a temporary folder, not the user's ~/.cache."""
    import os

    folder = tmp_path_factory.mktemp("audio-cache")
    os.environ["AUDIOCLF_CACHE_DIR"] = str(folder)
    return folder

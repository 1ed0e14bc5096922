"""Audio in: decode (soundfile), downmix, resample (soxr), validate, crop and mix noise; no FFmpeg or torchaudio."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")

# A clip is a file path, encoded bytes (e.g. a Hub dataset row), or a waveform with its sampling rate.
AudioSource = Union[str, Path, bytes, tuple[np.ndarray, int]]


class AudioError(ValueError):
    """A clip that cannot be used; `name` says which clip and `reason` why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class UndecodableAudio(AudioError):
    """The bytes are not audio in a format soundfile reads (or the file is missing)."""


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS


def decode(source: AudioSource, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode a clip to a float32 mono waveform and its sampling rate."""
    name = name or _describe(source)
    if isinstance(source, tuple):
        wave, rate = np.asarray(source[0], dtype=np.float32), int(source[1])
    else:
        wave, rate = _read_file(source, name)
    return to_mono(wave), rate


def _read_file(source: str | Path | bytes, name: str) -> tuple[np.ndarray, int]:
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise UndecodableAudio(name, "file not found" if not Path(source).exists() else "not a file")
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source) as handle:
            check_not_truncated(handle.extra_info, name)
            return handle.read(dtype="float32", always_2d=True), handle.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        if isinstance(err, AudioError):
            raise
        raise UndecodableAudio(name, f"cannot decode audio ({getattr(err, 'error_string', err)})") from None


# libsndfile reads a cut-off WAV/AIFF without complaint and only logs "data : 32000 (should be 56)";
# its log is the one place that tells a truncated upload or copy from a short clip.
_SHORT_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTHS = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # streaming writers leave these in the header


def check_not_truncated(sndfile_log: str, name: str) -> None:
    """Raise AudioError when the header declares more audio data than the file holds."""
    for declared, present in _SHORT_DATA_CHUNK.findall(sndfile_log):
        declared, present = int(declared), int(present)
        if present < declared and declared not in _UNKNOWN_LENGTHS:
            raise AudioError(name, f"truncated file: header declares {declared} bytes of audio, file holds {present}")


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Average channels: soundfile gives (frames, channels); a 1-D array is already mono."""
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D or (frames, channels) waveform, got shape {wave.shape}")
    return np.ascontiguousarray(wave, dtype=np.float32)


def resample(wave: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return wave
    return soxr.resample(wave, rate, target_rate).astype(np.float32, copy=False)


def validate(wave: np.ndarray, name: str) -> np.ndarray:
    """Reject clips a model cannot learn from: empty, or holding NaN/Inf samples."""
    if wave.size == 0:
        raise AudioError(name, "empty clip (no samples)")
    if not np.isfinite(wave).all():
        raise AudioError(name, "holds NaN or Inf samples")
    return wave


def crop(wave: np.ndarray, rate: int, max_duration: float | None) -> np.ndarray:
    """Keep the first `max_duration` seconds."""
    if max_duration is None:
        return wave
    return wave[: max(1, int(round(max_duration * rate)))]


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Mix in pink-ish noise (white noise through a one-pole low-pass) `snr_db` below the speech power
    (measured over non-silent samples)."""
    from scipy.signal import lfilter

    noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal(wave.size)).astype(np.float32)
    voiced = np.abs(wave) > 1e-4
    speech_power = float(np.mean(wave[voiced] ** 2)) if voiced.any() else 1e-8
    noise_power = float(np.mean(noise**2)) or 1.0
    return (wave + noise * np.sqrt(speech_power / noise_power / 10 ** (snr_db / 10))).astype(np.float32)


def load_audio(
    source: AudioSource, target_rate: int, max_duration: float | None = None, name: str | None = None,
    min_samples: int = 1,
) -> np.ndarray:
    """The single preprocessing path for training, evaluation and inference: decode -> mono ->
    resample -> validate -> crop. Raises AudioError naming the clip, also when fewer than `min_samples`
    (the model's shortest input) are left."""
    name = name or _describe(source)
    wave, rate = decode(source, name)
    if rate <= 0:
        raise AudioError(name, f"invalid sampling rate {rate}")
    wave = crop(resample(validate(wave, name), rate, target_rate), target_rate, max_duration)
    if wave.size < min_samples:
        raise AudioError(name, f"too short for this model: {wave.size} samples at {target_rate} Hz, "
                               f"it needs at least {min_samples}")
    return wave


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes of audio>"
    return "<waveform>"

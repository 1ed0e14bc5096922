"""Audio: decode every supported format with soundfile, downmix, resample with soxr, validate, crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioclf.audio import AudioError, crop, decode, load_audio


def sine(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.mark.parametrize(("suffix", "fmt"), [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")])
def test_decodes_each_format_to_16khz_float32(tmp_path: Path, suffix: str, fmt: str) -> None:
    path = tmp_path / f"clip{suffix}"
    sf.write(path, sine(1.0, 8000), 8000, format=fmt)
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) <= 1200  # mp3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(wave[:16000] if len(wave) >= 16000 else wave, n=16000))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # the tone survives decoding and resampling


def test_stereo_is_downmixed(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    left, right = sine(0.5, 16000), np.zeros(8000, dtype=np.float32)
    sf.write(path, np.stack([left, right], axis=1), 16000)
    wave, rate = decode(path)
    assert rate == 16000 and wave.shape == (8000,)
    np.testing.assert_allclose(wave, left / 2, atol=1e-4)


def test_crop_keeps_the_first_seconds() -> None:
    wave = np.arange(32000, dtype=np.float32)
    assert len(crop(wave, 16000, 1.0)) == 16000 and len(crop(wave, 16000, None)) == 32000


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "cannot decode"), (b"not audio at all", "cannot decode"),
     (b"RIFF\x10\x00\x00\x00WAVEfmt ", "cannot decode")],
)
def test_unreadable_files_name_the_path_and_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason) as info:
        load_audio(path, 16000)
    assert info.value.name == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "gone.wav", 16000)


def test_empty_and_non_finite_waveforms_are_rejected() -> None:
    with pytest.raises(AudioError, match="empty"):
        load_audio((np.zeros(0, dtype=np.float32), 16000), 16000)
    nan_wave = sine(0.1, 16000)
    nan_wave[5] = np.nan
    with pytest.raises(AudioError, match="NaN or Inf"):
        load_audio((nan_wave, 16000), 16000)


def test_zero_length_wav_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(path, 16000)


def test_encoded_bytes_decode_like_files(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    sf.write(path, sine(0.25, 8000), 8000)
    np.testing.assert_array_equal(load_audio(path.read_bytes(), 16000), load_audio(path, 16000))

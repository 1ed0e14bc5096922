"""`audioclf synth`: a labeled speech dataset from a YAML of phrases, spoken by varied synthetic voices."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from audioclf.audio import add_noise, resample
from audioclf.runs import atomic_write_bytes, atomic_write_text

# eSpeak NG accents per language; a synthetic voice speaks each language with one of them.
ACCENTS = {
    "en": ["en-us", "en", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-scotland"],
    "fr": ["fr", "fr-be", "fr-ch"],
    "de": ["de"],
    "es": ["es", "es-419"],
    "it": ["it"],
}
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"]
TELEPHONE_BAND_HZ = (300.0, 3400.0)


class _StringScalarLoader(yaml.SafeLoader):
    """YAML 1.1 reads yes/no/on/off as booleans, but those are exactly the labels of keyword datasets."""


_StringScalarLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class PhraseFileError(ValueError):
    """A phrases file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker: eSpeak variant, base pitch and speaking rate, one accent per language."""

    name: str
    variant: str
    pitch: int
    rate_wpm: int
    accents: dict[str, str]


@dataclass
class SynthOptions:
    voices: int = 12
    sample_rate: int = 16000
    noise_snr: tuple[float, float] | None = None
    telephone: bool = False
    languages: list[str] | None = None
    seed: int = 0


def bundled_phrases(name: str = "minds14") -> Path:
    """Path of a phrases file shipped with audioclf (`minds14`: the 14 banking intents)."""
    return Path(str(resources.files("audioclf.synth") / "phrases" / f"{name}.yaml"))


def load_phrases(path: Path, languages: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """label -> language -> phrasings, restricted to `languages` when given."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_StringScalarLoader)
    except (OSError, yaml.YAMLError) as err:
        raise PhraseFileError(f"{path}: cannot read phrases ({err})") from None
    if not isinstance(data, dict) or not data:
        raise PhraseFileError(f"{path}: expected a mapping of label -> language -> list of phrases")
    phrases: dict[str, dict[str, list[str]]] = {}
    for label, by_language in data.items():
        if not isinstance(by_language, dict):
            raise PhraseFileError(f"{path}: label '{label}' must map languages to lists of phrases")
        kept = {lang: [str(p) for p in texts] for lang, texts in by_language.items()
                if not languages or lang in languages}
        if not any(kept.values()):
            wanted = ", ".join(languages or ["any language"])
            raise PhraseFileError(f"{path}: label '{label}' has no phrases in {wanted}")
        phrases[str(label)] = kept
    return phrases


def make_voices(count: int, languages: list[str], seed: int) -> list[Voice]:
    rng = np.random.default_rng(seed)
    voices = []
    choices = {lang: ACCENTS.get(lang, [lang]) for lang in languages}
    for i in range(count):
        accents = {lang: options[int(rng.integers(len(options)))] for lang, options in choices.items()}
        voices.append(Voice(f"voice{i:02d}", VARIANTS[i % len(VARIANTS)], int(rng.integers(25, 75)),
                            int(rng.integers(140, 200)), accents))
    return voices


def synthesize_dataset(phrases_file: Path, output: Path, options: SynthOptions) -> Path:
    """Speak every phrasing in every voice; write `clips/<label>/...wav` and `manifest.csv`
    (path,label,group,text,language) under `output`. Deterministic given `options.seed`: eSpeak NG
    keeps state across calls, so the speaking happens in a fresh process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    phrases = load_phrases(phrases_file, options.languages)
    languages = sorted({lang for by_lang in phrases.values() for lang in by_lang})
    voices = make_voices(options.voices, languages, options.seed)
    jobs = [(voice, label, lang, i, text) for voice in voices for label, by_lang in phrases.items()
            for lang, texts in by_lang.items() for i, text in enumerate(texts)]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = pool.submit(_render, jobs, Path(output), options).result()
    _write_manifest(Path(output) / "manifest.csv", rows)
    return Path(output) / "manifest.csv"


def _render(jobs: list[tuple[Voice, str, str, int, str]], output: Path, options: SynthOptions) -> list[dict[str, str]]:
    import soundfile as sf
    from tqdm.auto import tqdm

    from audioclf.synth.espeak import espeak

    engine = espeak()
    rng = np.random.default_rng(options.seed + 1)
    rows = []
    for index, (voice, label, lang, i, text) in enumerate(tqdm(jobs, desc="synthesizing", unit="clip")):
        wave = engine.speak(text, f"{voice.accents[lang]}+{voice.variant}",
                            rate_wpm=int(voice.rate_wpm * rng.uniform(0.9, 1.1)),
                            pitch=int(np.clip(voice.pitch + rng.integers(-6, 7), 0, 100)),
                            seed=options.seed * 100_003 + index)
        wave = _finish(resample(wave, engine.rate, options.sample_rate), options, rng)
        rel = Path("clips") / label / f"{voice.name}_{lang}_{i}.wav"
        buffer = io.BytesIO()
        sf.write(buffer, wave, options.sample_rate, format="WAV", subtype="PCM_16")
        atomic_write_bytes(output / rel, buffer.getvalue())
        rows.append({"path": rel.as_posix(), "label": label, "group": voice.name, "text": text, "language": lang})
    return rows


def _finish(wave: np.ndarray, options: SynthOptions, rng: np.random.Generator) -> np.ndarray:
    """Silence around the speech, telephone band, background noise, and a random level."""
    lead, tail = (int(rng.uniform(0.05, 0.3) * options.sample_rate) for _ in range(2))
    wave = np.concatenate([np.zeros(lead, np.float32), wave, np.zeros(tail, np.float32)])
    if options.telephone:
        wave = _band_pass(wave, options.sample_rate, *TELEPHONE_BAND_HZ)
    if options.noise_snr:
        wave = add_noise(wave, float(rng.uniform(*options.noise_snr)), rng)
    peak = float(np.abs(wave).max()) or 1.0
    return (wave / peak * rng.uniform(0.3, 0.9)).astype(np.float32)


def _band_pass(wave: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [low, min(high, rate / 2 * 0.99)], btype="bandpass", fs=rate, output="sos")
    return sosfiltfilt(sos, wave).astype(np.float32)


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["path", "label", "group", "text", "language"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())

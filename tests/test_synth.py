"""`audioclf synth`: eSpeak NG through its library, phrase files, deterministic varied datasets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioclf.cli import main
from audioclf.synth import SynthOptions, bundled_phrases, synthesize_dataset
from audioclf.synth.dataset import PhraseFileError, load_phrases
from audioclf.synth.espeak import espeak

MINDS14_INTENTS = {
    "abroad", "address", "app_error", "atm_limit", "balance", "business_loan", "card_issues", "cash_deposit",
    "direct_debit", "freeze", "high_value_payment", "joint_account", "latest_transactions", "pay_bill",
}


def test_espeak_library_speaks() -> None:
    engine = espeak()
    wave = engine.speak("what is my balance", "en-us+m3")
    assert wave.dtype == np.float32 and 0.5 < len(wave) / engine.rate < 3 and np.abs(wave).max() > 0.05


def test_bundled_phrases_cover_the_14_intents_in_three_languages() -> None:
    phrases = load_phrases(bundled_phrases())
    assert set(phrases) == MINDS14_INTENTS
    for label, by_language in phrases.items():
        assert set(by_language) >= {"en", "fr", "de"}, label
        assert all(len(texts) >= 3 for texts in by_language.values()), label


def _tiny_phrases(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text("yes:\n  en: [yes please, sure]\nno:\n  en: [no thanks]\n  fr: [non merci]\n")
    return path


def test_dataset_is_deterministic_and_grouped_by_voice(tmp_path: Path) -> None:
    options = SynthOptions(voices=3, sample_rate=8000, noise_snr=(15, 35), telephone=True, seed=4)
    first = synthesize_dataset(_tiny_phrases(tmp_path), tmp_path / "a", options)
    second = synthesize_dataset(_tiny_phrases(tmp_path), tmp_path / "b", options)
    assert second.read_text() == first.read_text()
    rows = list(csv.DictReader(first.open()))
    assert len(rows) == 3 * 4 and {r["group"] for r in rows} == {"voice00", "voice01", "voice02"}
    assert set(rows[0]) == {"path", "label", "group", "text", "language"}
    for row in rows:
        a, rate = sf.read(tmp_path / "a" / row["path"], dtype="float32")
        b, _ = sf.read(tmp_path / "b" / row["path"], dtype="float32")
        assert rate == 8000 and np.array_equal(a, b)
    other = synthesize_dataset(_tiny_phrases(tmp_path), tmp_path / "c", SynthOptions(voices=3, seed=5))
    c, _ = sf.read(other.parent / rows[0]["path"], dtype="float32")
    assert not np.array_equal(c[: len(a)], a[: len(c)])


def test_telephone_band_removes_low_and_high_frequencies(tmp_path: Path) -> None:
    def band_energy(options: SynthOptions, folder: str) -> tuple[float, float]:
        manifest = synthesize_dataset(_tiny_phrases(tmp_path), tmp_path / folder, options)
        wave, rate = sf.read(manifest.parent / next(csv.DictReader(manifest.open()))["path"])
        spectrum = np.abs(np.fft.rfft(wave)) ** 2
        freqs = np.fft.rfftfreq(len(wave), 1 / rate)
        return spectrum[freqs > 3800].sum() / spectrum.sum(), spectrum[freqs < 150].sum() / spectrum.sum()

    wide_high, wide_low = band_energy(SynthOptions(voices=1, sample_rate=16000), "wide")
    tel_high, tel_low = band_energy(SynthOptions(voices=1, sample_rate=16000, telephone=True), "tel")
    assert tel_high < wide_high / 10 and tel_low < wide_low


def test_cli_synth_then_train_loads_the_manifest(tmp_path: Path) -> None:
    code = main(["synth", str(_tiny_phrases(tmp_path)), "--output", str(tmp_path / "d"), "--voices", "2",
                 "--sample-rate", "8000", "--noise-snr", "15:35", "--languages", "en"])
    assert code == 0
    from audioclf.sources import load_data

    loaded = load_data(str(tmp_path / "d" / "manifest.csv"), group_column="group")
    assert loaded.label_names == ["no", "yes"] and len(loaded.records) == 6
    assert all(Path(str(r.audio)).is_file() for r in loaded.records)


def test_bad_phrase_file_and_snr_are_clear_errors(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(PhraseFileError, match="bad.yaml"):
        load_phrases(bad)
    assert main(["synth", str(bad), "--output", str(tmp_path / "o")]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert main(["synth", "--output", str(tmp_path / "o"), "--noise-snr", "loud"]) == 2
    assert "LOW:HIGH" in capsys.readouterr().err

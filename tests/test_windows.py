"""`predict --window`: long recordings cut into equal windows, each scored as `predict` scores that slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TONES, tone

from audioclf.cli import main
from audioclf.config import ConfigError
from audioclf.inference import Classifier
from audioclf.inference.windows import window_bounds


@pytest.mark.parametrize(
    ("n_samples", "window", "hop", "expected"),
    [
        (10, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10)]),
        (10, 4, 4, [(0, 4), (4, 8), (6, 10)]),  # the last window ends at the end, overlapping the one before
        (8, 4, 4, [(0, 4), (4, 8)]),
        (4, 4, 1, [(0, 4)]),
        (3, 4, 1, [(0, 3)]),  # shorter than a window: the whole recording
    ],
)
def test_window_bounds(n_samples: int, window: int, hop: int, expected: list[tuple[int, int]]) -> None:
    assert window_bounds(n_samples, window, hop) == expected


@pytest.mark.parametrize(("window", "hop"), [(4, 0), (4, 5), (0, 1)])
def test_window_bounds_refuses_bad_hops(window: int, hop: int) -> None:
    with pytest.raises(ValueError, match="hop"):
        window_bounds(10, window, hop)


def test_each_window_scores_as_predict_scores_its_slice(tiny_wav2vec2: Path) -> None:
    clf = Classifier.load(tiny_wav2vec2)  # group norm, no attention mask: padding would change its scores
    wave = np.random.default_rng(0).standard_normal(int(2.3 * clf.rate)).astype(np.float32) * 0.1
    every = len(clf.labels)
    [windows] = clf.predict_windows([wave], window_s=0.5, hop_s=0.3, top_k=every, batch_size=3)
    starts = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8]
    assert [w["start_s"] for w in windows] == starts
    assert [w["end_s"] for w in windows] == [round(s + 0.5, 3) for s in starts[:-1]] + [2.3]
    for w in windows:
        piece = wave[round(w["start_s"] * clf.rate):round(w["end_s"] * clf.rate)]
        assert len(piece) == clf.rate // 2
        [alone] = clf.predict([piece], top_k=every)
        got = {p["label"]: p["score"] for p in w["predictions"]}
        np.testing.assert_allclose([got[p["label"]] for p in alone], [p["score"] for p in alone], atol=1e-5)


def test_windows_the_model_cannot_take_are_refused(trained_run: tuple[Path, Path]) -> None:
    clf = Classifier.load(trained_run[0])
    wave = np.zeros(clf.rate * 2, dtype=np.float32)
    for window_s, hop_s, message in [(11.0, None, "max_duration"), (1.0, 1.5, "--hop"), (0.0, None, "--window"),
                                     (0.001, None, "at least")]:
        with pytest.raises(ConfigError, match=message):
            clf.predict_windows([wave], window_s, hop_s)
    assert clf.max_duration == 10.0  # a clip is cut to it; a recording in windows is not
    long = np.zeros(clf.rate * 12, dtype=np.float32)
    assert len(clf.prepare(long)) == clf.rate * 10
    assert clf.predict_windows([long], 5.0, top_k=1)[0][-1]["end_s"] == 12.0


@pytest.fixture(scope="module")
def three_tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 4.5 s recording at 8 kHz: low, then high, then mid, 1.5 s each."""
    rng = np.random.default_rng(11)
    path = tmp_path_factory.mktemp("long") / "low-high-mid.wav"
    sf.write(path, np.concatenate([tone(TONES[label], 1.5, 8000, rng) for label in ("low", "high", "mid")]), 8000)
    return path


def test_windows_of_a_long_recording_follow_what_is_heard(trained_run: tuple[Path, Path], three_tones: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(trained_run[0]), str(three_tones), "--window", "1", "--hop", "0.5", "--top-k", "1",
                 "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(s / 2, s / 2 + 1) for s in range(8)]
    assert {r["path"] for r in rows} == {str(three_tones)}
    inside = {(0.0, 1.0): "low", (0.5, 1.5): "low", (1.5, 2.5): "high", (2.0, 3.0): "high", (3.0, 4.0): "mid",
              (3.5, 4.5): "mid"}  # the windows wholly within one tone
    heard = {(r["start_s"], r["end_s"]): r["predictions"][0]["label"] for r in rows}
    assert {span: heard[span] for span in inside} == inside


def test_window_csv_table_and_errors(trained_run: tuple[Path, Path], three_tones: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    run = str(trained_run[0])
    args = [str(broken), str(three_tones), "--window", "2", "--format", "csv", "--top-k", "2"]
    assert main(["predict", run, *args]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,start_s,end_s,rank,label,score,error"
    assert lines[1].startswith(f"{broken},,,,,,") and len(lines) == 1 + 1 + 3 * 2  # windows 0-2, 2-4, 2.5-4.5
    assert [line.split(",")[1:4] for line in lines[2::2]] == [["0.000", "2.000", "1"], ["2.000", "4.000", "1"],
                                                               ["2.500", "4.500", "1"]]
    assert main(["predict", run, str(three_tones), "--window", "1.5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in table] == [f"{three_tones}@{a:.2f}-{a + 1.5:.2f}s" for a in (0, 1.5, 3)]
    assert main(["predict", run, str(three_tones), "--hop", "1"]) == 2
    assert "--hop needs --window" in capsys.readouterr().err


@pytest.mark.parametrize(("kind", "too_long", "fits"),
                         [("whisper", 31.0, 30.0), ("audio-spectrogram-transformer", 0.7, 0.6)])
def test_windows_longer_than_the_extractor_keeps_are_refused(kind: str, too_long: float, fits: float,
                                                              tmp_path: Path) -> None:
    from tiny_models import save_tiny

    clf = Classifier.load(save_tiny(kind, tmp_path / kind))  # Whisper keeps 30 s; this AST 64 frames of 10 ms
    wave = np.zeros(int(fits * clf.rate) + 100, dtype=np.float32)
    with pytest.raises(ConfigError, match="feature extractor keeps"):
        clf.predict_windows([wave], too_long)
    assert len(clf.predict_windows([wave], fits, top_k=1)[0]) == 2

"""Data sources: audio folders, CSV/JSONL manifests, MInDS-14 releases, Hub ids offline; and splits."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_manifest, write_tone_folder

from audioclf.sources import DataError, Record, load_data, split_records


def test_audio_folder_labels_groups_and_split_folders(tmp_path: Path) -> None:
    root = write_tone_folder(tmp_path / "tones", per_label=4)
    loaded = load_data(str(root))
    assert loaded.label_names == ["high", "low", "mid"] and len(loaded.records) == 12
    assert {r.group for r in loaded.records} == {"spk0", "spk1"}
    split_root = tmp_path / "splits"
    for split in ("train", "test"):
        write_tone_folder(split_root / split, per_label=2)
    records = load_data(str(split_root)).records
    assert Counter(r.split for r in records) == {"train": 6, "test": 6}


def test_csv_manifest_with_relative_and_absolute_paths(tmp_path: Path) -> None:
    root = write_tone_folder(tmp_path / "clips", per_label=2)
    clips = sorted(root.rglob("*.wav"))
    rows = [{"path": str(c.relative_to(tmp_path)) if i % 2 else str(c), "label": c.parent.parent.name,
             "group": c.parent.name, "split": "test" if i == 0 else "train"} for i, c in enumerate(clips)]
    loaded = load_data(str(write_manifest(tmp_path / "m.csv", rows)))
    assert [Path(str(r.audio)) for r in loaded.records] == clips
    assert loaded.records[0].split == "test" and loaded.records[1].group == clips[1].parent.name


def test_jsonl_manifest_with_renamed_columns(tmp_path: Path) -> None:
    root = write_tone_folder(tmp_path / "clips", per_label=1)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"file": str(c), "intent": c.parent.parent.name})
                                  for c in sorted(root.rglob("*.wav"))))
    loaded = load_data(str(manifest), audio_column="file", label_column="intent")
    assert loaded.label_names == ["high", "low", "mid"]


def test_manifest_missing_column_names_file_and_columns(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"file": "a.wav", "label": "x"}])
    with pytest.raises(DataError, match=r"m\.csv: missing column\(s\) path; found file, label"):
        load_data(str(manifest))


def test_jsonl_syntax_error_names_the_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.wav", "label": "x"}\n{oops\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_data(str(manifest))


def _minds14_release(root: Path) -> Path:
    rate = 8000
    for locale in ("en-US", "fr-FR"):
        rows = []
        for intent in ("balance", "freeze"):
            for i in range(2):
                rel = f"{locale}~{intent.upper()}/{i}.wav"
                (root / "audio" / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / "audio" / rel, np.zeros(rate // 4, dtype=np.float32) + 0.01, rate)
                rows.append({"filepath": rel, "text_asr": "hi", "text_translated_en": "hi", "intent": intent})
        (root / "text").mkdir(parents=True, exist_ok=True)
        write_manifest(root / "text" / f"{locale}.csv", rows)
    return root


def test_minds14_release_locales(tmp_path: Path) -> None:
    root = _minds14_release(tmp_path / "MInDS-14")
    assert len(load_data(str(root), data_config="en-US").records) == 4
    assert len(load_data(str(root), data_config="en-US,fr-FR").records) == 8
    everything = load_data(str(root), data_config="all")
    assert everything.label_names == ["balance", "freeze"] and {r.group for r in everything.records} == {
        "en-US", "fr-FR"}
    assert all(Path(str(r.audio)).is_file() for r in everything.records)
    with pytest.raises(DataError, match="no locale de-DE"):
        load_data(str(root), data_config="de-DE")


def test_hub_id_fails_fast_offline_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.monotonic()
    with pytest.raises(DataError, match="Pass local data instead"):
        load_data("audioclf-tests/no-such-dataset-7f3a")
    assert time.monotonic() - start < 30


def test_missing_local_path_is_not_mistaken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_data(str(tmp_path / "missing.csv"))


def _records(labels: list[str], groups: list[str] | None = None) -> list[Record]:
    return [Record(audio=f"{i}.wav", name=f"{i}.wav", label=label, group=groups[i] if groups else None)
            for i, label in enumerate(labels)]


def test_random_split_is_stratified_and_seeded() -> None:
    records = _records(["a"] * 50 + ["b"] * 10)
    train, test = split_records(records, 0.2, seed=1)
    assert Counter(r.label for r in test) == {"a": 10, "b": 2} and len(train) == 48
    assert split_records(records, 0.2, seed=1) == (train, test)
    assert split_records(records, 0.2, seed=2)[1] != test


def test_group_split_keeps_each_group_on_one_side() -> None:
    groups = [f"spk{i % 5}" for i in range(50)]
    train, test = split_records(_records(["a", "b"] * 25, groups), 0.2, seed=0, group_by=True)
    assert not {r.group for r in train} & {r.group for r in test} and test


def test_explicit_split_wins() -> None:
    records = [Record(audio="x", name=str(i), label="ab"[i % 2], split="test" if i < 2 else "train") for i in range(8)]
    train, test = split_records(records, 0.5, seed=0)
    assert [r.name for r in test] == ["0", "1"] and len(train) == 6


def test_class_too_small_to_split_is_named() -> None:
    with pytest.raises(DataError, match="class.*rare.*fewer than 2 clips"):
        split_records(_records(["a"] * 10 + ["rare"]), 0.2, seed=0)


def test_manifest_split_aliases_and_bad_split_value(tmp_path: Path) -> None:
    rows = [{"path": "a.wav", "label": "x", "split": "validation"}, {"path": "b.wav", "label": "x", "split": ""}]
    records = load_data(str(write_manifest(tmp_path / "m.csv", rows))).records
    assert [r.split for r in records] == ["validation", None]
    bad = write_manifest(tmp_path / "bad.csv", [{"path": "a.wav", "label": "x", "split": "dev-ish"}])
    with pytest.raises(DataError, match="row 2: split 'dev-ish' is not train, validation or test"):
        load_data(str(bad))

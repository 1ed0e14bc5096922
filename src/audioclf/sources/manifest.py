"""CSV and JSONL manifests: `path,label[,group][,split]`, paths relative to the manifest's folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from audioclf.sources.records import SPLIT_ALIASES, DataError, LoadedData, Record, sorted_labels


def load_manifest(
    path: Path, audio_column: str | None = None, label_column: str | None = None, group_column: str | None = None
) -> LoadedData:
    rows = list(_read_rows(path))
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    audio_column = audio_column or "path"
    label_column = label_column or "label"
    _require_columns(path, rows[0], [audio_column, label_column] + ([group_column] if group_column else []))
    group_column = group_column or "group"
    records = [
        _record(path, line, row, audio_column, label_column, group_column) for line, row in enumerate(rows, start=2)
    ]
    return LoadedData(records, sorted_labels(records), f"manifest {path}")


def _read_rows(path: Path) -> Iterable[dict[str, Any]]:
    try:
        if path.suffix.lower() == ".jsonl":
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield _json_row(path, number, line)
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                yield from csv.DictReader(handle)
    except OSError as err:
        raise DataError(f"{path}: cannot read the manifest ({err.strerror})") from None


def _json_row(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{path}, line {number}: each line must be a JSON object")
    return row


def _require_columns(path: Path, first_row: dict[str, Any], needed: list[str]) -> None:
    missing = [c for c in needed if c not in first_row]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, first_row))}. "
            "Use --audio-column / --label-column to name yours."
        )


def _record(path: Path, line: int, row: dict[str, Any], audio_col: str, label_col: str, group_col: str) -> Record:
    audio, label = str(row.get(audio_col) or "").strip(), str(row.get(label_col) or "").strip()
    if not audio or not label:
        raise DataError(f"{path}, row {line}: empty '{audio_col}' or '{label_col}'")
    split_value = str(row.get("split") or "").strip().lower()
    if split_value and split_value not in SPLIT_ALIASES:
        raise DataError(f"{path}, row {line}: split '{split_value}' is not train, validation or test")
    clip = Path(audio) if Path(audio).is_absolute() else path.parent / audio
    group = str(row.get(group_col) or "").strip() or None
    return Record(audio=str(clip), name=str(clip), label=label, group=group, split=SPLIT_ALIASES.get(split_value))

"""Audio folders in audiofolder layout: `[split/]<label>/[group/...]/<clip>`."""

from __future__ import annotations

from pathlib import Path

from audioclf.audio import is_audio_file
from audioclf.sources.records import SPLIT_ALIASES, DataError, LoadedData, Record, sorted_labels


def load_folder(root: Path) -> LoadedData:
    """Label = the first folder under the root (after an optional train/test folder);
    any folder between the label and the clip becomes the clip's group (e.g. the speaker)."""
    records = [_record(root, path) for path in sorted(root.rglob("*")) if is_audio_file(path)]
    records = [r for r in records if r is not None]
    if not records:
        raise DataError(f"{root}: no audio files found in <label>/<clip> layout (looked for wav/flac/ogg/mp3)")
    return LoadedData(records, sorted_labels(records), f"audio folder {root}")


def _record(root: Path, path: Path) -> Record | None:
    parts = list(path.relative_to(root).parts[:-1])
    split = SPLIT_ALIASES.get(parts[0].lower()) if parts else None
    if split:
        parts = parts[1:]
    if not parts:
        return None  # a clip directly under the root (or split folder) has no label folder
    group = "/".join(parts[1:]) or None
    return Record(audio=str(path), name=str(path), label=parts[0], group=group, split=split)

"""Where audio comes from: resolve a `--data` spec to records (Hub, audio folder, manifest, MInDS-14)."""

from __future__ import annotations

from pathlib import Path

from audioclf.sources.records import DataError, LoadedData, Record
from audioclf.sources.split import hold_out_validation, split_records

__all__ = ["DataError", "LoadedData", "Record", "hold_out_validation", "load_data", "split_records"]


def load_data(
    spec: str,
    data_config: str | None = None,
    data_split: str = "train",
    audio_column: str | None = None,
    label_column: str | None = None,
    group_column: str | None = None,
) -> LoadedData:
    """Read any supported source; a path that exists is local, anything else is a Hub dataset id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        from audioclf.sources.minds14 import is_minds14_release, load_minds14

        if is_minds14_release(path):
            return load_minds14(path, data_config)
        from audioclf.sources.folder import load_folder

        return load_folder(path)
    if path.is_file():
        if path.suffix.lower() not in {".csv", ".jsonl"}:
            raise DataError(f"{path}: a data file must be a .csv or .jsonl manifest")
        from audioclf.sources.manifest import load_manifest

        return load_manifest(path, audio_column, label_column, group_column)
    if spec.startswith((".", "/", "~")) or spec.endswith((".csv", ".jsonl")):
        raise DataError(f"{spec}: no such file or folder")
    from audioclf.sources.hub import load_hub_dataset

    return load_hub_dataset(spec, data_config, data_split, audio_column, label_column, group_column)

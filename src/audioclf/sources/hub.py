"""Hugging Face Hub datasets (e.g. PolyAI/minds14), decoded by us, not by datasets/torchcodec."""

from __future__ import annotations

from typing import Any

from audioclf.sources.records import DataError, LoadedData, Record

HUB_DEFAULT_COLUMNS = {"audio": "audio", "label": "intent_class"}
OFFLINE_HINT = (
    "Pass local data instead: an audio folder (<label>/<clip>.wav), a CSV/JSONL manifest "
    "(path,label[,group][,split]) or a local MInDS-14 release folder, e.g. --data path/to/manifest.csv"
)


def load_hub_dataset(
    dataset_id: str,
    config_name: str | None,
    split: str,
    audio_column: str | None = None,
    label_column: str | None = None,
    group_column: str | None = None,
) -> LoadedData:
    """Load a Hub dataset's split (and its own 'validation' and 'test' splits when it has them) as records."""
    check_hub_reachable(dataset_id)
    try:
        import datasets
    except ImportError:
        raise DataError("Hub datasets need the 'datasets' package: pip install 'audioclf[hub]'") from None
    audio_column = audio_column or HUB_DEFAULT_COLUMNS["audio"]
    label_column = label_column or HUB_DEFAULT_COLUMNS["label"]
    splits = {split: "train"}
    available = datasets.get_dataset_split_names(dataset_id, config_name)
    for own in ("validation", "test"):
        if own in available and split != own:
            splits[own] = own
    records: list[Record] = []
    label_names: list[str] | None = None
    for hub_split, our_split in splits.items():
        table = datasets.load_dataset(dataset_id, config_name, split=hub_split)
        _require_hub_columns(dataset_id, table.column_names, [audio_column, label_column])
        table = table.cast_column(audio_column, datasets.Audio(decode=False))
        label_names = label_names or _class_names(table.features[label_column])
        records += [
            _hub_record(row, audio_column, label_column, group_column, label_names, our_split, f"{dataset_id}[{i}]")
            for i, row in enumerate(table)
        ]
    names = label_names or sorted({r.label for r in records})
    return LoadedData(records, names, f"Hub dataset {dataset_id} ({config_name or 'default'}, {split})")


def check_hub_reachable(dataset_id: str) -> None:
    """Fail fast, with what to do instead, when the Hub cannot be reached or the id does not exist."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().dataset_info(dataset_id, timeout=10)
    except RepositoryNotFoundError:
        raise DataError(
            f"'{dataset_id}' is neither a local path nor a dataset on the Hugging Face Hub. {OFFLINE_HINT}"
        ) from None
    except Exception as err:  # any network failure: DNS, refused, timeout, offline mode
        raise DataError(
            f"cannot reach the Hugging Face Hub to load '{dataset_id}' ({type(err).__name__}). {OFFLINE_HINT}"
        ) from None


def _require_hub_columns(dataset_id: str, columns: list[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"{dataset_id}: no column(s) {', '.join(missing)}; it has {', '.join(columns)}. "
            "Use --audio-column / --label-column."
        )


def _class_names(feature: Any) -> list[str] | None:
    return list(feature.names) if hasattr(feature, "names") else None


def _hub_record(
    row: dict[str, Any],
    audio_col: str,
    label_col: str,
    group_col: str | None,
    names: list[str] | None,
    split: str,
    name: str,
) -> Record:
    audio = row[audio_col]
    source = audio.get("bytes") or audio.get("path")
    label = row[label_col]
    label = names[label] if names and isinstance(label, int) else str(label)
    group = str(row[group_col]) if group_col and row.get(group_col) is not None else None
    return Record(audio=source, name=audio.get("path") or name, label=label, group=group, split=split)

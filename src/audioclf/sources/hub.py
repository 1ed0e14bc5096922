"""Hugging Face Hub datasets (e.g. PolyAI/minds14), fetched with `datasets`/`huggingface_hub`, decoded by us.

The Hub holds datasets in three shapes, tried in this order:
1. a standard repo (Parquet, CSV, audiofolder, ...), which `datasets.load_dataset` reads;
2. a loading-script repo, which `datasets` >= 4 refuses ("Dataset scripts are no longer supported"): the
   Hub's own Parquet conversion of it lives at the revision `refs/convert/parquet`, one folder per config;
3. MInDS-14's release archive (`data/MInDS-14.zip`), read with the local MInDS-14 reader.
Every way reads the local Hub cache first under `HF_HUB_OFFLINE=1` or `HF_DATASETS_OFFLINE=1`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from audioclf.config import default_cache_dir
from audioclf.sources.records import SPLIT_ALIASES, DataError, LoadedData, Record

HUB_DEFAULT_COLUMNS = {"audio": "audio", "label": "intent_class"}
PARQUET_REVISION = "refs/convert/parquet"
MINDS14_ARCHIVE = "data/MInDS-14.zip"
OFFLINE_HINT = (
    "Pass local data instead: an audio folder (<label>/<clip>.wav), a CSV/JSONL manifest "
    "(path,label[,group][,split]) or a local MInDS-14 release folder, e.g. --data path/to/manifest.csv"
)


class _NotThisWay(Exception):
    """This way of loading does not apply to the repo (no such file, config or revision)."""


def load_hub_dataset(
    dataset_id: str,
    config_name: str | None,
    split: str,
    audio_column: str | None = None,
    label_column: str | None = None,
    group_column: str | None = None,
) -> LoadedData:
    """Load a Hub dataset's split (and its own 'validation' and 'test' splits when it has them) as records."""
    columns = _Columns(audio_column or HUB_DEFAULT_COLUMNS["audio"], label_column or HUB_DEFAULT_COLUMNS["label"],
                       group_column)
    ways: list[tuple[str, Callable[..., LoadedData]]] = [
        ("datasets.load_dataset", _load_standard),
        (f"the Hub's Parquet conversion (revision {PARQUET_REVISION})", _load_parquet_conversion),
        (f"the MInDS-14 release archive ({MINDS14_ARCHIVE})", _load_release_archive),
    ]
    tried: list[str] = []
    offline = hub_offline()
    for way, load in ways:
        try:
            return load(dataset_id, config_name, split, columns, offline)
        except DataError:
            raise
        except Exception as err:  # each way fails in its own library's terms; the next way may still work
            if _repo_missing(err) and not offline:
                raise DataError(f"'{dataset_id}' is neither a local path nor a dataset on the Hugging Face Hub. "
                                f"{OFFLINE_HINT}") from None
            offline = offline or _unreachable(err)
            tried.append(f"{way}: {_first_line(err)}")
    where = "the local Hub cache (offline)" if offline else "the Hugging Face Hub"
    raise DataError(f"cannot load '{dataset_id}' ({config_name or 'default config'}) from {where}. Tried: "
                    + "; ".join(tried) + f". {OFFLINE_HINT}")


def hub_offline() -> bool:
    """Whether the user asked for the local Hub cache only (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE)."""
    return any(os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@dataclass(frozen=True)
class _Columns:
    audio: str
    label: str
    group: str | None


def _load_standard(dataset_id: str, config: str | None, split: str, columns: _Columns, offline: bool) -> LoadedData:
    datasets = _import_datasets()
    # Never a dataset's own script: datasets 3.x would run one (or ask on the terminal); 4 and later ignore False.
    table = datasets.load_dataset(dataset_id, config, trust_remote_code=False)
    return _records_from_splits(dataset_id, dict(table), split, columns, f"Hub dataset {dataset_id}", config)


def _load_parquet_conversion(
    dataset_id: str, config: str | None, split: str, columns: _Columns, offline: bool
) -> LoadedData:
    from huggingface_hub import snapshot_download

    datasets = _import_datasets()
    configs = _config_names(config) or ["default"]
    folder = Path(snapshot_download(dataset_id, repo_type="dataset", revision=PARQUET_REVISION,
                                    allow_patterns=[f"{name}/**" for name in configs], local_files_only=offline))
    missing = [name for name in configs if not (folder / name).is_dir()]
    if missing:
        available = _parquet_configs(dataset_id, folder, offline)
        raise _NotThisWay(f"no config {', '.join(missing)} in it" + (f"; it has {', '.join(available)}"
                                                                      if available else ""))
    files = {name: _parquet_splits(folder, name) for name in configs}
    splits = {
        our: datasets.load_dataset("parquet", data_files=[str(p) for name in configs for p in files[name][our]],
                                   split="train")
        for our in {s for by_split in files.values() for s in by_split}
    }
    description = f"Hub dataset {dataset_id} (Parquet conversion)"
    return _records_from_splits(dataset_id, splits, split, columns, description, config)


def _load_release_archive(
    dataset_id: str, config: str | None, split: str, columns: _Columns, offline: bool
) -> LoadedData:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    from audioclf.sources.minds14 import find_minds14_release, load_minds14, minds14_locales

    try:
        archive = Path(hf_hub_download(dataset_id, MINDS14_ARCHIVE, repo_type="dataset", local_files_only=offline))
    except EntryNotFoundError as err:
        if isinstance(err, LocalEntryNotFoundError):  # not cached, offline: said as such by _first_line
            raise
        raise _NotThisWay("the repo has no such file") from None
    root = find_minds14_release(unpacked_archive(archive))
    if root is None:
        raise _NotThisWay(f"{archive.name} holds no MInDS-14 release (text/*.csv and audio/)")
    unknown = sorted(set(_config_names(config)) - {"all", *minds14_locales(root)})
    if unknown:
        raise _NotThisWay(f"no locale {', '.join(unknown)} in it; it has {', '.join(minds14_locales(root))}")
    loaded = load_minds14(root, config)
    loaded.description = f"Hub dataset {dataset_id} (MInDS-14 release archive, {config or 'all'})"
    return loaded


def unpacked_archive(archive: Path) -> Path:
    """The archive unpacked once into audioclf's cache, keyed by the Hub's blob name (its content hash).

    By hand rather than with `datasets`' ExtractManager, which takes a half-extracted folder left by a killed
    run for a finished one: this unpacks into a temporary folder and renames it into place.
    """
    target = default_cache_dir() / "hub-archives" / archive.resolve().name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpacking-"))
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(scratch)
        scratch.rename(target)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not target.is_dir():  # another process won the rename: its copy is the same archive
            raise
    return target


def _parquet_splits(folder: Path, config: str) -> dict[str, list[Path]]:
    """The Parquet conversion's files of one config by split: `CONFIG/SPLIT/0000.parquet` (or the older
    `CONFIG/NAME-SPLIT[-00000-of-00002].parquet`, and `partial-SPLIT` folders of large datasets)."""
    files = sorted((folder / config).rglob("*.parquet"))
    if not files:
        raise _NotThisWay(f"no Parquet files under {config}/ in it")
    by_split: dict[str, list[Path]] = {}
    for path in files:
        relative = path.relative_to(folder / config)
        name = relative.parts[0] if len(relative.parts) > 1 else _flat_split_name(path.stem)
        name = name.removeprefix("partial-")
        by_split.setdefault(SPLIT_ALIASES.get(name, name), []).append(path)
    return by_split


def _parquet_configs(dataset_id: str, folder: Path, offline: bool) -> list[str]:
    """The configs (top-level folders) of the Parquet conversion: from the Hub, or offline from the cache."""
    from huggingface_hub import HfApi

    if not offline:
        try:
            tree = HfApi().list_repo_tree(dataset_id, repo_type="dataset", revision=PARQUET_REVISION)
            return sorted(entry.path for entry in tree if not entry.path.startswith(".") and "." not in entry.path)
        except Exception:  # the listing only improves a message: fall back to what the cache holds
            pass
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _flat_split_name(stem: str) -> str:
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", stem)
    return stem.rsplit("-", 1)[-1]


def _records_from_splits(
    dataset_id: str, splits: dict[str, Any], split: str, columns: _Columns, description: str, config: str | None
) -> LoadedData:
    """Records of the training split (`split`) and of the dataset's own validation and test splits."""
    datasets = _import_datasets()
    ours = {name: SPLIT_ALIASES.get(name, name) for name in splits}
    if split not in splits:
        raise DataError(f"{dataset_id}: no split '{split}'; it has {', '.join(splits)}. Use --data-split.")
    wanted = {split: "train"} | {name: our for name, our in ours.items()
                                 if name != split and our in ("validation", "test")}
    records: list[Record] = []
    label_names: list[str] | None = None
    for name, our_split in wanted.items():
        table = splits[name]
        _require_hub_columns(dataset_id, table.column_names, [columns.audio, columns.label])
        table = table.cast_column(columns.audio, datasets.Audio(decode=False))
        label_names = label_names or _class_names(table.features[columns.label])
        records += [_hub_record(row, columns, label_names, our_split, f"{dataset_id}[{name}][{i}]")
                    for i, row in enumerate(table)]
    names = label_names or sorted({r.label for r in records})
    return LoadedData(records, names, f"{description} ({config or 'default'}, {split})")


def _config_names(config: str | None) -> list[str]:
    return [x.strip() for x in (config or "").split(",") if x.strip()]


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError("Hub datasets need the 'datasets' package: pip install 'audioclf[hub]'") from None
    return datasets


def _repo_missing(err: BaseException) -> bool:
    """Whether the Hub answered that no such dataset repo exists (not a network failure)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    names = {type(e).__name__ for e in _chain(err)}
    return any(isinstance(e, RepositoryNotFoundError) for e in _chain(err)) or "DatasetNotFoundError" in names


def _unreachable(err: BaseException) -> bool:
    """Whether `err` says the Hub could not be reached at all (the later ways then read the cache only)."""
    markers = ("ConnectError", "ConnectionError", "ConnectTimeout", "OfflineModeIsEnabled", "LocalEntryNotFoundError")
    return any(type(e).__name__ in markers for e in _chain(err))


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(err: BaseException) -> str:
    """What went wrong in a few words: the libraries' own messages run to paragraphs."""
    names = {type(e).__name__ for e in _chain(err)}
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"}:
        return "not in the local cache"
    if names & {"ConnectError", "ConnectTimeout"}:
        return "cannot reach the Hub"
    if "RevisionNotFoundError" in names:
        return "the repo has no such revision"
    text = str(err).strip().splitlines()
    return text[0] if isinstance(err, _NotThisWay) or not text else f"{type(err).__name__}: {text[0]}"


def _require_hub_columns(dataset_id: str, columns: list[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"{dataset_id}: no column(s) {', '.join(missing)}; it has {', '.join(columns)}. "
            "Use --audio-column / --label-column."
        )


def _class_names(feature: Any) -> list[str] | None:
    return list(feature.names) if hasattr(feature, "names") else None


def _hub_record(row: dict[str, Any], columns: _Columns, names: list[str] | None, split: str, name: str) -> Record:
    audio = row[columns.audio]
    source = audio.get("bytes") or audio.get("path")
    label = row[columns.label]
    label = names[label] if names and isinstance(label, int) else str(label)
    group = str(row[columns.group]) if columns.group and row.get(columns.group) is not None else None
    return Record(audio=source, name=audio.get("path") or name, label=label, group=group, split=split)

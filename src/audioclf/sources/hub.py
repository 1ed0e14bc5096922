"""Hugging Face Hub datasets (e.g. PolyAI/minds14), fetched with `datasets`/`huggingface_hub`, decoded by us.

The Hub holds datasets in three shapes, tried in this order:
1. a standard repo (Parquet, CSV, audiofolder, ...), which `datasets.load_dataset` reads;
2. a loading-script repo, which `datasets` >= 4 refuses ("Dataset scripts are no longer supported"): the
   Hub's own Parquet conversion of it lives at the revision `refs/convert/parquet`, one folder per config;
3. MInDS-14's release archive (`data/MInDS-14.zip`), read with the local MInDS-14 reader.
Under `HF_HUB_OFFLINE=1` or `HF_DATASETS_OFFLINE=1`, or when the Hub does not answer, every way reads the local
Hub cache only.
"""

from __future__ import annotations

import hashlib
import logging
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

log = logging.getLogger("audioclf")

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
    ways: list[tuple[str, Callable[[str, str | None, bool], _Fetched]]] = [
        ("datasets.load_dataset", _fetch_standard),
        (f"the Hub's Parquet conversion (revision {PARQUET_REVISION})", _fetch_parquet_conversion),
        (f"the MInDS-14 release archive ({MINDS14_ARCHIVE})", _fetch_release_archive),
    ]
    tried: list[str] = []
    offline = hub_offline() or not _hub_answers(dataset_id)
    for way, fetch in ways:
        try:
            fetched = fetch(dataset_id, config_name, offline)
        except DataError:
            raise
        except Exception as err:  # each way fails in its own library's terms; the next way may still work
            _raise_if_not_allowed(dataset_id, err, offline)
            offline = offline or _unreachable(err)
            tried.append(f"{way}: {_first_line(err, offline)}")
            continue
        return fetched.records(dataset_id, config_name, split, columns)
    where = ("the local Hub cache (offline)" if hub_offline() else
             "the local Hub cache (the Hub cannot be reached)" if offline else "the Hugging Face Hub")
    raise DataError(f"cannot load '{dataset_id}' ({config_name or 'default config'}) from {where}. Tried: "
                    + "; ".join(tried) + f". {OFFLINE_HINT}")


def _hub_answers(dataset_id: str) -> bool:
    """Whether the Hub answers at all: one request without retries (huggingface_hub's downloads retry a refused
    connection for about 25 s). A dataset it says is missing or gated ends the search here, with its message."""
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(dataset_id, timeout=10)
    except Exception as err:  # any network failure means: the cache only, from here on
        _raise_if_not_allowed(dataset_id, err, offline=False)
        return not _unreachable(err)
    return True


def _raise_if_not_allowed(dataset_id: str, err: BaseException, offline: bool) -> None:
    """A gated or private dataset, or one that does not exist, ends the search with its own message."""
    from huggingface_hub.errors import GatedRepoError

    if any(isinstance(e, GatedRepoError) or "is a gated dataset" in str(e) for e in _chain(err)):  # datasets' words
        raise DataError(f"'{dataset_id}' is a gated or private dataset on the Hugging Face Hub: accept its terms on "
                        "its page, then log in (`hf auth login`) or set HF_TOKEN") from None
    if _repo_missing(err) and not offline:
        raise DataError(f"'{dataset_id}' is neither a local path nor a dataset on the Hugging Face Hub. "
                        f"{OFFLINE_HINT}") from None


def hub_offline() -> bool:
    """Whether the user asked for the local Hub cache only (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE)."""
    return any(os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@dataclass(frozen=True)
class _Columns:
    audio: str
    label: str
    group: str | None


@dataclass
class _Fetched:
    """What one way fetched: tables by split (`datasets` Datasets), or an unpacked MInDS-14 release."""

    description: str
    splits: dict[str, Any] | None = None
    release: Path | None = None

    def records(self, dataset_id: str, config: str | None, split: str, columns: _Columns) -> LoadedData:
        if self.release is not None:
            from audioclf.sources.minds14 import load_minds14

            loaded = load_minds14(self.release, config)
            loaded.description = f"{self.description} ({config or 'all'})"
            return loaded
        return _records_from_splits(dataset_id, self.splits or {}, split, columns, self.description, config)


def _fetch_standard(dataset_id: str, config: str | None, offline: bool) -> _Fetched:
    if offline and not hub_offline():  # datasets reads its cache alone only when told to by the environment
        raise _NotThisWay("the Hub cannot be reached; with HF_HUB_OFFLINE=1, datasets reads its own cache")
    datasets = _import_datasets()
    # Never a dataset's own script: datasets 3.x would run one (or ask on the terminal); 4 and later ignore False.
    table = datasets.load_dataset(dataset_id, config, trust_remote_code=False)
    return _Fetched(f"Hub dataset {dataset_id}", splits=dict(table))


def _fetch_parquet_conversion(dataset_id: str, config: str | None, offline: bool) -> _Fetched:
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
    files: dict[str, list[Path]] = {}
    partial: set[str] = set()
    for name in configs:
        for our, (paths, is_partial) in _parquet_splits(folder, name).items():
            files.setdefault(our, []).extend(paths)
            partial |= {our} if is_partial else set()
    if partial:  # the Hub converts only the first part (about 5 GB) of a large split
        log.warning("%s: the Hub's Parquet conversion holds only part of split(s) %s", dataset_id,
                    ", ".join(sorted(partial)))
    splits = {our: datasets.load_dataset("parquet", data_files=[str(p) for p in paths], split="train")
              for our, paths in files.items()}
    label = "partial Parquet conversion" if partial else "Parquet conversion"
    return _Fetched(f"Hub dataset {dataset_id} ({label})", splits=splits)


def _fetch_release_archive(dataset_id: str, config: str | None, offline: bool) -> _Fetched:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    from audioclf.sources.minds14 import find_minds14_release, minds14_locales

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
    return _Fetched(f"Hub dataset {dataset_id} (MInDS-14 release archive)", release=root)


def unpacked_archive(archive: Path) -> Path:
    """The archive unpacked once into audioclf's cache, keyed by where the Hub cache holds it (its snapshot's
    commit) and its size and time, so a new revision of the archive is unpacked anew.

    By hand rather than with `datasets`' ExtractManager, which takes a half-extracted folder left by a killed
    run for a finished one: this unpacks into a temporary folder and renames it into place.
    """
    stat = archive.stat()
    key = hashlib.sha1(f"{archive.resolve()}:{archive}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    target = default_cache_dir() / "hub-archives" / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpacking-"))
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(scratch)
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        if not target.is_dir():  # another process won the rename: its copy is the same archive
            raise
    return target


def _parquet_splits(folder: Path, config: str) -> dict[str, tuple[list[Path], bool]]:
    """The Parquet conversion's files of one config by split, and whether the split is converted only in part:
    `CONFIG/SPLIT/0000.parquet` (or the older `CONFIG/NAME-SPLIT[-00000-of-00002].parquet`), `partial-SPLIT`
    folders for large splits."""
    files = sorted((folder / config).rglob("*.parquet"))
    if not files:
        raise _NotThisWay(f"no Parquet files under {config}/ in it")
    by_split: dict[str, tuple[list[Path], bool]] = {}
    for path in files:
        relative = path.relative_to(folder / config)
        name = relative.parts[0] if len(relative.parts) > 1 else _flat_split_name(path.stem)
        plain = name.removeprefix("partial-")
        paths, partial = by_split.get(SPLIT_ALIASES.get(plain, plain), ([], False))
        by_split[SPLIT_ALIASES.get(plain, plain)] = ([*paths, path], partial or plain != name)
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
    markers = ("ConnectError", "ConnectionError", "ConnectTimeout", "ReadTimeout", "OfflineModeIsEnabled",
               "LocalEntryNotFoundError")
    return any(type(e).__name__ in markers for e in _chain(err))


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(err: BaseException, offline: bool) -> str:
    """What went wrong in a few words (the libraries' own messages run to paragraphs); offline, what the cache
    lacks."""
    names = {type(e).__name__ for e in _chain(err)}
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"}:
        return "not in the local cache"
    if names & {"ConnectError", "ConnectTimeout"}:
        return "cannot reach the Hub"
    if "RevisionNotFoundError" in names:
        return "the repo has no such revision"
    text = str(err).strip().splitlines()
    line = text[0] if isinstance(err, _NotThisWay) or not text else f"{type(err).__name__}: {text[0]}"
    return line.replace(" in it", " in the local cache") if offline and isinstance(err, _NotThisWay) else line


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

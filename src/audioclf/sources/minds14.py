"""A local copy of the MInDS-14 release: `text/<locale>.csv` and `audio/<filepath>`."""

from __future__ import annotations

import csv
from pathlib import Path

from audioclf.sources.records import DataError, LoadedData, Record, sorted_labels

TEXT_COLUMNS = ("filepath", "intent")


def is_minds14_release(root: Path) -> bool:
    return (root / "text").is_dir() and (root / "audio").is_dir() and any((root / "text").glob("*.csv"))


def minds14_locales(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "text").glob("*.csv"))


def find_minds14_release(folder: Path) -> Path | None:
    """The release inside an unpacked archive: the folder itself or one of its subfolders."""
    candidates = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    return next((p for p in candidates if is_minds14_release(p)), None)


def load_minds14(root: Path, locales: str | None = None) -> LoadedData:
    """Read one locale, several (comma-separated) or 'all'; the locale becomes each clip's group."""
    available = minds14_locales(root)
    wanted = available if not locales or locales == "all" else [x.strip() for x in locales.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in available]
    if unknown:
        raise DataError(f"{root}: no locale {', '.join(unknown)} in text/; available: {', '.join(available)} or 'all'")
    records = [record for locale in wanted for record in _locale_records(root, locale)]
    return LoadedData(records, sorted_labels(records), f"MInDS-14 release {root} ({', '.join(wanted)})")


def _locale_records(root: Path, locale: str) -> list[Record]:
    csv_path = root / "text" / f"{locale}.csv"
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in TEXT_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise DataError(f"{csv_path}: missing column(s) {', '.join(missing)}")
    records = []
    for row in rows:
        clip = root / "audio" / row["filepath"]
        records.append(Record(audio=str(clip), name=str(clip), label=row["intent"].strip(), group=locale))
    return records

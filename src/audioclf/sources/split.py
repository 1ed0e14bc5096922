"""Train/test split: a source's own split wins; else random (stratified by label) or by group."""

from __future__ import annotations

from collections import Counter

import numpy as np

from audioclf.sources.records import DataError, Record


def split_records(
    records: list[Record], test_size: float, seed: int, group_by: bool = False, stratify: bool = True
) -> tuple[list[Record], list[Record]]:
    """Return (train, test). Records that carry a split keep it; otherwise split at random,
    keeping each group on one side when `group_by`, else stratified by label when `stratify`."""
    if any(r.split == "test" for r in records):
        train = [r for r in records if r.split != "test"]
        test = [r for r in records if r.split == "test"]
    elif group_by:
        train, test = _group_split(records, test_size, seed)
    else:
        train, test = _random_split(records, test_size, seed, stratify)
    _check_every_label_trains(train, records)
    return train, test


def _random_split(
    records: list[Record], test_size: float, seed: int, stratify: bool
) -> tuple[list[Record], list[Record]]:
    from sklearn.model_selection import train_test_split

    labels = [r.label for r in records]
    if stratify:
        too_few = sorted(label for label, n in Counter(labels).items() if n < 2)
        if too_few:
            raise DataError(
                f"class(es) {', '.join(too_few)} have fewer than 2 clips, too few to split into train and test; "
                "add clips, remove the class, or give an explicit split column"
            )
    indices = np.arange(len(records))
    try:
        train_idx, test_idx = train_test_split(
            indices, test_size=test_size, random_state=seed, stratify=labels if stratify else None
        )
    except ValueError as err:
        raise DataError(f"cannot split {len(records)} clips with test_size={test_size}: {err}") from None
    return [records[i] for i in sorted(train_idx)], [records[i] for i in sorted(test_idx)]


def _group_split(records: list[Record], test_size: float, seed: int) -> tuple[list[Record], list[Record]]:
    from sklearn.model_selection import GroupShuffleSplit

    ungrouped = [r.name for r in records if r.group is None]
    if ungrouped:
        raise DataError(f"{len(ungrouped)} clip(s) have no group (first: {ungrouped[0]}); cannot split by group")
    groups = [r.group for r in records]
    if len(set(groups)) < 2:
        raise DataError(f"only one group ({groups[0]}) in the data; a grouped split needs at least two")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, test_idx = next(splitter.split(np.arange(len(records)), groups=groups))
    return [records[i] for i in sorted(train_idx)], [records[i] for i in sorted(test_idx)]


def _check_every_label_trains(train: list[Record], records: list[Record]) -> None:
    missing = sorted({r.label for r in records} - {r.label for r in train})
    if missing:
        raise DataError(f"class(es) {', '.join(missing)} have no training clips after the split")
    if not train:
        raise DataError("the split left no training clips")

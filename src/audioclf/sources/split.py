"""Train/validation/test split: a source's own split wins; else random (stratified by label) or by group."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from audioclf.sources.records import DataError, Record

NO_VALIDATION_HINT = "or pass --validation-size 0 to train without one (the last epoch is then kept)"


def split_records(
    records: list[Record], test_size: float, seed: int, group_by: bool = False, stratify: bool = True
) -> tuple[list[Record], list[Record]]:
    """Return (train, test). Records that carry a split keep it; otherwise split at random,
    keeping each group on one side when `group_by`, else stratified by label when `stratify`.
    Records marked `validation` stay on the train side, for `hold_out_validation`."""
    if any(r.split == "test" for r in records):
        train = [r for r in records if r.split != "test"]
        test = [r for r in records if r.split == "test"]
    elif group_by:
        train, test = _group_split(records, test_size, seed)
    else:
        train, test = _random_split(records, test_size, seed, stratify, "train and test")
    _check_every_label_trains(train, records)
    return train, test


def hold_out_validation(
    train: list[Record], validation_size: float, seed: int, group_by: bool = False, stratify: bool = True
) -> tuple[list[Record], list[Record]]:
    """Return (train, validation) from the training side: the records marked `validation` when there are
    any, else a `validation_size` fraction drawn the way the test split was (by group, or stratified, and
    at least as many clips as labels). Validation picks the epoch and the strategy; the test split is scored once."""
    if any(r.split == "validation" for r in train):
        kept = [r for r in train if r.split != "validation"]
        validation = [r for r in train if r.split == "validation"]
    elif validation_size == 0:
        return train, []
    elif group_by:
        kept, validation = _group_split(train, validation_size, seed, NO_VALIDATION_HINT)
    else:
        labels = len({r.label for r in train})
        size = max(math.ceil(validation_size * len(train)), labels if stratify else 1)
        kept, validation = _random_split(train, size, seed, stratify, "train and validation", NO_VALIDATION_HINT)
    _check_every_label_trains(kept, train)
    return kept, validation


def _random_split(
    records: list[Record], test_size: float | int, seed: int, stratify: bool, sides: str, hint: str = ""
) -> tuple[list[Record], list[Record]]:
    from sklearn.model_selection import train_test_split

    labels = [r.label for r in records]
    hint = hint or "or give an explicit split column"
    if stratify:
        too_few = sorted(label for label, n in Counter(labels).items() if n < 2)
        if too_few:
            raise DataError(
                f"class(es) {', '.join(too_few)} have fewer than 2 clips, too few to split into {sides}; "
                f"add clips, remove the class, {hint}"
            )
    indices = np.arange(len(records))
    try:
        train_idx, test_idx = train_test_split(
            indices, test_size=test_size, random_state=seed, stratify=labels if stratify else None
        )
    except ValueError as err:
        raise DataError(f"cannot split {len(records)} clips into {sides} ({test_size}): {err}; {hint}") from None
    return [records[i] for i in sorted(train_idx)], [records[i] for i in sorted(test_idx)]


def _group_split(
    records: list[Record], test_size: float, seed: int, hint: str = ""
) -> tuple[list[Record], list[Record]]:
    from sklearn.model_selection import GroupShuffleSplit

    ungrouped = [r.name for r in records if r.group is None]
    if ungrouped:
        raise DataError(f"{len(ungrouped)} clip(s) have no group (first: {ungrouped[0]}); cannot split by group")
    groups = [r.group for r in records]
    if len(set(groups)) < 2:
        raise DataError(f"only one group ({groups[0]}) left to split; a grouped split needs at least two"
                        + (f"; {hint}" if hint else ""))
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, test_idx = next(splitter.split(np.arange(len(records)), groups=groups))
    return [records[i] for i in sorted(train_idx)], [records[i] for i in sorted(test_idx)]


def _check_every_label_trains(train: list[Record], records: list[Record]) -> None:
    missing = sorted({r.label for r in records} - {r.label for r in train})
    if missing:
        raise DataError(f"class(es) {', '.join(missing)} have no training clips after the split")
    if not train:
        raise DataError("the split left no training clips")

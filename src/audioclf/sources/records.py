"""The record every source yields: one clip's audio reference, label, group and split."""

from __future__ import annotations

from dataclasses import dataclass, field

from audioclf.audio import AudioSource


# Split names a source may use, mapped to ours; validation data is held out like test data.
SPLIT_ALIASES = {"train": "train", "test": "test", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation"}


class DataError(ValueError):
    """A data source that cannot be read or used; the message names the file and the problem."""


@dataclass(frozen=True)
class Record:
    audio: AudioSource = field(repr=False)
    name: str
    label: str
    group: str | None = None
    split: str | None = None


@dataclass
class LoadedData:
    """Records of one source, with the label names in a stable order (the source's own, if it has one)."""

    records: list[Record]
    label_names: list[str]
    description: str


def sorted_labels(records: list[Record]) -> list[str]:
    return sorted({r.label for r in records})

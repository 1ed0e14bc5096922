"""Decoded clips held once in memory for all epochs, and the collator that turns them into batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from audioclf.audio import AudioError, load_audio
from audioclf.features import extract_features
from audioclf.sources.records import Record


@dataclass
class DecodedClips:
    """Waveforms at the model's rate with integer labels, plus the clips that could not be used."""

    waves: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    bad: list[AudioError] = field(default_factory=list)

    def longest_seconds(self, rate: int) -> float:
        return max((len(w) for w in self.waves), default=0) / rate


def decode_records(
    records: list[Record], label2id: dict[str, int], rate: int, max_duration: float, desc: str = "decoding"
) -> DecodedClips:
    """Decode every record once (progress bar); unreadable clips are collected, not raised."""
    from tqdm.auto import tqdm

    clips = DecodedClips()
    for record in tqdm(records, desc=desc, unit="clip", disable=len(records) < 50):
        try:
            wave = load_audio(record.audio, rate, max_duration, name=record.name)
        except AudioError as err:
            clips.bad.append(err)
            continue
        clips.waves.append(wave)
        clips.labels.append(label2id[record.label])
        clips.names.append(record.name)
    return clips


class ClipDataset:
    """A map-style dataset over decoded clips. Items carry the raw waveform under the model's input
    name, so transformers' length-grouped sampler can read lengths without extracting features."""

    def __init__(
        self, clips: DecodedClips, input_name: str, augment: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        self.clips = clips
        self.input_name = input_name
        self.augment = augment

    def __len__(self) -> int:
        return len(self.clips.waves)

    def __getitem__(self, index: int) -> dict[str, Any]:
        wave = self.clips.waves[index]
        return {self.input_name: self.augment(wave) if self.augment else wave, "labels": self.clips.labels[index]}


class AudioCollator:
    """Pads a list of items into one batch with the model's own feature extractor."""

    def __init__(self, extractor: Any, input_name: str) -> None:
        self.extractor = extractor
        self.input_name = input_name

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = extract_features(self.extractor, [item[self.input_name] for item in items])
        batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=torch.long)
        return batch

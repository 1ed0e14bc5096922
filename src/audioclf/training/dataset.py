"""Clips decoded once for all epochs (in memory or in the disk cache), and the collator that batches them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from audioclf.audio import AudioError, load_audio
from audioclf.features import extract_features
from audioclf.sources.records import Record
from audioclf.training.cache import CachedWaves, CacheWriter, cache_key, iter_sources, open_entry

log = logging.getLogger("audioclf")


@dataclass
class DecodedClips:
    """Waveforms at the model's rate (in memory, or `CachedWaves` read from disk one at a time) with
    integer labels, plus the clips that could not be used."""

    waves: Sequence[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    bad: list[AudioError] = field(default_factory=list)

    def longest_seconds(self, rate: int) -> float:
        return max(self.lengths, default=0) / rate


def decode_records(
    records: list[Record], label2id: dict[str, int], rate: int, max_duration: float, desc: str = "decoding",
    cache_dir: Path | None = None, min_samples: int = 1,
) -> DecodedClips:
    """Decode every record once (progress bar); unreadable clips, and clips shorter than `min_samples`
    (the model's shortest input), are collected, not raised. With a
    `cache_dir`, the waveforms go to a disk cache keyed by the clips and settings (reused when nothing
    changed) and are read back lazily, so memory does not grow with the dataset."""
    if cache_dir is None:
        return _decode(records, label2id, rate, max_duration, min_samples, desc, writer=None)
    folder = cache_dir / cache_key(iter_sources(records), rate, max_duration, min_samples)
    entry = open_entry(folder)
    if entry is not None:
        log.info("%s: %d clips from the audio cache %s", desc, len(entry[0]), folder)
        return _from_cache(*entry, label2id)
    writer = CacheWriter(folder)
    try:
        clips = _decode(records, label2id, rate, max_duration, min_samples, desc, writer)
    except BaseException:
        writer.abort()
        raise
    by_id = {i: name for name, i in label2id.items()}
    clips.waves = writer.commit({"names": clips.names, "labels": [by_id[i] for i in clips.labels],
                                 "bad": [[err.name, err.reason] for err in clips.bad]})
    return clips


def _decode(records: list[Record], label2id: dict[str, int], rate: int, max_duration: float, min_samples: int,
            desc: str, writer: CacheWriter | None) -> DecodedClips:
    from tqdm.auto import tqdm

    clips = DecodedClips()
    waves: list[np.ndarray] = []
    for record in tqdm(records, desc=desc, unit="clip", disable=len(records) < 50):
        try:
            wave = load_audio(record.audio, rate, max_duration, name=record.name, min_samples=min_samples)
        except AudioError as err:
            clips.bad.append(err)
            continue
        if writer is None:
            waves.append(wave)
        else:
            writer.add(wave)
        clips.labels.append(label2id[record.label])
        clips.names.append(record.name)
        clips.lengths.append(len(wave))
    clips.waves = waves
    return clips


def _from_cache(waves: CachedWaves, meta: dict[str, Any], label2id: dict[str, int]) -> DecodedClips:
    return DecodedClips(waves=waves, labels=[label2id[label] for label in meta["labels"]], names=meta["names"],
                        lengths=[int(n) for n in waves.lengths], bad=[AudioError(*pair) for pair in meta["bad"]])


CLIP_LENGTHS = "clip_samples"  # a batch's key for its clips' lengths in samples (`AudioCollator`)


class ClipDataset:
    """A map-style dataset over decoded clips: items carry the raw waveform under the model's input name;
    `lengths` (in samples) lets the length-grouped sampler order them without reading any."""

    def __init__(
        self, clips: DecodedClips, input_name: str, augment: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        self.clips = clips
        self.input_name = input_name
        self.augment = augment

    def __len__(self) -> int:
        return len(self.clips.waves)

    @property
    def lengths(self) -> list[int]:
        return self.clips.lengths

    def __getitem__(self, index: int) -> dict[str, Any]:
        wave = self.clips.waves[index]
        return {self.input_name: self.augment(wave) if self.augment else wave, "labels": self.clips.labels[index]}


class AudioCollator:
    """Pads a list of items into one batch with the model's own feature extractor. With `clip_lengths`, the
    batch has an attention mask and each clip's length in samples (`CLIP_LENGTHS`) too, for a feature encoder
    run over each clip's own samples (`finetune`)."""

    def __init__(self, extractor: Any, input_name: str, clip_lengths: bool = False) -> None:
        self.extractor = extractor
        self.input_name = input_name
        self.clip_lengths = clip_lengths

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        waves = [item[self.input_name] for item in items]
        batch = extract_features(self.extractor, waves, attention_mask=True if self.clip_lengths else None)
        batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=torch.long)
        if self.clip_lengths:
            batch[CLIP_LENGTHS] = torch.tensor([len(wave) for wave in waves])
        return batch

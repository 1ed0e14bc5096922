"""Frozen feature-encoder outputs computed once per clip, so fine-tuning epochs skip the convolutions.

With the convolutional feature encoder frozen (the default) and no waveform augmentation, every epoch
would recompute the same convolution outputs, a large share of a wav2vec2-family forward pass on short
clips. Here they are computed once, exactly per clip (the length-aware first norm of exact batching where
the checkpoint has a group norm), and training runs the rest of the model on them under an attention mask,
as prediction does. Written by hand: transformers has no way to feed a model precomputed encoder outputs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from audioclf.features import extract_features
from audioclf.inference.exact_batching import EXACT_WITH_MASK, encoder_forward, supports_exact_batching
from audioclf.models import autocast, forwards_replaced
from audioclf.training.cache import CachedWaves, CacheWriter
from audioclf.training.dataset import DecodedClips

log = logging.getLogger("audioclf")

LENGTH_KEY = "samples"  # an item's clip length in samples: the model's attention mask is rebuilt from it


def can_cache_encoder_outputs(model: Any) -> bool:
    """True for a model of a type whose code after the feature encoder masks padded frames exactly, with a
    frozen feature encoder whose per-clip outputs can be computed in batches."""
    config = model.config
    encoder = getattr(model.base_model, "feature_extractor", None)
    if config.model_type not in EXACT_WITH_MASK or encoder is None:
        return False
    if any(param.requires_grad for param in encoder.parameters()):
        return False
    return supports_exact_batching(model) if config.feat_extract_norm == "group" else True


def encode_clips(model: Any, extractor: Any, clips: DecodedClips, batch_size: int,
                 precision: str = "float32") -> Iterator[tuple[int, np.ndarray]]:
    """(clip index, its feature-encoder output as (frames, channels) float32) for every clip, in batches
    of neighbouring lengths, each clip computed as if alone (`precision` bf16 or fp16: under that autocast)."""
    import torch

    order = np.argsort(clips.lengths, kind="stable")
    group_norm = model.config.feat_extract_norm == "group"
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            waves = [clips.waves[i] for i in rows]
            lengths = [len(wave) for wave in waves]
            features = extract_features(extractor, waves, attention_mask=True)
            values = features[extractor.model_input_names[0]].to(model.device, model.dtype)
            with encoder_forward(model, lengths if group_norm else None), autocast(model, precision):
                hidden = model.base_model.feature_extractor(values)
            frames = model.base_model._get_feat_extract_output_lengths(torch.tensor(lengths))
            for row, index in enumerate(rows):
                yield int(index), hidden[row, :, : int(frames[row])].T.float().cpu().numpy()


class StoredFrames(Sequence[np.ndarray]):
    """Encoder outputs kept flat in a disk cache entry, read back one clip at a time, so memory stays flat."""

    def __init__(self, flat: CachedWaves, position: list[int], channels: int) -> None:
        self.flat = flat
        self.position = position
        self.channels = channels

    def __len__(self) -> int:
        return len(self.position)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]  (no slices needed)
        return self.flat[self.position[index]].reshape(-1, self.channels)


def _keep(pairs: Iterator[tuple[int, np.ndarray]], count: int, channels: int,
          folder: Path | None) -> Sequence[np.ndarray]:
    if folder is None:
        in_memory: list[np.ndarray] = [np.empty((0, channels), np.float32)] * count
        for index, frames in pairs:
            in_memory[index] = frames
        return in_memory
    writer, position = CacheWriter(folder), [0] * count
    for written, (index, frames) in enumerate(pairs):
        writer.add(frames.ravel())
        position[index] = written
    return StoredFrames(writer.commit({}), position, channels)


@contextmanager
def frozen_encoder_outputs(model: Any, extractor: Any, batch_size: int, precision: str,
                           *parts: DecodedClips) -> Iterator[tuple[list[Sequence[np.ndarray]], float]]:
    """The feature-encoder outputs of each part (train, validation) and the seconds they took: in memory,
    or, where the clips come from the disk cache, in a scratch entry beside it, removed on exit."""
    disk = next((part.waves.folder.parent for part in parts if isinstance(part.waves, CachedWaves)), None)
    scratch = Path(tempfile.mkdtemp(dir=disk, prefix=".encoder-outputs-")) if disk is not None else None
    channels = model.config.conv_dim[-1]
    try:
        start = time.monotonic()
        encoded = [_keep(encode_clips(model, extractor, part, batch_size, precision), len(part.labels), channels,
                         scratch / f"part{i}" if scratch else None) for i, part in enumerate(parts)]
        seconds = time.monotonic() - start
        log.info("feature encoder frozen: its outputs for %d clips computed once (%.1f s), not every epoch",
                 sum(len(part) for part in encoded), seconds)
        yield encoded, seconds
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


class EncodedClipDataset:
    """Items of cached encoder outputs under the model's input name (frames first), with labels and the
    clip's length in samples; `lengths` orders them for the length-grouped sampler."""

    def __init__(self, encoded: Sequence[np.ndarray], clips: DecodedClips, input_name: str) -> None:
        self.encoded = encoded
        self.clips = clips
        self.input_name = input_name

    def __len__(self) -> int:
        return len(self.encoded)

    @property
    def lengths(self) -> list[int]:
        return self.clips.lengths

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {self.input_name: self.encoded[index], "labels": self.clips.labels[index],
                LENGTH_KEY: self.clips.lengths[index]}


class EncodedCollator:
    """Zero-pads cached encoder outputs into (batch, channels, frames) and gives the sample-level
    attention mask from which the model derives its frame mask."""

    def __init__(self, input_name: str) -> None:
        self.input_name = input_name

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        frames = [torch.from_numpy(item[self.input_name]) for item in items]
        values = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True).transpose(1, 2)
        samples = torch.tensor([item[LENGTH_KEY] for item in items])
        mask = (torch.arange(int(samples.max()))[None, :] < samples[:, None]).long()
        labels = torch.tensor([item["labels"] for item in items], dtype=torch.long)
        return {self.input_name: values, "attention_mask": mask, "labels": labels}


@contextmanager
def encoder_outputs_as_input(model: Any) -> Iterator[None]:
    """Within this block, `model` takes feature-encoder outputs where it takes waveforms: its feature
    encoder passes its input through. Weights and state dict are never touched."""
    with forwards_replaced([model.base_model.feature_extractor], lambda _: _given):
        yield


def _given(encoded: Any) -> Any:
    return encoded

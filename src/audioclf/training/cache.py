"""Decoded audio cached on disk once per dataset and audio settings, read one clip at a time.

Written by hand: `datasets` would do this with Arrow, but it decodes audio only through torchcodec
(FFmpeg), which this project avoids; the format here is one float32 file plus an index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from audioclf.audio import AudioSource

CACHE_VERSION = 1
AUDIO_FILE, INDEX_FILE, META_FILE = "audio.f32", "index.npy", "meta.json"


class CachedWaves(Sequence[np.ndarray]):
    """Waveforms stored back to back in one float32 file; each access reads one clip (pread, not mmap:
    mapped pages would count in the process's memory)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        index = np.load(folder / INDEX_FILE)
        self.offsets, self.lengths = index[:, 0], index[:, 1]
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]  (no slices needed)
        if self._fd is None:
            self._fd = os.open(self.folder / AUDIO_FILE, os.O_RDONLY)
        wave = np.empty(int(self.lengths[index]), dtype=np.float32)
        os.preadv(self._fd, [wave], int(self.offsets[index]) * 4)
        return wave

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own file handle
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


class CacheWriter:
    """Appends clips to a new cache entry built in a temporary folder, renamed into place by `commit`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        self.audio = open(self.staging / AUDIO_FILE, "wb")
        self.index: list[tuple[int, int]] = []
        self.position = 0

    def add(self, wave: np.ndarray) -> None:
        self.audio.write(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        self.index.append((self.position, len(wave)))
        self.position += len(wave)

    def commit(self, meta: dict[str, Any]) -> CachedWaves:
        self.audio.close()
        np.save(self.staging / INDEX_FILE, np.array(self.index, dtype=np.int64).reshape(-1, 2))
        (self.staging / META_FILE).write_text(json.dumps(meta))
        try:
            self.staging.rename(self.folder)
        except OSError:  # another process finished the same entry first: use theirs
            shutil.rmtree(self.staging, ignore_errors=True)
        return CachedWaves(self.folder)

    def abort(self) -> None:
        self.audio.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def cache_key(sources: Iterable[tuple[str, AudioSource, str]], rate: int, max_duration: float | None,
              min_samples: int = 1) -> str:
    """A digest of every clip's identity (path, size and modification time; or its bytes), label and
    the audio settings: a changed file, label or setting gives a new entry."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, rate, max_duration, min_samples]).encode())
    for name, audio, label in sources:
        digest.update(f"{name}\0{label}\0".encode())
        digest.update(_identity(audio))
    return digest.hexdigest()[:32]


def _identity(audio: AudioSource) -> bytes:
    if isinstance(audio, bytes):
        return hashlib.sha256(audio).digest()
    if isinstance(audio, tuple):
        return hashlib.sha256(np.ascontiguousarray(audio[0]).tobytes() + str(audio[1]).encode()).digest()
    path = Path(audio)
    try:
        stat = path.stat()
    except OSError:
        return f"{path.resolve()}\0missing".encode()
    return f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()


def open_entry(folder: Path) -> tuple[CachedWaves, dict[str, Any]] | None:
    """A finished cache entry, or None."""
    if not (folder / META_FILE).is_file():
        return None
    return CachedWaves(folder), json.loads((folder / META_FILE).read_text())


def iter_sources(records: Sequence[Any]) -> Iterator[tuple[str, AudioSource, str]]:
    return ((record.name, record.audio, record.label) for record in records)

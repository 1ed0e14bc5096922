"""audioclf: fine-tune, evaluate and run audio classifiers; the public API (heavy imports are lazy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audioclf.config import ConfigError, TrainConfig, load_config

if TYPE_CHECKING:
    from audioclf.api import evaluate, export, resume, train
    from audioclf.inference import Classifier

__version__ = "0.1.0"
__all__ = ["Classifier", "ConfigError", "TrainConfig", "evaluate", "export", "load_config", "resume", "train",
           "__version__"]

_LAZY = {"train": "audioclf.api", "resume": "audioclf.api", "evaluate": "audioclf.api", "export": "audioclf.api",
         "Classifier": "audioclf.inference"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioclf' has no attribute {name!r}")

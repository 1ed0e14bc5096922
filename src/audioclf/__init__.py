"""audioclf: fine-tune, evaluate and run audio classifiers; the public API (heavy imports are lazy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audioclf.config import ConfigError, TrainConfig, load_config

if TYPE_CHECKING:
    from audioclf.api import evaluate, export, resume, train
    from audioclf.audio import AudioError
    from audioclf.inference import Classifier
    from audioclf.inference.onnx import ExportError
    from audioclf.runs import RunError
    from audioclf.sources.records import DataError

__version__ = "0.1.0"
__all__ = ["AudioError", "Classifier", "ConfigError", "DataError", "ExportError", "RunError", "TrainConfig",
           "evaluate", "export", "load_config", "resume", "train", "__version__"]

# The errors a caller catches: ConfigError (a setting), DataError (a data source), AudioError (one clip),
# RunError (a run folder), ExportError (an export); each message names the file or value and the problem.
_LAZY = {"train": "audioclf.api", "resume": "audioclf.api", "evaluate": "audioclf.api", "export": "audioclf.api",
         "Classifier": "audioclf.inference", "AudioError": "audioclf.audio", "DataError": "audioclf.sources.records",
         "ExportError": "audioclf.inference.onnx", "RunError": "audioclf.runs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioclf' has no attribute {name!r}")

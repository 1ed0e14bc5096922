"""The public surface is small and pinned; importing it and `--help` stay light."""

from __future__ import annotations

import subprocess
import sys

import audioclf


def test_exported_names_are_pinned() -> None:
    assert sorted(audioclf.__all__) == sorted(
        ["AudioError", "Classifier", "ConfigError", "DataError", "ExportError", "RunError", "TrainConfig", "evaluate",
         "export", "load_config", "resume", "train", "__version__"]
    )
    assert all(issubclass(getattr(audioclf, name), Exception) for name in audioclf.__all__ if name.endswith("Error"))
    for name in audioclf.__all__:
        assert getattr(audioclf, name) is not None


def test_help_does_not_import_torch_or_transformers() -> None:
    code = "import sys; from audioclf.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")

"""Model presets shipped with audioclf: configs trained from scratch, named `audioclf:<name>`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PREFIX = "audioclf:"


def available() -> list[str]:
    root = Path(str(resources.files("audioclf.presets")))
    return sorted(PREFIX + p.name for p in root.iterdir() if (p / "config.json").is_file())


def preset_path(name: str) -> Path | None:
    """The folder of preset `name` (a config, no weights), or None when `name` is not a preset."""
    if not name.startswith(PREFIX):
        return None
    folder = Path(str(resources.files("audioclf.presets"))) / name[len(PREFIX):]
    if not (folder / "config.json").is_file():
        raise ValueError(f"unknown model preset '{name}'; available: {', '.join(available())}")
    return folder

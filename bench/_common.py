"""Shared by the benchmark scripts: where the real data lies, what machine ran, and writing results JSON."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FSDD = SHARED / "data" / "fsdd" / "recordings"
WHISPER_TINY_EN = SHARED / "models" / "whisper-tiny.en"
RESULTS = Path(__file__).resolve().parent / "results"


def require_shared() -> None:
    if not (FSDD.is_dir() and WHISPER_TINY_EN.is_dir()):
        sys.exit(f"bench: needs the real data and model in {SHARED} (the workplace's ../shared)")


def environment() -> dict[str, Any]:
    """The command, machine and versions a figure was measured with."""
    versions = {name: _version(name) for name in ("audioclf", "torch", "transformers", "onnxruntime", "fastapi",
                                                  "uvicorn")}
    return {
        "command": " ".join(shlex.quote(arg) for arg in [Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpu_cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {name: v for name, v in versions.items() if v},
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_results(name: str, results: dict[str, Any], output: Path | None = None) -> Path:
    path = output or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, **environment(), **results}, indent=2) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * width for width in widths))

"""The benchmark scripts run (small) and write well-formed results; their figures are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_shared

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_quick(script: str, output: Path) -> dict:
    subprocess.run([sys.executable, str(BENCH / script), "--quick", "--output", str(output)], check=True,
                   capture_output=True, text=True, timeout=600)
    return json.loads(output.read_text())


@needs_shared
def test_serve_load_quick_writes_results(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    results = run_quick("serve_load.py", tmp_path / "serve.json")
    assert results["benchmark"] == "serve_load" and results["machine"]["cpu_cores"] >= 1
    assert "serve_load.py --quick" in results["command"] and results["versions"]["torch"]
    for mode in ("batching on", "batching off"):
        figures = results["modes"][mode]
        assert figures["requests"] == 10 and figures["non_2xx"] == 0
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]

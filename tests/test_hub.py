"""The Hub path end to end through the real `datasets` and `huggingface_hub` code, against a Hub stand-in on
127.0.0.1 (`hub_server.py`): a MInDS-14-shaped loading-script repo with its release zip and its Parquet
conversion, a standard Parquet dataset, a tiny wav2vec2 model repo, and `--push-to-hub` into the same server."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import soundfile as sf
from conftest import tone
from hub_server import HubServer

pytest.importorskip("datasets", reason="the Hub path needs the [hub] extra (datasets)")

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# datasets 3.x with huggingface_hub 0.x, beside the main environment (`make test-all` builds it): `[hub]` allows both.
DATASETS3_PYTHON = ROOT / ".venv-datasets3" / "bin" / "python"
INTENTS = {"balance": 220.0, "freeze": 660.0, "pay_bill": 1760.0}
LOCALES = ("en-US", "fr-FR")
FAST = ["--epochs", "1", "--batch-size", "4", "--gradient-accumulation-steps", "1", "--learning-rate", "1e-3",
        "--strategy", "finetune", "--max-duration", "2"]
Clip = tuple[str, str, str, bytes]  # locale, intent, path in the release, WAV bytes


def _wav(freq: float, rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(freq, rng.uniform(0.5, 1.0), 8000, rng), 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def minds14_clips(per_intent: int = 6) -> list[Clip]:
    rng = np.random.default_rng(0)
    return [(locale, intent, f"{locale}~{intent.upper()}/{locale}_{intent}_{i}.wav", _wav(freq, rng))
            for locale in LOCALES for intent, freq in INTENTS.items() for i in range(per_intent)]


def release_zip(clips: list[Clip]) -> bytes:
    """MInDS-14's release layout: MInDS-14/text/<locale>.csv and MInDS-14/audio/<filepath>."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for locale in LOCALES:
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(["filepath", "text_asr", "text_translated", "intent"])
            writer.writerows([path, "words", "words", intent] for loc, intent, path, _ in clips if loc == locale)
            zipped.writestr(f"MInDS-14/text/{locale}.csv", text.getvalue())
        for _, _, path, data in clips:
            zipped.writestr(f"MInDS-14/audio/{path}", data)
    return buffer.getvalue()


def parquet_table(rows: list[tuple[str, bytes, str]], names: list[str], rate: int = 8000) -> bytes:
    """A Parquet file as `datasets` writes one: audio as {bytes, path}, the features in the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {"path": {"dtype": "string", "_type": "Value"}, "audio": {"sampling_rate": rate, "_type": "Audio"},
                "intent_class": {"names": names, "_type": "ClassLabel"}}
    table = pa.table({"path": [r[0] for r in rows], "audio": [{"bytes": r[1], "path": r[0]} for r in rows],
                      "intent_class": pa.array([names.index(r[2]) for r in rows], pa.int64())})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def parquet_conversion(clips: list[Clip]) -> dict[str, bytes]:
    """The Hub's conversion of a script repo: one folder per config, CONFIG/SPLIT/0000.parquet."""
    return {f"{locale}/train/0000.parquet": parquet_table(
        [(path, data, intent) for loc, intent, path, data in clips if loc == locale], sorted(INTENTS))
        for locale in LOCALES}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    from tiny_models import save_tiny

    clips = minds14_clips()
    script_repo = {"minds14.py": b"# a loading script\n", "data/MInDS-14.zip": release_zip(clips),
                   "README.md": b"---\nlicense: cc-by-4.0\n---\n# MInDS-14\n"}
    with HubServer() as server:
        server.add_repo("dataset", "PolyAI/minds14", script_repo)
        server.add_repo("dataset", "PolyAI/minds14", parquet_conversion(clips), revision="refs/convert/parquet")
        server.add_repo("dataset", "someone/minds14-script-only", script_repo)
        server.add_repo("dataset", "someone/gated", script_repo)
        server.gated.add("someone/gated")
        en = [(path, data, intent) for loc, intent, path, data in clips if loc == "en-US"]
        server.add_repo("dataset", "someone/tones", {
            "data/train-00000-of-00001.parquet": parquet_table(en[1::2], sorted(INTENTS)),
            "data/test-00000-of-00001.parquet": parquet_table(en[::2], sorted(INTENTS))})
        model = save_tiny("wav2vec2", tmp_path_factory.mktemp("hub-model"))
        server.add_folder("model", "facebook/wav2vec2-base", model)
        yield server


@pytest.fixture
def hub_env(hub: HubServer, tmp_path: Path) -> dict[str, str]:
    """A user's environment pointed at the stand-in, with empty caches of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return env | {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": "hf_test_token",
                  "AUDIOCLF_CACHE_DIR": str(tmp_path / "audioclf-cache")}


def run_in(env: dict[str, str], *args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, *args], env=env, capture_output=True, text=True, timeout=600)


LOAD = ("import json, sys; from audioclf.sources import load_data; d = load_data(*sys.argv[1:]); "
        "print(json.dumps({'description': d.description, 'labels': d.label_names, "
        "'splits': sorted({str(r.split) for r in d.records}), 'groups': sorted({str(r.group) for r in d.records}), "
        "'count': len(d.records)}))")


def load_through(env: dict[str, str], *args: str, python: str = sys.executable) -> dict[str, Any]:
    result = run_in(env, "-c", LOAD, *args, python=python)
    assert result.returncode == 0, result.stderr
    assert "custom code" not in result.stdout + result.stderr  # datasets 3.x asks before running a script
    return json.loads(result.stdout.strip().splitlines()[-1])


def readme_train_args() -> list[str]:
    """The README's first `audioclf train` line, as arguments."""
    line = next(x for x in README.read_text().splitlines() if x.startswith("audioclf train "))
    return line.split()[1:]


def test_readme_command_trains_from_the_hub_pushes_and_reruns_offline(
    hub: HubServer, hub_env: dict[str, str], tmp_path: Path
) -> None:
    args = readme_train_args()
    assert args[:7] == ["train", "--data", "PolyAI/minds14", "--data-config", "en-US", "--model",
                        "facebook/wav2vec2-base"]
    run = tmp_path / "minds"
    result = run_in(hub_env, "-m", "audioclf.cli", *args, *FAST, "--output", str(run),
                    "--push-to-hub", "--hub-model-id", "someone/minds-tiny")
    assert result.returncode == 0, result.stderr
    assert "Parquet conversion" in result.stderr and "pushed" in result.stderr
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "complete" and sum(
        status[f"num_{split}_clips"] for split in ("train", "validation", "eval")) == 18
    assert not hub.unserved, hub.unserved

    pushed = hub.files("model", "someone/minds-tiny")
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json", "README.md"):
        assert pushed[name] == (run / name).read_bytes(), name
    assert not any(name.startswith("checkpoints/") for name in pushed)
    _pipeline_scores_match(hub, run, tmp_path)

    asked = len(hub.requests)
    offline = hub_env | {"HF_HUB_OFFLINE": "1"}
    again = run_in(offline, "-m", "audioclf.cli", *args, *FAST, "--output", str(tmp_path / "minds-offline"))
    assert again.returncode == 0, again.stderr
    assert len(hub.requests) == asked, hub.requests[asked:]  # the cache alone: not one request
    assert json.loads((tmp_path / "minds-offline" / "metrics.json").read_text()) == json.loads(
        (run / "metrics.json").read_text())


def _pipeline_scores_match(hub: HubServer, run: Path, tmp_path: Path) -> None:
    """The pushed repo, downloaded back, loads in the stock pipeline with the run's own scores."""
    from huggingface_hub import snapshot_download
    from transformers import pipeline

    from audioclf import Classifier

    folder = snapshot_download("someone/minds-tiny", endpoint=hub.url, cache_dir=tmp_path / "download",
                               token="hf_test_token")
    wave = tone(660.0, 0.8, 16000, np.random.default_rng(5))
    stock = pipeline("audio-classification", model=folder, device="cpu")({"raw": wave, "sampling_rate": 16000},
                                                                         top_k=3)
    ours = Classifier.load(run, device="cpu").predict([wave], top_k=3)[0]
    assert [p["label"] for p in stock] == [p["label"] for p in ours]
    np.testing.assert_allclose([p["score"] for p in stock], [p["score"] for p in ours], atol=1e-5)


def test_script_repo_without_a_conversion_loads_from_its_release_archive(hub_env: dict[str, str]) -> None:
    loaded = load_through(hub_env, "someone/minds14-script-only", "en-US,fr-FR")
    assert "release archive" in loaded["description"] and loaded["count"] == 36
    assert loaded["labels"] == sorted(INTENTS) and loaded["groups"] == list(LOCALES)
    offline = load_through(hub_env | {"HF_DATASETS_OFFLINE": "1"}, "someone/minds14-script-only", "all")
    assert offline["count"] == 36
    unreachable = load_through(hub_env | {"HF_ENDPOINT": "http://127.0.0.1:9"}, "someone/minds14-script-only", "all")
    assert unreachable == offline  # no Hub and no offline switch: the cache still serves


def test_standard_dataset_loads_with_its_own_test_split(hub_env: dict[str, str]) -> None:
    loaded = load_through(hub_env, "someone/tones", "default")
    assert loaded["description"].startswith("Hub dataset someone/tones (") and loaded["count"] == 18
    assert loaded["splits"] == ["test", "train"] and loaded["labels"] == sorted(INTENTS)
    assert load_through(hub_env | {"HF_HUB_OFFLINE": "1"}, "someone/tones", "default") == loaded


@pytest.mark.parametrize(("dataset", "config", "message"), [
    ("nobody/missing", "en-US", "neither a local path nor a dataset on the Hugging Face Hub"),
    ("someone/gated", "en-US", "gated or private dataset on the Hugging Face Hub: .* set HF_TOKEN"),
    ("PolyAI/minds14", "de-DE", r"Tried: datasets\.load_dataset: .*Parquet .*: no config de-DE in it; it has en-US, "
     r"fr-FR; the MInDS-14 release archive .*: no locale de-DE in it; it has en-US, fr-FR\. Pass local data"),
])
def test_what_cannot_load_is_one_message(hub_env: dict[str, str], tmp_path: Path, dataset: str, config: str,
                                        message: str) -> None:
    result = run_in(hub_env, "-m", "audioclf.cli", "train", "--data", dataset, "--data-config", config,
                    "--output", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not DATASETS3_PYTHON.exists(), reason="no .venv-datasets3: `make test-all` builds it")
def test_every_way_loads_under_datasets_3_too(hub_env: dict[str, str]) -> None:
    env = hub_env | {"PYTHONPATH": str(ROOT / "src")}
    ways = [("PolyAI/minds14", "en-US", "Parquet conversion"),
            ("someone/minds14-script-only", "all", "release archive"),
            ("someone/tones", "default", "someone/tones (default")]
    for environment in (env, env | {"HF_HUB_OFFLINE": "1"}):
        for dataset, config, way in ways:
            loaded = load_through(environment, dataset, config, python=str(DATASETS3_PYTHON))
            assert way in loaded["description"] and loaded["labels"] == sorted(INTENTS), loaded

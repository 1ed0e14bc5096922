"""The run folder: layout, atomic writes, and run.json status that marks a finished run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("audioclf")

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
CARD_FILE = "README.md"
CHECKPOINT_DIR = "checkpoints"
MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
ONNX_FILE = "model.onnx"  # written by `audioclf export`


class RunError(RuntimeError):
    """A run folder that cannot be used as asked (exists, unfinished, not a run)."""


class TrainingInterrupted(RunError):
    """Training stopped on Ctrl-C after saving a checkpoint; `audioclf resume` continues it."""

    def __init__(self, run_dir: Path, step: int) -> None:
        super().__init__(f"training interrupted at step {step}; a checkpoint was saved. "
                         f"Continue with: audioclf resume {run_dir}")


def is_main_process() -> bool:
    """False in all but rank 0 of a torchrun/accelerate launch: only rank 0 writes the run folder and logs."""
    return int(os.environ.get("RANK", "0")) == 0


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: unreadable run status ({err})") from None


def write_status(run_dir: Path, status: str, **info: Any) -> None:
    current = read_status(run_dir) or {}
    current.update(info, status=status, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(Path(run_dir) / RUN_FILE, current)


def prepare_run_dir(run_dir: Path, overwrite: bool) -> Path:
    """Create the run folder; refuse to touch a non-empty one unless `overwrite`, or unless it holds only a
    run that failed before it trained anything (its status and config: nothing to lose)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite and _failed_before_training(run_dir):
            log.info("replacing the run that failed in %s before training anything", run_dir)
        elif not overwrite:
            status = read_status(run_dir)
            what = f"a {status.get('status', 'unknown')} run" if status else "files that are not an audioclf run"
            raise RunError(f"{run_dir} already holds {what}; pass --overwrite to replace it or pick another --output")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _failed_before_training(run_dir: Path) -> bool:
    only_setup = {path.name for path in run_dir.iterdir()} <= {RUN_FILE, CONFIG_FILE}
    return only_setup and (read_status(run_dir) or {}).get("status") == "failed"


def reopen_run_dir(run_dir: Path) -> Path:
    """A run folder to resume: it must hold a run's config and must not be complete."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if status is None or not (run_dir / CONFIG_FILE).is_file():
        raise RunError(f"{run_dir}: no run to resume (no {RUN_FILE} and {CONFIG_FILE})")
    if status.get("status") == "complete":
        raise RunError(f"{run_dir}: this run is already complete; nothing to resume")
    return run_dir


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The newest Trainer checkpoint that was fully written (trainer_state.json is written last)."""
    folders = (Path(run_dir) / CHECKPOINT_DIR).glob("checkpoint-*")
    numbered = sorted((int(f.name.split("-")[1]), f) for f in folders if f.name.split("-")[1].isdigit())
    for _, folder in reversed(numbered):
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("skipping incomplete checkpoint %s", folder)
            continue
        return folder
    return None


def require_finished(model_dir: Path) -> None:
    """Refuse a run folder whose training did not complete (a plain model folder is fine)."""
    status = read_status(model_dir)
    if status is not None and status.get("status") != "complete":
        raise RunError(
            f"{model_dir}: training did not complete (status: {status.get('status')}); "
            "its model may be missing or stale. Finish or rerun the training first."
        )


def require_model_folder(path: Path) -> None:
    """Refuse anything but a finished model folder with safetensors (or exported ONNX) weights, saying why."""
    require_finished(path)
    if not (path / "config.json").is_file():
        raise RunError(f"{path}: not a model folder (no config.json)")
    weights = [*path.glob("*.safetensors"), *path.glob("model.safetensors.index.json"), *path.glob(ONNX_FILE)]
    if not weights:
        raise RunError(f"{path}: no safetensors or ONNX weights (audioclf loads no other format)")


def save_model(model: Any, extractor: Any, run_dir: Path) -> None:
    """Save model (safetensors) and feature extractor into a temporary folder, then move each file
    into place with an atomic rename."""
    run_dir = Path(run_dir)
    staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=".model-"))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        extractor.save_pretrained(staging)
        for item in staging.iterdir():
            os.replace(item, run_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_max_duration(model_dir: Path) -> float | None:
    """The max_duration a run trained with, so inference crops clips the same way (None: no run config)."""
    import yaml

    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    return (yaml.safe_load(path.read_text()) or {}).get("max_duration")


def push_run_to_hub(run_dir: Path, repo_id: str | None = None) -> str | None:
    """Upload a finished run folder (checkpoints excluded). Offline or logged out, say so and return None:
    the local run is already complete."""
    from huggingface_hub import HfApi

    repo_id = repo_id or Path(run_dir).resolve().name
    try:
        api = HfApi()
        repo_id = api.create_repo(repo_id, exist_ok=True).repo_id  # a bare name gets the user's namespace
        api.upload_folder(folder_path=str(run_dir), repo_id=repo_id,
                          ignore_patterns=[f"{CHECKPOINT_DIR}/*", ".*"])
    except Exception as err:  # offline, not logged in, no permission: the local save stands
        log.warning("push to the Hub failed (%s: %s); the run is saved locally in %s",
                    type(err).__name__, str(err).splitlines()[0] if str(err) else "", run_dir)
        return None
    log.info("pushed %s to the Hub as %s", run_dir, repo_id)
    return repo_id

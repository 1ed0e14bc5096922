"""`--report-to`: transformers' own tracker callbacks (TensorBoard, MLflow, Weights & Biases), given the
fine-tuning epochs by Trainer and, through `Trackers.log`, the probe stage and the test metrics, so that one
run shows in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioclf import runs
from audioclf.config import ConfigError, report_targets

LOG_DIR = "logs"  # TensorBoard's event files, under the run folder


class Trackers:
    """The trackers `--report-to` names; no-ops for `none`."""

    def __init__(self, report_to: str, run_dir: Path) -> None:
        self.callbacks = [_callback(name, run_dir) for name in report_targets(report_to)]
        self.run_dir = run_dir
        self._args: Any = None

    def log(self, metrics: dict[str, Any], step: int = 0) -> None:
        """Send numeric `metrics` at `step` to every tracker (rank 0 only)."""
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for callback in self.callbacks:
            callback.on_log(self._training_args(), *_state_and_control(step), logs=numbers)

    def close(self) -> None:
        for callback in self.callbacks:
            callback.on_train_end(self._training_args(), *_state_and_control(0))

    def _training_args(self) -> Any:
        """The arguments the callbacks read (their output folder), as Trainer would pass them."""
        from transformers import TrainingArguments

        if self._args is None:
            self._args = TrainingArguments(output_dir=str(self.run_dir / runs.CHECKPOINT_DIR), report_to="none",
                                           use_cpu=True)
        return self._args


def _callback(name: str, run_dir: Path) -> Any:
    from transformers.integrations import get_reporting_integration_callbacks

    try:
        callback = get_reporting_integration_callbacks([name])[0]()
    except (ImportError, RuntimeError) as err:
        raise ConfigError(f"--report-to {name} needs its package ({err}): pip install {name}") from None
    if name == "tensorboard":
        callback.logging_dir = str(run_dir / LOG_DIR)
    return callback


def _state_and_control(step: int) -> tuple[Any, Any]:
    from transformers import TrainerControl, TrainerState

    state = TrainerState(global_step=step)
    state.is_world_process_zero = runs.is_main_process()
    return state, TrainerControl()

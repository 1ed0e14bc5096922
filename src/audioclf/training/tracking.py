"""`--report-to`: transformers' own tracker callbacks (TensorBoard, MLflow, Weights & Biases), given the
fine-tuning epochs by Trainer and, through `Trackers.log`, the probe stage and the test metrics, so that one
run shows in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioclf import runs
from audioclf.config import ConfigError, TrainConfig, report_targets

LOG_DIR = "logs"  # TensorBoard's event files, under the run folder


class Trackers:
    """The trackers `--report-to` names (none on ranks other than 0, where Trainer's copies stay silent too)."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        names = report_targets(config.report_to) if runs.is_main_process() else []
        self.callbacks = [_callback(name, run_dir) for name in names]
        self.config = config
        self.run_dir = run_dir
        self._args: Any = None

    def log(self, metrics: dict[str, Any], step: int = 0) -> None:
        """Send the numbers among `metrics` to every tracker, at `step`."""
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for callback in self.callbacks:
            callback.on_log(self._training_args(), *_state_and_control(step), logs=numbers)

    def close(self) -> None:
        """End the trackers' run (Trainer's end of training is not the run's end: the test metrics follow it)."""
        for callback in self.callbacks:
            callback.close_run(self._training_args(), *_state_and_control(0))

    def _training_args(self) -> Any:
        """Arguments like those Trainer passes, for trackers that record them (MLflow, W&B) when the probe's
        figures reach them first. Never asked for its device, so it sets up no accelerator state."""
        from transformers import TrainingArguments

        if self._args is None:
            config = self.config
            self._args = TrainingArguments(
                output_dir=str(self.run_dir / runs.CHECKPOINT_DIR), run_name=self.run_dir.name, report_to="none",
                learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size,
                gradient_accumulation_steps=config.gradient_accumulation_steps, num_train_epochs=config.epochs,
                warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay, seed=config.seed)
        return self._args


def _callback(name: str, run_dir: Path) -> Any:
    """transformers' callback for tracker `name`, left open at the end of training until `close_run`."""
    from transformers.integrations import get_reporting_integration_callbacks

    base = get_reporting_integration_callbacks([name])[0]

    class RunTracker(base):  # type: ignore[misc, valid-type]
        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            """Trainer's end of fine-tuning: the run goes on (the test metrics come after it)."""

        def close_run(self, *args: Any, **kwargs: Any) -> None:
            base.on_train_end(self, *args, **kwargs)

    try:
        callback = RunTracker()
    except (ImportError, RuntimeError) as err:
        raise ConfigError(f"--report-to {name} needs its package ({err}): pip install {name}") from None
    if name == "tensorboard":
        callback.logging_dir = str(run_dir / LOG_DIR)
    return callback


def _state_and_control(step: int) -> tuple[Any, Any]:
    from transformers import TrainerControl, TrainerState

    return TrainerState(global_step=step), TrainerControl()

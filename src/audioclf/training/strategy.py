"""Which strategy trains the model: probe, finetune, or auto (probe, then fine-tune when the data and the
time budget allow, keeping whichever scores better on validation), and why."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioclf import runs
from audioclf.config import TrainConfig
from audioclf.presets import preset_path
from audioclf.training.dataset import DecodedClips
from audioclf.training.finetune import fine_tune
from audioclf.training.probe import Probe, ProbeSettings, supports_probe
from audioclf.training.tracking import Trackers

log = logging.getLogger("audioclf")

# auto fine-tunes only with at least this many training clips per label: below it, updating a whole
# pretrained encoder mostly memorises the few clips, and the probe is the better trade.
AUTO_MIN_CLIPS_PER_LABEL = 20
# A training step (forward and backward) costs about three forward passes: how auto turns the probe's
# measured encoder pass into an estimate of one fine-tuning epoch.
STEP_COST_IN_FORWARD_PASSES = 3.0
PROBE_FOLDER = "probe"  # under the checkpoints folder: the probe's model, restored if it wins


@dataclass
class Outcome:
    """The model to save, the strategy that produced it, and why it was kept."""

    model: Any
    strategy: str
    seconds: float
    validation_accuracy: float | None
    reason: str
    tried: dict[str, float | None] = field(default_factory=dict)  # validation accuracy of each strategy tried


def run_strategy(config: TrainConfig, run_dir: Path, resume: bool, model: Any, extractor: Any,
                 train: DecodedClips, validation: DecodedClips, trackers: Trackers) -> Outcome:
    """Train `model` as `config.strategy` says; the probe's figures and fine-tuning's epochs go to `trackers`."""
    start = time.monotonic()
    deadline = start + config.time_budget * 60 if config.time_budget else None
    weights = class_weights(train, model.config.num_labels) if config.class_weights else None
    if config.strategy == "probe":
        probe = Probe(model, extractor, train, validation, probe_settings(config, weights))
        score = _fit_logged(probe, model, trackers).get("validation_accuracy")
        probe.fit(model, with_validation=True)  # the kept head learns from every clip outside the test split
        return Outcome(model, "probe", time.monotonic() - start, score, "--strategy probe", {"probe": score})
    reason = _finetune_only_reason(config, model)
    if reason:
        log.info("%s", reason)
        if config.probe_first and not resume:  # LP-FT; on resume the checkpoint holds the head already
            _fit_logged(Probe(model, extractor, train, validation, probe_settings(config, weights)), model, trackers)
        probe_s = time.monotonic() - start
        tuned = fine_tune(config, run_dir, resume, model, extractor, train, validation, deadline, weights,
                          trained_head=config.probe_first, callbacks=trackers.callbacks)
        # the Trainer's own train_runtime, as the training benchmark compares it with the guide's
        return Outcome(tuned.model, "finetune", probe_s + tuned.seconds, tuned.validation_accuracy, reason,
                       {"finetune": tuned.validation_accuracy})
    return _auto(config, run_dir, resume, model, extractor, train, validation, deadline, weights, start, trackers)


def _fit_logged(probe: Probe, model: Any, trackers: Trackers) -> dict[str, float]:
    """The probe's head fitted on the training clips, its figures sent to the trackers as `probe_*`."""
    figures = probe.fit(model)
    trackers.log({f"probe_{name}": value for name, value in figures.items()})
    return figures


def _finetune_only_reason(config: TrainConfig, model: Any) -> str | None:
    if config.strategy == "finetune":
        return "--strategy finetune"
    if preset_path(config.model) is not None:
        return "auto: a model trained from scratch has no pretrained encoder worth probing, so fine-tuning only"
    if not supports_probe(model):
        return f"auto: {type(model).__name__} has no weighted-layer-sum head to probe, so fine-tuning only"
    return None


def _auto(config: TrainConfig, run_dir: Path, resume: bool, model: Any, extractor: Any, train: DecodedClips,
          validation: DecodedClips, deadline: float | None, weights: Any, start: float, trackers: Trackers) -> Outcome:
    probe = Probe(model, extractor, train, validation, probe_settings(config, weights))
    probe_score = _fit_logged(probe, model, trackers).get("validation_accuracy")
    skip = finetune_skip_reason(config, len(train.labels), model.config.num_labels, probe, probe_score, deadline)
    if skip:
        probe.fit(model, with_validation=True)
        log.info("auto: keeping the probe: %s", skip)
        return Outcome(model, "probe", time.monotonic() - start, probe_score, skip, {"probe": probe_score})
    probe_dir = run_dir / runs.CHECKPOINT_DIR / PROBE_FOLDER
    if runs.is_main_process():
        model.save_pretrained(probe_dir)
    log.info("auto: the probe scored %.4f on validation; fine-tuning from its head (one epoch ~%.1f min)",
             probe_score, estimated_epoch_s(probe, len(train.labels)) / 60)
    tuned = fine_tune(config, run_dir, resume, model, extractor, train, validation, deadline, weights,
                      trained_head=True, callbacks=trackers.callbacks)
    seconds = time.monotonic() - start
    tried = {"probe": probe_score, "finetune": tuned.validation_accuracy}
    if tuned.validation_accuracy is not None and tuned.validation_accuracy > probe_score:
        reason = f"fine-tuning scored {tuned.validation_accuracy:.4f} on validation, the probe {probe_score:.4f}"
        log.info("auto: keeping the fine-tuned model: %s", reason)
        return Outcome(tuned.model, "finetune", seconds, tuned.validation_accuracy, reason, tried)
    reason = f"the probe scored {probe_score:.4f} on validation, fine-tuning {tuned.validation_accuracy:.4f}"
    log.info("auto: keeping the probe: %s", reason)
    kept = type(model).from_pretrained(probe_dir, dtype=model.dtype).to(model.device) if runs.is_main_process() \
        else model
    probe.fit(kept, with_validation=True)
    return Outcome(kept, "probe", seconds, probe_score, reason, tried)


def finetune_skip_reason(config: TrainConfig, num_train: int, num_labels: int, probe: Probe,
                         probe_score: float | None, deadline: float | None) -> str | None:
    """Why auto should keep the probe without fine-tuning, or None when fine-tuning is worth a try."""
    if probe_score is None:
        return "no validation clips (--validation-size 0), so nothing could show fine-tuning to be better"
    if num_train < AUTO_MIN_CLIPS_PER_LABEL * num_labels:
        return (f"{num_train} training clips for {num_labels} labels is under {AUTO_MIN_CLIPS_PER_LABEL} per label, "
                "too few to fine-tune a whole encoder")
    if probe_score >= 1.0:
        return "the probe is already right on every validation clip"
    if deadline is not None:
        epoch_s, left_s = estimated_epoch_s(probe, num_train), deadline - time.monotonic()
        if epoch_s > left_s:
            return (f"one fine-tuning epoch would take about {epoch_s / 60:.1f} min and only {left_s / 60:.1f} min "
                    f"of --time-budget {config.time_budget:g} are left")
    return None


def estimated_epoch_s(probe: Probe, num_train: int) -> float:
    return probe.seconds_per_clip * STEP_COST_IN_FORWARD_PASSES * num_train


def probe_settings(config: TrainConfig, weights: Any) -> ProbeSettings:
    return ProbeSettings(config.probe_epochs, config.probe_learning_rate, config.weight_decay, config.batch_size,
                         config.seed, weights, config.precision)


def class_weights(train: DecodedClips, num_labels: int) -> Any:
    """Per-label loss weights, inverse to each label's share of the training clips (mean weight 1)."""
    import torch

    counts = torch.bincount(torch.tensor(train.labels), minlength=num_labels).float()
    return torch.where(counts > 0, len(train.labels) / (num_labels * counts.clamp_min(1)), torch.zeros(()))

"""Training: data -> decoded clips -> transformers Trainer -> a finished, evaluated run folder."""

from __future__ import annotations

import logging
import os
from collections import Counter
import time
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

from audioclf import runs
from audioclf.audio import AudioError
from audioclf.config import TrainConfig
from audioclf.evaluation import accuracy, result_warnings, score_clips
from audioclf.features import load_feature_extractor, pads_to_fixed_length, sampling_rate
from audioclf.inference import Classifier
from audioclf.models import (
    freeze_feature_encoder,
    label_maps,
    load_for_training,
    shorten_whisper_context,
    whisper_context_seconds,
)
from audioclf.sources import LoadedData, load_data, split_records
from audioclf.sources.records import DataError
from audioclf.training.augment import Augmenter
from audioclf.training.cache import default_cache_dir
from audioclf.training.dataset import AudioCollator, ClipDataset, DecodedClips, decode_records
from audioclf.training.interrupt import StopOnInterrupt
from audioclf.training.probe import train_probe

log = logging.getLogger("audioclf")

PROBE_LR = 1e-3  # the probe trains only a freshly initialised head: the encoder's 3e-5 would barely move it
# Top-level modules that AutoModelForAudioClassification adds on top of a pretrained encoder.
HEAD_MODULES = {"projector", "classifier", "layer_weights"}


class TooManyBadClips(DataError):
    """More clips than --max-bad-fraction allows could not be used."""


def load_training_data(config: TrainConfig) -> LoadedData:
    return load_data(
        config.data, config.data_config, config.data_split, config.audio_column, config.label_column, config.group_by
    )


def check_bad_clips(bad: list[AudioError], total: int, max_fraction: float) -> None:
    """Report each unusable clip; stop before training when there are too many."""
    for err in bad:
        log.warning("skipping %s", err)
    if total and len(bad) / total > max_fraction:
        listing = "\n  ".join(str(err) for err in bad[:50])
        more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
        raise TooManyBadClips(
            f"{len(bad)} of {total} clips ({len(bad) / total:.1%}) cannot be used, more than "
            f"--max-bad-fraction {max_fraction}:\n  {listing}{more}"
        )


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run one training job end to end and return the finished run folder. `resume` continues the run
    in `config.output` from its newest complete checkpoint (model, optimizer, scheduler and RNG state)."""
    config.validate()
    _set_threads(config.threads)
    if not runs.is_main_process():  # under torchrun: train the shard, leave the run folder to rank 0
        log.setLevel(logging.WARNING)
        _train_in(Path(config.output), config, resume)
        return Path(config.output)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if resume:
        run_dir = runs.reopen_run_dir(Path(config.output))
        runs.write_status(run_dir, "running", resumed=now)
    else:
        run_dir = runs.prepare_run_dir(Path(config.output), config.overwrite)
        runs.write_status(run_dir, "running", started=now)
        runs.atomic_write_text(run_dir / runs.CONFIG_FILE, config.to_yaml())
    try:
        summary = _train_in(run_dir, config, resume)
    except (KeyboardInterrupt, runs.TrainingInterrupted) as err:
        runs.write_status(run_dir, "interrupted", error=str(err) or "interrupted")
        raise
    except BaseException as err:
        runs.write_status(run_dir, "failed", error=f"{type(err).__name__}: {err}")
        raise
    runs.write_status(run_dir, "complete", **summary)
    if config.push_to_hub:  # after the local run is complete: a failed upload never costs it
        runs.push_run_to_hub(run_dir, config.hub_model_id)
    return run_dir


def _train_in(run_dir: Path, config: TrainConfig, resume: bool) -> dict[str, Any]:
    data = load_training_data(config)
    train_records, test_records = split_records(
        data.records, config.test_size, config.seed, group_by=bool(config.group_by), stratify=config.stratify
    )
    log.info("%s: %d training clips, %d evaluation clips, %d labels",
             data.description, len(train_records), len(test_records), len(data.label_names))
    extractor = load_feature_extractor(config.model, config.trust_remote_code)
    label2id, _ = label_maps(data.label_names)
    rate = sampling_rate(extractor)
    cache = (Path(config.cache_dir) if config.cache_dir else default_cache_dir()) if config.cache_audio else None
    train_clips = decode_records(train_records, label2id, rate, config.max_duration, "decoding train", cache)
    test_clips = decode_records(test_records, label2id, rate, config.max_duration, "decoding eval", cache)
    bad = train_clips.bad + test_clips.bad
    check_bad_clips(bad, len(data.records), config.max_bad_fraction)

    model = _prepare_model(config, data.label_names, extractor, train_clips, test_clips)
    runtime = 0.0
    if config.strategy == "probe" or (config.probe_first and not resume):
        model, runtime = _fit_probe(config, model, extractor, train_clips)
    if config.strategy == "finetune":
        model, seconds = _fine_tune(config, run_dir, resume, model, extractor, train_clips, test_clips)
        runtime += seconds
    if not runs.is_main_process():
        return {}
    runs.save_model(model, extractor, run_dir)

    classifier = Classifier(model, extractor, config.max_duration, name=run_dir.name)
    metrics = score_clips(classifier, test_clips, len(bad), run_dir)
    per_label = Counter(train_clips.labels)
    warnings = result_warnings(metrics, {name: per_label[i] for name, i in label2id.items()})
    for warning in warnings:
        log.warning("WARNING: %s", warning)
    card = _model_card(config, data, metrics, len(train_clips.waves))
    runs.atomic_write_text(run_dir / runs.CARD_FILE, card)
    return {"num_train_clips": len(train_clips.waves), "num_eval_clips": len(test_clips.waves),
            "num_skipped": len(bad), "skipped": [str(e) for e in bad], "accuracy": metrics["accuracy"],
            "strategy": config.strategy, "train_runtime_s": round(runtime, 2), "warnings": warnings}


def _fine_tune(config: TrainConfig, run_dir: Path, resume: bool, model: Any, extractor: Any, train: DecodedClips,
               test: DecodedClips) -> tuple[Any, float]:
    """transformers Trainer over the whole model; returns the best model and the training seconds."""
    trainer = _build_trainer(config, run_dir, model, extractor, train, test)
    checkpoint = runs.newest_checkpoint(run_dir) if resume else None
    if resume:
        log.info("resuming from %s", checkpoint.name if checkpoint else "the start (no complete checkpoint yet)")
    with StopOnInterrupt.installed(trainer) as stopper:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None,
                               ignore_keys_for_eval=["hidden_states", "attentions"])  # a layer-sum head returns them
    if stopper.stopped:
        raise runs.TrainingInterrupted(run_dir, trainer.state.global_step)
    return trainer.model, result.metrics["train_runtime"]


def _fit_probe(config: TrainConfig, model: Any, extractor: Any, train: DecodedClips) -> tuple[Any, float]:
    """The frozen encoder's cached states and the model's own head trained on them (seconds, not minutes)."""
    head_rate = config.head_learning_rate if config.strategy == "probe" else None  # probe_first: head rate is FT's
    figures = train_probe(model, extractor, train, config.probe_epochs, head_rate or PROBE_LR, config.weight_decay,
                          config.batch_size, config.seed)
    return model, figures["encode_s"] + figures["head_s"]


def _prepare_model(
    config: TrainConfig, label_names: list[str], extractor: Any, train: DecodedClips, test: DecodedClips
) -> Any:
    model = load_for_training(config.model, label_names, config.trust_remote_code, config.seed,
                              weighted_layer_sum=config.strategy == "probe" or config.probe_first)
    if config.whisper_short_context:
        longest = max(train.longest_seconds(sampling_rate(extractor)), test.longest_seconds(sampling_rate(extractor)))
        shorten_whisper_context(model, extractor, whisper_context_seconds(longest, config.max_duration))
    if config.freeze_feature_encoder and freeze_feature_encoder(model):
        log.info("feature encoder frozen")
    return model


def _build_trainer(
    config: TrainConfig, run_dir: Path, model: Any, extractor: Any, train: DecodedClips, test: DecodedClips
) -> Any:
    input_name = extractor.model_input_names[0]
    has_eval = len(test.waves) > 0
    args = TrainingArguments(
        output_dir=str(run_dir / runs.CHECKPOINT_DIR),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size or config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.epochs,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=has_eval,
        metric_for_best_model="accuracy" if has_eval else None,
        save_total_limit=2,
        seed=config.seed,
        dataloader_num_workers=config.num_workers,
        train_sampling_strategy="random" if pads_to_fixed_length(extractor) else "group_by_length",
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=False,  # transformers ties it to its log level, which the CLI lowers
        dataloader_pin_memory=_cuda_available(),
        use_cpu=_cpu_processes_launched(),
    )
    augment = Augmenter(sampling_rate(extractor), config.augment_speed, config.noise_snr_range(), config.seed)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ClipDataset(train, input_name, augment if augment.active else None),
        eval_dataset=ClipDataset(test, input_name) if has_eval else None,
        data_collator=AudioCollator(extractor, input_name),
        processing_class=extractor,
        compute_metrics=accuracy,
        optimizer_cls_and_kwargs=_optimizer(model, config),
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(EpochLineProgress())
    return trainer


def _optimizer(model: Any, config: TrainConfig) -> tuple[type, dict[str, Any]]:
    """AdamW with two parameter groups: the pretrained encoder at learning_rate, the new head
    (projector/classifier/layer weights) at head_learning_rate. Trainer's scheduler scales both."""
    import torch

    head_rate = config.head_learning_rate or config.learning_rate
    groups: dict[bool, list[Any]] = {True: [], False: []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups[name.split(".")[0] in HEAD_MODULES].append(param)
    params = [
        {"params": groups[False], "lr": config.learning_rate, "weight_decay": config.weight_decay},
        {"params": groups[True], "lr": head_rate, "weight_decay": config.weight_decay},
    ]
    return torch.optim.AdamW, {"params": [g for g in params if g["params"]], "lr": config.learning_rate}


def _epoch_line(logs: dict[str, Any], epoch: float | None, total: float) -> str | None:
    if "eval_loss" not in logs:
        return None
    parts = [f"epoch {epoch:.0f}/{total:g}" if epoch is not None else "eval"]
    parts.append(f"eval_loss {logs['eval_loss']:.4f}")
    if "eval_accuracy" in logs:
        parts.append(f"accuracy {logs['eval_accuracy']:.4f}")
    return "  ".join(parts)


class EpochLineProgress(ProgressCallback):
    """Trainer's progress bars, with one readable line per epoch instead of raw log dicts."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        line = _epoch_line(logs or {}, state.epoch, args.num_train_epochs)
        if line and state.is_world_process_zero:
            (self.training_bar.write if self.training_bar is not None else print)(line)


def _model_card(config: TrainConfig, data: LoadedData, metrics: dict[str, Any], num_train: int) -> str:
    from audioclf.evaluation import model_card

    hyper = {k: getattr(config, k) for k in (
        "learning_rate", "batch_size", "gradient_accumulation_steps", "epochs", "warmup_ratio",
        "weight_decay", "max_duration", "freeze_feature_encoder", "seed")}
    return model_card(config.model, data.description, data.label_names, hyper, metrics, num_train)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _cpu_processes_launched() -> bool:
    """Under torchrun without CUDA, Trainer runs DDP over gloo only when told to use the CPU."""
    return not _cuda_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)

"""Training: data -> decoded clips -> transformers Trainer -> a finished, evaluated run folder."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from audioclf import runs
from audioclf.audio import AudioError
from audioclf.config import ConfigError, TrainConfig, default_cache_dir
from audioclf.evaluation import result_warnings, score_clips
from audioclf.features import load_feature_extractor, sampling_rate, set_whisper_padding
from audioclf.inference import Classifier
from audioclf.models import (
    check_precision_here,
    freeze_feature_encoder,
    freeze_first_layers,
    label_maps,
    load_for_training,
    load_model_config,
    min_input_samples,
    resolve_device,
    shorten_whisper_context,
    whisper_context_seconds,
)
from audioclf.sources import LoadedData, hold_out_validation, load_data, split_records
from audioclf.sources.records import DataError
from audioclf.training.augment import enable_spec_augment, enable_vtlp
from audioclf.training.dataset import DecodedClips, decode_records
from audioclf.training.strategy import Outcome, run_strategy
from audioclf.training.tracking import Trackers

log = logging.getLogger("audioclf")

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
        runs.write_status(run_dir, "running", resumed=now, runtime=config.runtime_options())
    else:
        run_dir = runs.prepare_run_dir(Path(config.output), config.overwrite)
        runs.write_status(run_dir, "running", started=now, runtime=config.runtime_options())
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
    grouped = bool(config.group_by)
    train_records, test_records = split_records(data.records, config.test_size, config.seed, grouped, config.stratify)
    train_records, validation_records = hold_out_validation(
        train_records, config.validation_size, config.seed, grouped, config.stratify)
    log.info("%s: %d training, %d validation and %d test clips, %d labels", data.description, len(train_records),
             len(validation_records), len(test_records), len(data.label_names))
    extractor = load_feature_extractor(config.model, config.trust_remote_code)
    label2id, _ = label_maps(data.label_names)
    rate = sampling_rate(extractor)
    cache = (Path(config.cache_dir) if config.cache_dir else default_cache_dir()) if config.cache_audio else None
    min_samples = min_input_samples(load_model_config(config.model, config.trust_remote_code))
    train, validation, test = (decode_records(records, label2id, rate, config.max_duration, f"decoding {name}", cache,
                                              min_samples)
                               for name, records in (("train", train_records), ("validation", validation_records),
                                                     ("test", test_records)))
    bad = train.bad + validation.bad + test.bad
    check_bad_clips(bad, len(data.records), config.max_bad_fraction)

    model = _prepare_model(config, data.label_names, extractor, max(
        clips.longest_seconds(rate) for clips in (train, validation, test))).to(_training_device(config.device))
    check_precision_here(model, config.precision)
    trackers = Trackers(config, run_dir)
    try:
        outcome = run_strategy(config, run_dir, resume, model, extractor, train, validation, trackers)
        if not runs.is_main_process():
            return {}
        runs.save_model(outcome.model, extractor, run_dir)
        classifier = Classifier(outcome.model, extractor, config.max_duration, name=run_dir.name)
        metrics = score_clips(classifier, test, len(bad), run_dir)
        trackers.log({f"test_{name}": value for name, value in metrics.items()})
    finally:
        trackers.close()
    per_label = Counter(train.labels)
    warnings = result_warnings(metrics, {name: per_label[i] for name, i in label2id.items()},
                               _validation_support(outcome, validation, data.label_names))
    for warning in warnings:
        log.warning("WARNING: %s", warning)
    card = _model_card(config, data, metrics, len(train.waves), outcome)
    runs.atomic_write_text(run_dir / runs.CARD_FILE, card)
    return {"num_train_clips": len(train.waves), "num_validation_clips": len(validation.waves),
            "num_eval_clips": len(test.waves), "num_skipped": len(bad), "skipped": [str(e) for e in bad],
            "accuracy": metrics["accuracy"], "validation_accuracy": outcome.validation_accuracy,
            "strategy": config.strategy, "strategy_used": outcome.strategy, "strategy_reason": outcome.reason,
            "validation_by_strategy": outcome.tried,
            "train_runtime_s": round(outcome.seconds, 2), "warnings": warnings}


def _validation_support(outcome: Outcome, validation: DecodedClips,
                        label_names: list[str]) -> tuple[float, dict[str, int]] | None:
    if outcome.validation_accuracy is None:
        return None
    counts = Counter(validation.labels)
    return outcome.validation_accuracy, {name: counts[i] for i, name in enumerate(label_names)}


def _prepare_model(config: TrainConfig, label_names: list[str], extractor: Any, longest_s: float) -> Any:
    model = load_for_training(config.model, label_names, config.trust_remote_code, config.seed,
                              weighted_layer_sum=config.strategy in ("probe", "auto") or config.probe_first)
    if config.whisper_short_context:
        shorten_whisper_context(model, extractor, whisper_context_seconds(longest_s, config.max_duration))
    if not set_whisper_padding(extractor, config.whisper_padding) and config.whisper_padding != "right":
        log.warning("--whisper-padding %s ignored: %s is not a Whisper model", config.whisper_padding, config.model)
    if config.freeze_feature_encoder and freeze_feature_encoder(model):
        log.info("feature encoder frozen")
    if config.freeze_layers:
        log.info("frozen: the encoder's first %d layers and all before them (%d weights)", config.freeze_layers,
                 freeze_first_layers(model, config.freeze_layers))
    if config.spec_augment is not None:
        log.info("SpecAugment %.2f through the %s", config.spec_augment,
                 enable_spec_augment(model, config.spec_augment))
    if config.augment_vtlp and not enable_vtlp(model, config.augment_vtlp, sampling_rate(extractor)):
        log.warning("--augment-vtlp ignored: %s takes raw audio, not a mel spectrogram (Whisper and AST do)",
                    config.model)
    return model


def _model_card(config: TrainConfig, data: LoadedData, metrics: dict[str, Any], num_train: int,
                outcome: Outcome) -> str:
    from audioclf.evaluation import model_card

    hyper = {k: getattr(config, k) for k in (
        "strategy", "learning_rate", "batch_size", "gradient_accumulation_steps", "epochs", "warmup_ratio",
        "weight_decay", "max_duration", "freeze_feature_encoder", "freeze_layers", "validation_size", "seed")}
    hyper["model kept"] = f"{outcome.strategy} ({outcome.reason})"
    if outcome.validation_accuracy is not None:
        hyper["validation accuracy"] = f"{outcome.validation_accuracy:.4f}"
    return model_card(config.model, data.description, data.label_names, hyper, metrics, num_train)


def _training_device(spec: str) -> Any:
    """The device `--device` names; under torchrun on GPUs, each process's own (its LOCAL_RANK).

    One process trains on one GPU, the first one it sees: transformers' Trainer takes that one (and spreads a
    process over all it sees with DataParallel, whose replicas the forwards replaced here do not follow). So a
    single process refuses several visible GPUs and a GPU other than the first, saying what to run instead."""
    import os

    import torch

    device = resolve_device(spec)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if device.type != "cuda":
        return device
    if distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    elif (device.index or 0) != 0 or torch.cuda.device_count() > 1:
        raise ConfigError(f"--device {spec}: {torch.cuda.device_count()} GPUs are visible, and training runs one "
                          "process on the first one it sees: pick one with CUDA_VISIBLE_DEVICES=N and --device "
                          f"cuda, or train on all of them with torchrun --nproc_per_node "
                          f"{torch.cuda.device_count()} (DDP)")
    torch.cuda.set_device(device)
    log.info("device: %s (%s)", device, torch.cuda.get_device_name(device))
    return device


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)

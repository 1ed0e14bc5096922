"""The `finetune` strategy: the whole model trained by transformers Trainer, the best epoch picked on validation."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback, TrainingArguments

from audioclf import runs
from audioclf.config import TrainConfig, parse_db_range
from audioclf.evaluation import accuracy
from audioclf.features import is_whisper, pads_to_fixed_length, sampling_rate
from audioclf.inference.exact_batching import encoder_forward
from audioclf.models import HEAD_MODULES
from audioclf.training.augment import Augmenter
from audioclf.training.averaging import EpochAverage, StartMix
from audioclf.training.cpu_forwards import faster_cpu_forwards
from audioclf.training.dataset import CLIP_LENGTHS, AudioCollator, ClipDataset, DecodedClips
from audioclf.training.encoder_cache import (EncodedClipDataset, EncodedCollator, can_cache_encoder_outputs,
                                             encoder_outputs_as_input, frozen_encoder_outputs)
from audioclf.training.interrupt import StopOnInterrupt
from audioclf.training.sam import sharpness_aware_backward

log = logging.getLogger("audioclf")

IGNORED_OUTPUTS = ["hidden_states", "attentions"]  # a layer-sum head returns them; evaluation needs the logits only


@dataclass
class FineTuned:
    model: Any
    seconds: float
    validation_accuracy: float | None  # of the kept epoch; None without validation clips


def fine_tune(config: TrainConfig, run_dir: Path, resume: bool, model: Any, extractor: Any, train: DecodedClips,
              validation: DecodedClips, deadline: float | None = None, class_weights: Any = None,
              trained_head: bool = False, callbacks: Sequence[Any] = ()) -> FineTuned:
    """Trainer over the whole model. With validation clips, every epoch is scored on them and the best is
    kept; without, the last; with `config.average_weights`, the mean of every epoch's (and, with a
    `trained_head` to start from, the start's) weights, scored on validation; with `config.wise_ft` and a
    `trained_head`, what was kept mixed with the start's weights. Past `deadline`
    (time.monotonic()), training stops after the current step. `callbacks`: more Trainer callbacks (trackers)."""
    augment = Augmenter(sampling_rate(extractor), max_speed_change=config.augment_speed,
                        noise_snr=config.noise_snr_range(), seed=config.seed,
                        gain_db=parse_db_range(config.augment_gain, "augment_gain"), max_shift_s=config.augment_shift,
                        crop_s=config.augment_crop, trim_db=parse_db_range(config.augment_trim, "augment_trim"),
                        cut_end=config.augment_cut_end)
    if config.augment_crop and is_whisper(extractor):
        log.warning("--augment-crop with Whisper: its head averages over the whole context, padding included, so "
                    "crops train on another mix of speech and padding than whole clips are predicted on; it "
                    "lowered accuracy in this project's benchmark (README, Augmentation)")
    with _training_data(model, extractor, config, train, validation, augment) as (data, encode_s):
        trainer = _build_trainer(config, run_dir, model, extractor, data, class_weights)
        trainer.add_callback(TimeBudget(deadline))
        checkpoint = runs.newest_checkpoint(run_dir) if resume else None
        if resume:
            log.info("resuming from %s", checkpoint.name if checkpoint else "the start (no complete checkpoint yet)")
        average = EpochAverage(trained_head, checkpoint) if config.average_weights else None
        mix = _start_mix(config, run_dir, checkpoint is not None, trained_head)
        for callback in (average, mix, *callbacks):
            if callback is not None:
                trainer.add_callback(callback)
        with StopOnInterrupt.installed(trainer) as stopper, faster_cpu_forwards(trainer.model):
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None,
                                   ignore_keys_for_eval=IGNORED_OUTPUTS)
        if stopper.stopped:
            raise runs.TrainingInterrupted(run_dir, trainer.state.global_step)
        best = trainer.state.best_metric if validation.labels else None
        if average is not None or mix is not None:
            best = _keep_mixed(trainer, average, mix, data)
    return FineTuned(trainer.model, result.metrics["train_runtime"] + encode_s, best)


def _start_mix(config: TrainConfig, run_dir: Path, resuming: bool, trained_head: bool) -> StartMix | None:
    if config.wise_ft is None:
        return None
    if not trained_head:
        log.warning("--wise-ft ignored: fine-tuning starts from an untrained head, which is nothing to mix with")
        return None
    return StartMix(config.wise_ft, run_dir / runs.CHECKPOINT_DIR, resuming)


def _keep_mixed(trainer: Any, average: EpochAverage | None, mix: StartMix | None, data: TrainingData
                ) -> float | None:
    """Put the averaged weights, then their mix with the start, in the trained model; return their validation
    accuracy (None without)."""
    if average is not None:
        average.apply_to(trainer.model)
        what = f"the mean of {average.count} weight snapshots"
    else:
        what = "the best epoch" if data.validation is not None else "the last epoch"
    if mix is not None:
        mix.apply_to(trainer.model)
        what += f", as {mix.share:g} x itself + {1 - mix.share:g} x the start (--wise-ft)"
    if data.validation is None:
        log.info("kept %s", what)
        return None
    score = trainer.predict(data.validation, ignore_keys=IGNORED_OUTPUTS, metric_key_prefix="eval").metrics
    log.info("kept %s: validation accuracy %.4f", what, score["eval_accuracy"])
    return score["eval_accuracy"]


@dataclass
class TrainingData:
    train: Any
    validation: Any | None
    collator: Any


@contextmanager
def _training_data(model: Any, extractor: Any, config: TrainConfig, train: DecodedClips, validation: DecodedClips,
                   augment: Augmenter) -> Iterator[tuple[TrainingData, float]]:
    """The Trainer's datasets and collator, and the seconds spent preparing them: the frozen feature
    encoder's outputs (the model taking them as input within this block) when they stay the same every
    epoch, that is without waveform augmentation; else the waveforms."""
    input_name = extractor.model_input_names[0]
    has_eval = len(validation.labels) > 0
    cacheable = can_cache_encoder_outputs(model)
    if augment.active or not cacheable:
        # a frozen group-norm encoder runs over each clip's own samples (`CLIP_LENGTHS`), as in prediction
        per_clip = cacheable and model.config.feat_extract_norm == "group"
        yield TrainingData(ClipDataset(train, input_name, augment if augment.active else None),
                           ClipDataset(validation, input_name) if has_eval else None,
                           AudioCollator(extractor, input_name, clip_lengths=per_clip)), 0.0
        return
    encoder_pass = frozen_encoder_outputs(model, extractor, config.batch_size, config.precision, train, validation)
    with encoder_pass as (encoded, seconds), encoder_outputs_as_input(model):
        yield TrainingData(EncodedClipDataset(encoded[0], train, input_name),
                           EncodedClipDataset(encoded[1], validation, input_name) if has_eval else None,
                           EncodedCollator(input_name)), seconds


class FineTuneTrainer(Trainer):
    """Trainer whose length-grouped sampler is `LengthSortedSampler` over the dataset's known clip lengths
    (transformers' own, for a dataset that is not a `datasets.Dataset`, reads every training item once to
    measure it before training starts: a pass over the disk cache, and over the augmenter, for nothing); whose
    loss, on batches that carry their clips' lengths (`CLIP_LENGTHS`), runs the feature encoder over each
    clip's own samples (`exact_batching.encoder_forward`, time-major on the CPU); whose training step, with
    `sam_rho` > 0, is sharpness-aware (`sam`); and whose checkpoints are written without zip checksums
    (`torch_save_without_crc32`)."""

    sam_rho: float = 0.0

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        if not self.sam_rho:
            return super().training_step(model, inputs, num_items_in_batch)
        params = [p for p in model.parameters() if p.requires_grad]
        step = super().training_step
        return sharpness_aware_backward(lambda: step(model, dict(inputs), num_items_in_batch), params, self.sam_rho)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        lengths = inputs.pop(CLIP_LENGTHS, None)
        with nullcontext() if lengths is None else encoder_forward(self.model, lengths.tolist()):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        with torch_save_without_crc32():
            super()._save_checkpoint(model, trial)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        lengths = getattr(dataset, "lengths", None)
        if self.args.train_sampling_strategy != "group_by_length" or lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthSortedSampler(list(lengths), self.args.train_batch_size * self.args.gradient_accumulation_steps)


@contextmanager
def torch_save_without_crc32() -> Iterator[None]:
    """`torch.save` within skips the CRC-32 it computes of every tensor for its zip entries, which
    `torch.load` does not check. The wav2vec2-base config's 690 MB AdamW state saved in 0.23 s without them
    against 0.78-1.58 s with (timings); in training, where the disk's pace adds the rest, its
    checkpoints' optimizer saves went from 1.9-2.7 s to 1.4-2.1 s each."""
    import torch

    previous = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(False)
    try:
        yield
    finally:
        torch.serialization.set_crc32_options(previous)


class LengthSortedSampler:
    """Each epoch: the clips in random order, sorted by length within windows of up to 50 batches, cut into
    batches, the full batches shuffled (the one holding the longest clip first, so that running out of
    memory happens at once) and the short one last, where it cannot shift the batches after it.

    Written by hand because transformers' `LengthGroupedSampler` sorts within windows of a quarter of the
    data set (up to 50 batches, so sets under 200 batches differ), and keeps each window's batches in order
    of length: on 160 FSDD clips in batches of 16 it pads to 29.9 frames per clip where this sampler gives
    25.1 (the clips' mean: 23.5; `bench/training.py`). Fixed batches reshuffled every epoch are what speech
    toolkits such as fairseq do on sets this small."""

    WINDOW_BATCHES = 50

    def __init__(self, lengths: list[int], batch_size: int) -> None:
        self.lengths = lengths
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch  # the global generator, which Trainer seeds (and restores on resume)

        order = torch.randperm(len(self.lengths)).tolist()
        window = self.batch_size * self.WINDOW_BATCHES
        batches: list[list[int]] = []
        for start in range(0, len(order), window):
            ranked = sorted(order[start : start + window], key=self.lengths.__getitem__)
            batches += [ranked[i : i + self.batch_size] for i in range(0, len(ranked), self.batch_size)]
        short = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        if batches:
            longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][-1]])  # each sorted
            batches.insert(0, batches.pop(longest))
        return (index for batch in batches + short for index in batch)


class TimeBudget(TrainerCallback):
    """Stop after the step that runs past the deadline; the epoch's evaluation and checkpoint still happen,
    so the best epoch so far is what is kept."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.reached = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.deadline is not None and not self.reached and time.monotonic() > self.deadline:
            self.reached = True
            control.should_training_stop = True
            log.warning("--time-budget spent after step %d: stopping fine-tuning, keeping the best epoch so far",
                        state.global_step)
        return control


def weighted_loss(class_weights: Any) -> Any:
    """Trainer's compute_loss_func for a class-weighted cross entropy (summed, then divided by the
    items in the accumulated batch, as Trainer expects of a custom loss)."""
    import torch

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        weights = class_weights.to(outputs.logits.device)
        total = torch.nn.functional.cross_entropy(outputs.logits.float(), labels, weight=weights, reduction="sum")
        return total / (num_items_in_batch if num_items_in_batch is not None else len(labels))

    return loss


def _build_trainer(config: TrainConfig, run_dir: Path, model: Any, extractor: Any, data: TrainingData,
                   class_weights: Any) -> Any:
    has_eval = data.validation is not None
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
        load_best_model_at_end=has_eval and not config.average_weights,
        metric_for_best_model="accuracy" if has_eval else None,
        save_total_limit=2,
        seed=config.seed,
        bf16=config.bf16,
        fp16=config.fp16,
        dataloader_num_workers=config.num_workers,
        train_sampling_strategy="random" if pads_to_fixed_length(extractor) else "group_by_length",
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=False,  # transformers ties it to its log level, which the CLI lowers
        dataloader_pin_memory=model.device.type == "cuda",
        use_cpu=model.device.type == "cpu",  # Trainer otherwise takes a GPU wherever torch sees one
    )
    trainer = FineTuneTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=data.collator,
        processing_class=extractor,
        compute_metrics=accuracy,
        compute_loss_func=weighted_loss(class_weights) if class_weights is not None else None,
        optimizer_cls_and_kwargs=optimizer_for(model, config),
    )
    trainer.sam_rho = config.sam_rho
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(EpochLineProgress())
    return trainer


def optimizer_for(model: Any, config: TrainConfig) -> tuple[type, dict[str, Any]]:
    """AdamW with two parameter groups: the pretrained encoder at learning_rate, the new head
    (projector/classifier/layer weights) at head_learning_rate. Trainer's scheduler scales both. Fused: one
    kernel over all parameters instead of a loop of tensor ops, several times faster on a CPU."""
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
    return torch.optim.AdamW, {"params": [g for g in params if g["params"]], "lr": config.learning_rate, "fused": True}


def _epoch_line(logs: dict[str, Any], epoch: float | None, total: float) -> str | None:
    if "eval_loss" not in logs:
        return None
    parts = [f"epoch {epoch:.0f}/{total:g}" if epoch is not None else "eval"]
    parts.append(f"validation loss {logs['eval_loss']:.4f}")
    if "eval_accuracy" in logs:
        parts.append(f"accuracy {logs['eval_accuracy']:.4f}")
    return "  ".join(parts)


class EpochLineProgress(ProgressCallback):
    """Trainer's progress bars, with one readable line per epoch instead of raw log dicts."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        line = _epoch_line(logs or {}, state.epoch, args.num_train_epochs)
        if line and state.is_world_process_zero:
            (self.training_bar.write if self.training_bar is not None else print)(line)

"""The one typed training config: defaults < YAML file < CLI flags / keyword arguments, validated."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message names it and what is allowed."""


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


STRATEGIES = ("auto", "finetune", "probe")
DEVICES = "auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N"
DEVICE_SPEC = re.compile(r"auto|cpu|cuda(:\d+)?")
TRACKERS = ("none", "tensorboard", "mlflow", "wandb")
PADDING_SIDES = ("right", "left")


@dataclass
class TrainConfig:
    """Everything a training run needs. Every field is also a CLI flag (`--field-name`) and a YAML key."""

    # --- data -------------------------------------------------------------------------------
    data: str = _opt("PolyAI/minds14", "Hub dataset id, audio folder, CSV/JSONL manifest, or MInDS-14 release folder.")
    data_config: str | None = _opt(
        "en-US", "Hub dataset config, or MInDS-14 locale(s): one, several comma-separated, or 'all'."
    )
    data_split: str = _opt("train", "Split of a Hub dataset to train on.")
    audio_column: str | None = _opt(None, "Column holding the audio (default: the source's own).")
    label_column: str | None = _opt(None, "Column holding the label (default: the source's own).")
    group_by: str | None = _opt(None, "Column whose groups (e.g. speakers) must stay on one side of the split.")
    test_size: float = _opt(0.2, "Fraction of clips held out for the test split when the data has no split of its own.")
    validation_size: float = _opt(
        0.1, "Fraction of the training clips held out for validation (picks the epoch and the strategy; the test "
        "split is scored once, at the end). 0: no validation, the last epoch is kept."
    )
    stratify: bool = _opt(True, "Keep label proportions equal on both sides of a random split.")
    max_bad_fraction: float = _opt(0.01, "Stop before training when more than this fraction of clips is unreadable.")
    # --- audio and features ---------------------------------------------------------------------
    max_duration: float = _opt(10.0, "Seconds of each clip kept (longer clips are cut); 1 reproduces the HF guide.")
    whisper_short_context: bool = _opt(
        True, "Cut Whisper's 30 s encoder context to the longest clip (rounded up to whole seconds)."
    )
    whisper_padding: str = _opt(
        "right", "Where Whisper's feature extractor puts the silence that fills its context: right (after the clip, "
        "the stock default) or left (before it; saved with the model, so the stock pipeline pads the same way)."
    )
    # --- model ------------------------------------------------------------------------------------
    model: str = _opt("facebook/wav2vec2-base", "Hub checkpoint id or local model folder to fine-tune.")
    freeze_feature_encoder: bool = _opt(True, "Freeze the convolutional feature encoder (wav2vec2 family).")
    freeze_layers: int = _opt(
        0, "Fine-tuning: also freeze the encoder's first N transformer layers and all before them (its convolutions "
        "and embeddings); fewer weights to fit, and no backward pass through them."
    )
    trust_remote_code: bool = _opt(False, "Allow custom model code from the checkpoint (off unless you trust it).")
    # --- training hyperparameters (the HF guide's defaults) ----------------------------------------
    strategy: str = _opt(
        "auto", "probe: freeze the encoder, cache every layer's pooled states once and train only the model's own "
        "head on them (seconds per epoch); finetune: train the whole model with Trainer; auto: probe, then "
        "fine-tune from the probe's head when the data and --time-budget allow, keeping the better on validation."
    )
    time_budget: float | None = _opt(
        None, "Minutes of training allowed: fine-tuning stops (keeping its best epoch) when they are spent, and "
        "auto skips fine-tuning when one epoch would not fit (default: no limit)."
    )
    class_weights: bool = _opt(False, "Weight the loss by inverse label frequency (for imbalanced labels).")
    probe_epochs: int = _opt(60, "Epochs of head training on the cached states (probe, auto, --probe-first).")
    probe_learning_rate: float = _opt(
        1e-3, "Learning rate of that head training (a fresh head: the encoder's 3e-5 would barely move it)."
    )
    probe_first: bool = _opt(
        False, "finetune: first train the head as --strategy probe does (at 1e-3), then fine-tune everything (LP-FT)."
    )
    average_weights: bool = _opt(
        False, "finetune: keep the mean of the weights at the end of every epoch (with a probe-trained head, the "
        "start's too) instead of the best single epoch: steadier on clips unlike the training set's, such as "
        "unheard speakers. Holds one more copy of the model in memory."
    )
    wise_ft: float | None = _opt(
        None, "Fine-tuning from a trained head (--probe-first, or auto): keep (1 - WISE_FT) x the weights it started "
        "from + WISE_FT x the fine-tuned ones (WiSE-FT; 0.5 is its usual mix): the pretrained encoder pulls the "
        "result back toward what it heard before, steadier on unheard speakers. Holds one more copy of the model "
        "in memory."
    )
    sam_rho: float = _opt(
        0.0, "Fine-tuning: sharpness-aware minimization (SAM) with this radius, e.g. 0.05: each step's gradient "
        "is taken at the weights moved RHO along the batch's own gradient, so training seeks flat minima, "
        "steadier on unheard speakers. Two forward-backward passes per step: about twice the time (0: off)."
    )
    learning_rate: float = _opt(3e-5, "Peak learning rate.")
    head_learning_rate: float | None = _opt(
        None, "Peak learning rate of the new classification head (default: learning_rate)."
    )
    augment_trim: str | None = _opt(
        None, "Edge trim while training: each clip's quiet start and end cut at a random level LOW:HIGH dB below "
        "its loudest 10 ms, e.g. 10:35 (for data cut by different segmenters, or clips cut tighter than the "
        "training set's)."
    )
    augment_cut_end: float = _opt(
        0.0, "End cut while training: each clip loses a random part of its end, up to this fraction of its length, "
        "e.g. 0.6 (for speakers or segmenters that cut words short, such as a six cut after its vowel; 0: off)."
    )
    augment_speed: float = _opt(0.0, "Speed perturbation while training: up to this fraction faster/slower (0: off).")
    augment_noise_snr: str | None = _opt(None, "Background noise while training at a random SNR in LOW:HIGH dB.")
    augment_gain: str | None = _opt(None, "Random gain while training in LOW:HIGH dB, e.g. -6:6.")
    augment_shift: float = _opt(0.0, "Time shift while training: each clip placed at a random offset in this many "
                                "seconds of added silence (0: off).")
    augment_crop: float = _opt(0.0, "Random crop while training: clips longer than this many seconds are cut, every "
                               "epoch, to a window of it at a random start (0: off). Evaluation and prediction "
                               "see whole clips, up to --max-duration.")
    augment_vtlp: float = _opt(
        0.0, "Vocal tract length perturbation while fine-tuning: each clip's mel spectrogram stretched along "
        "frequency by a random factor up to this fraction up or down, e.g. 0.1 (models that take a spectrogram: "
        "Whisper, AST; 0: off)."
    )
    spec_augment: float | None = _opt(
        None, "SpecAugment while fine-tuning: the fraction of time steps masked (the wav2vec2 family's own "
        "mask_time_prob, else masks on the input spectrogram; 0: off; default: the checkpoint's own, 0.05 for "
        "wav2vec2-style models, off for Whisper and AST)."
    )
    batch_size: int = _opt(32, "Clips per training step per device.")
    eval_batch_size: int | None = _opt(None, "Clips per evaluation step (default: batch_size).")
    gradient_accumulation_steps: int = _opt(4, "Steps whose gradients are summed before an update.")
    epochs: float = _opt(10.0, "Training epochs.")
    warmup_ratio: float = _opt(0.1, "Fraction of updates spent warming up the learning rate.")
    weight_decay: float = _opt(0.0, "AdamW weight decay.")
    seed: int = _opt(42, "Seed for the split, initialisation and data order.")
    bf16: bool = _opt(
        False, "Train under bfloat16 autocast (fine-tuning, and the frozen encoder passes of the probe and of the "
        "feature-encoder cache; weights and optimizer stay float32): faster on a CPU with native bfloat16 "
        "(AVX-512 BF16 or AMX) and on recent GPUs, slower on other CPUs."
    )
    fp16: bool = _opt(
        False, "Train under float16 autocast with loss scaling, as --bf16 does with bfloat16 (CUDA devices only)."
    )
    # --- output -----------------------------------------------------------------------------------
    output: str = _opt("runs/audioclf", "Run folder to write (model, metrics, plots, config, model card).",
                       runtime=True)
    overwrite: bool = _opt(False, "Replace an existing run folder.", runtime=True)
    push_to_hub: bool = _opt(False, "Upload the finished run folder with huggingface_hub.", runtime=True)
    hub_model_id: str | None = _opt(None, "Hub repository for --push-to-hub (default: the output folder's name).",
                                    runtime=True)
    report_to: str = _opt(
        "none", "Where training metrics also go: none, tensorboard (event files in RUN/logs), mlflow or wandb "
        "(each needs its own package); several comma-separated. The probe stage and the test metrics go there too."
    )
    # --- runtime (not hyperparameters: they change speed, never results; left out of config.yaml) -----
    device: str = _opt("auto", f"Where the model runs: {DEVICES}.", runtime=True)
    threads: int | None = _opt(None, "CPU threads for torch (default: torch's choice).", runtime=True)
    num_workers: int = _opt(0, "Data-loader worker processes.", runtime=True)
    cache_audio: bool = _opt(True, "Keep decoded audio in a disk cache read lazily (memory stays flat; reruns skip "
                             "decoding).", runtime=True)
    cache_dir: str | None = _opt(None, "Audio cache folder (default: $AUDIOCLF_CACHE_DIR or ~/.cache/audioclf).",
                                 runtime=True)

    def validate(self) -> TrainConfig:
        """Check every value's range; raise ConfigError naming the first bad one."""
        _require(self.epochs > 0, "epochs", self.epochs, "a number > 0")
        _require(self.whisper_padding in PADDING_SIDES, "whisper_padding", self.whisper_padding,
                 " or ".join(PADDING_SIDES))
        _require(self.strategy in STRATEGIES, "strategy", self.strategy, " or ".join(STRATEGIES))
        _require(self.probe_epochs >= 1, "probe_epochs", self.probe_epochs, "an integer >= 1")
        _require(self.freeze_layers >= 0, "freeze_layers", self.freeze_layers, "an integer >= 0")
        _require(0 < self.test_size < 1, "test_size", self.test_size, "a fraction strictly between 0 and 1")
        _require(0 <= self.validation_size < 1, "validation_size", self.validation_size, "a fraction in [0, 1)")
        _require(self.time_budget is None or self.time_budget > 0, "time_budget", self.time_budget, "minutes > 0")
        _require(0 <= self.max_bad_fraction < 1, "max_bad_fraction", self.max_bad_fraction, "a fraction in [0, 1)")
        _require(self.max_duration > 0, "max_duration", self.max_duration, "seconds > 0")
        _require(self.wise_ft is None or 0 < self.wise_ft < 1, "wise_ft", self.wise_ft,
                 "the fine-tuned weights' share, strictly between 0 and 1")
        _require(self.wise_ft is None or self.strategy != "finetune" or self.probe_first, "wise_ft", self.wise_ft,
                 "a trained head to mix with: --probe-first with --strategy finetune, or --strategy auto")
        _require(0 <= self.sam_rho < 1, "sam_rho", self.sam_rho, "a radius in [0, 1), e.g. 0.05 (0: off)")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "a number > 0")
        _require(self.probe_learning_rate > 0, "probe_learning_rate", self.probe_learning_rate, "a number > 0")
        _require(
            self.head_learning_rate is None or self.head_learning_rate > 0,
            "head_learning_rate", self.head_learning_rate, "a number > 0",
        )
        _require(0 <= self.augment_cut_end < 1, "augment_cut_end", self.augment_cut_end, "a fraction in [0, 1)")
        _require(0 <= self.augment_speed < 0.5, "augment_speed", self.augment_speed, "a fraction in [0, 0.5)")
        self.noise_snr_range()
        parse_db_range(self.augment_gain, "augment_gain")
        trim = parse_db_range(self.augment_trim, "augment_trim")
        _require(trim is None or trim[0] > 0, "augment_trim", self.augment_trim,
                 "LOW:HIGH dB below the loudest frame, with 0 < LOW <= HIGH")
        _require(0 <= self.augment_shift <= 5, "augment_shift", self.augment_shift, "seconds in [0, 5]")
        _require(self.augment_crop == 0 or self.augment_crop >= 0.1, "augment_crop", self.augment_crop,
                 "0 (off) or seconds >= 0.1")
        _require(0 <= self.augment_vtlp < 0.5, "augment_vtlp", self.augment_vtlp, "a fraction in [0, 0.5)")
        _require(self.spec_augment is None or 0 <= self.spec_augment < 1, "spec_augment", self.spec_augment,
                 "a fraction in [0, 1)")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _require(
            self.eval_batch_size is None or self.eval_batch_size >= 1,
            "eval_batch_size", self.eval_batch_size, "an integer >= 1",
        )
        _require(
            self.gradient_accumulation_steps >= 1,
            "gradient_accumulation_steps", self.gradient_accumulation_steps, "an integer >= 1",
        )
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "a fraction in [0, 1)")
        _require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        _require(self.threads is None or self.threads >= 1, "threads", self.threads, "an integer >= 1")
        _require(self.num_workers >= 0, "num_workers", self.num_workers, "an integer >= 0")
        check_device_spec(self.device)
        report_targets(self.report_to)
        precision_of(self.bf16, self.fp16)
        _require(bool(self.data), "data", self.data, "a dataset id, folder or manifest")
        _require(bool(self.output), "output", self.output, "a folder path")
        return self

    @property
    def precision(self) -> str:
        """float32, or the half precision that --bf16 / --fp16 train in."""
        return precision_of(self.bf16, self.fp16)

    def noise_snr_range(self) -> tuple[float, float] | None:
        """`augment_noise_snr` as (low, high) dB, or None."""
        return parse_db_range(self.augment_noise_snr, "augment_noise_snr")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The run's settings, as a run folder's config.yaml keeps them to replay the run (`--config`, resume):
        every field but the runtime options (`runtime_options`), which belong to one invocation."""
        runtime = self.runtime_options()
        return yaml.safe_dump({k: v for k, v in self.to_dict().items() if k not in runtime}, sort_keys=False)

    def runtime_options(self) -> dict[str, Any]:
        """Where and how this invocation runs (output folder, overwrite, upload, device, threads, caches): they
        change no result, and a rerun from config.yaml picks its own."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("runtime")}

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML file of config keys (unknown keys are an error with a suggestion)."""
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config file {path}: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values")
        return cls.build(loaded, source=str(path))

    @classmethod
    def build(cls, values: dict[str, Any], source: str = "config", base: TrainConfig | None = None) -> TrainConfig:
        """Fill a config from `values` on top of `base` (or the defaults), checking keys and types."""
        known = {f.name: f for f in fields(cls)}
        merged = (base or cls()).to_dict()
        for raw_key, value in values.items():
            key = str(raw_key).replace("-", "_")
            if key not in known:
                raise ConfigError(f"unknown key '{raw_key}' in {source}{_did_you_mean(key, known)}")
            merged[key] = _coerce(key, value, known[key].type, source)
        return cls(**merged).validate()

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def load_config(config: TrainConfig | dict[str, Any] | str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Resolve a config from a TrainConfig, a dict, or a YAML path, then apply keyword overrides."""
    if isinstance(config, TrainConfig):
        base = config
    elif isinstance(config, (str, Path)):
        base = TrainConfig.from_yaml(config)
    else:
        base = TrainConfig.build(config or {})
    return TrainConfig.build(overrides, source="arguments", base=base)


def precision_of(bf16: bool, fp16: bool) -> str:
    """The precision that the `--bf16` / `--fp16` flags ask for: float32, bf16 or fp16."""
    _require(not (bf16 and fp16), "fp16", fp16, "false with --bf16: pick one")
    return "bf16" if bf16 else "fp16" if fp16 else "float32"


def check_device_spec(spec: str) -> None:
    """Raise ConfigError unless `spec` is auto, cpu, cuda or cuda:N (checked without importing torch)."""
    _require(bool(DEVICE_SPEC.fullmatch(spec or "")), "device", spec, DEVICES)


def report_targets(report_to: str) -> list[str]:
    """`--report-to` as a list of trackers (empty for none); ConfigError naming an unknown one."""
    names = [x.strip() for x in report_to.split(",") if x.strip() and x.strip() != "none"]
    for name in names:
        _require(name in TRACKERS, "report_to", report_to, ", ".join(TRACKERS) + " (several comma-separated)")
    return names


def default_cache_dir() -> Path:
    """$AUDIOCLF_CACHE_DIR, else $XDG_CACHE_HOME/audioclf, else ~/.cache/audioclf."""
    if os.environ.get("AUDIOCLF_CACHE_DIR"):
        return Path(os.environ["AUDIOCLF_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "audioclf"


def parse_db_range(text: str | None, name: str) -> tuple[float, float] | None:
    """'LOW:HIGH' (dB) as (low, high); None stays None. Raises ConfigError naming `name`."""
    if text is None or text == "":
        return None
    try:
        low, high = (float(x) for x in str(text).split(":"))
    except ValueError:
        low, high = math.nan, math.nan
    _require(low <= high, name, text, "LOW:HIGH in dB with LOW <= HIGH, e.g. 10:30")
    return low, high


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is not allowed: expected {allowed}")


def _did_you_mean(key: str, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"


_TYPE_NAMES = {"float": float, "int": int, "bool": bool, "str": str}


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    """Turn a YAML/CLI value into the field's declared type (annotations are strings here)."""
    text = str(annotation)
    optional = "None" in text
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} in {source} cannot be empty")
    base = _TYPE_NAMES[text.split("|")[0].strip()]
    if base is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in {"true", "1", "yes", "on"}:
            return True
        if lowered in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(f"{key}={value!r} in {source} is not a boolean (true/false)")
    try:
        coerced = base(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} in {source} is not a valid {base.__name__}") from None
    if base is int and isinstance(value, float) and not float(value).is_integer():
        raise ConfigError(f"{key}={value!r} in {source} is not a whole number")
    if base is float and not math.isfinite(coerced):
        raise ConfigError(f"{key}={value!r} in {source} is not a finite number")
    return coerced

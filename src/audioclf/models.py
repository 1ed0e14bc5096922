"""Models: load any audio-classification model (our labels, float32, Whisper context cut); freezing; bf16;
modules' forwards replaced within a block."""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from transformers import FeatureExtractionMixin, PretrainedConfig, PreTrainedModel

from audioclf.config import ConfigError, check_device_spec
from audioclf.features import is_whisper, set_whisper_context
from audioclf.presets import preset_path

log = logging.getLogger("audioclf")

# Top-level modules that AutoModelForAudioClassification adds on top of a pretrained encoder.
HEAD_MODULES = {"projector", "classifier", "layer_weights"}
WHISPER_FRAMES_PER_SECOND = 50  # encoder positions per second of audio (100 mel frames, conv stride 2)


def label_maps(label_names: list[str]) -> tuple[dict[str, int], dict[int, str]]:
    """label2id / id2label with integer ids (JSON turns keys into strings; transformers turns them back)."""
    label2id = {name: i for i, name in enumerate(label_names)}
    return label2id, {i: name for name, i in label2id.items()}


def load_model_config(name_or_path: str, trust_remote_code: bool = False) -> PretrainedConfig:
    """The model's config (a preset's, for `audioclf:<name>`), without its weights."""
    from transformers import AutoConfig

    source = preset_path(name_or_path) or name_or_path
    return AutoConfig.from_pretrained(str(source), trust_remote_code=trust_remote_code)


def min_input_samples(config: Any) -> int:
    """The fewest samples a model's convolutional feature encoder turns into one frame (1 where the
    model has no such encoder: Whisper and AST pad every clip to a fixed size)."""
    needed = 1
    for kernel, stride in reversed(list(zip(getattr(config, "conv_kernel", ()), getattr(config, "conv_stride", ())))):
        needed = (needed - 1) * stride + kernel
    return needed


def load_for_training(
    name_or_path: str, label_names: list[str], trust_remote_code: bool = False, seed: int = 0,
    weighted_layer_sum: bool = False,
) -> PreTrainedModel:
    """A pretrained encoder with a fresh classification head sized to `label_names`, in float32
    (checkpoints stored in float16 would not train on a CPU). A preset (`audioclf:<name>`) is a
    config only: its model starts from random weights drawn with `seed` (as does every new head).
    `weighted_layer_sum` makes the head mix every layer's states with learned weights (where the architecture
    has that option)."""
    import torch
    from transformers import AutoModelForAudioClassification, set_seed

    preset = preset_path(name_or_path)
    label2id, id2label = label_maps(label_names)
    config = load_model_config(name_or_path, trust_remote_code)
    config.num_labels = len(label_names)
    config.label2id, config.id2label = label2id, id2label
    if weighted_layer_sum and hasattr(config, "use_weighted_layer_sum"):
        config.use_weighted_layer_sum = True
    if hasattr(config, "layerdrop"):
        config.layerdrop = 0.0  # layerdrop > 0 breaks DDP and only slows small fine-tunes
    set_seed(seed)  # the new head's initialisation is part of the run: same seed, same model
    if preset:
        return AutoModelForAudioClassification.from_config(config, dtype=torch.float32)
    model, loading = AutoModelForAudioClassification.from_pretrained(
        name_or_path,
        config=config,
        dtype=torch.float32,
        ignore_mismatched_sizes=True,
        trust_remote_code=trust_remote_code,
        output_loading_info=True,
    )
    if "layer_weights" in loading["missing_keys"]:
        start_layer_mix_even(model)
    return model


def start_layer_mix_even(model: PreTrainedModel) -> None:
    """Give a new weighted-layer-sum head equal weights on every layer, as its constructor means to.
    transformers 5.24 leaves `layer_weights` uninitialised (whatever was in memory, at times 1e31 or NaN)
    when a checkpoint lacks it, in every wav2vec2-family model but Hubert and Wav2Vec2-BERT."""
    import torch

    with torch.no_grad():
        model.layer_weights.fill_(1.0 / model.layer_weights.numel())


PRECISIONS = ("float32", "bf16", "fp16")
BF16_EMULATED = ("--bf16: this device has no native bfloat16 (a CPU without AVX-512 BF16 or AMX, a GPU before "
                 "Ampere), so it is emulated, slower than float32; leave --bf16 off here")


def resolve_device(spec: str = "auto") -> Any:
    """The torch device that `--device` names: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda
    or cuda:N; ConfigError where the GPU asked for is not there."""
    import torch

    check_device_spec(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"--device {spec}: torch sees no CUDA GPU here (torch {torch.__version__}, {built}); "
                          "use --device cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {spec}: torch sees {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    return device


def model_device(model: Any) -> Any:
    """The device a PyTorch model's weights are on (the CPU for an OnnxModel, which has no weights here)."""
    import torch

    return getattr(model, "device", None) or torch.device("cpu")


def native_bf16(device: Any = None) -> bool:
    """Whether bfloat16 autocast runs natively on `device` (default: auto's choice): a CUDA GPU from Ampere on, or
    a CPU with AVX-512 BF16 or AMX (elsewhere it is emulated, slower than float32)."""
    import torch

    if (device.type == "cuda") if device is not None else torch.cuda.is_available():
        return torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere and later; T4 and V100 emulate
    # torch has no public query for these CPU features; the private ones are what its own autocast checks
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def check_precision_here(model: Any, precision: str) -> None:
    """Before a half-precision run: for `bf16`, warn where bfloat16 is emulated (`BF16_EMULATED`) and refuse a
    model whose convolutions this machine computes wrong in it (`require_correct_bf16_convolutions`); `fp16`
    needs a CUDA device (float16 autocast on a CPU is slower than float32 and less exact than bfloat16)."""
    device = model_device(model)
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"--fp16 needs a CUDA device, and the model is on {device}; use --bf16 on a CPU")
    if precision == "bf16":
        if not native_bf16(device):
            log.warning(BF16_EMULATED)
        require_correct_bf16_convolutions(model)


def require_correct_bf16_convolutions(model: Any) -> None:
    """Raise ConfigError, naming them, if this machine computes any of the model's convolutions wrong under
    bfloat16 autocast. Why: torch 2.13's oneDNN, on an Intel Xeon with AMX, returned bfloat16 convolutions of
    some small shapes (16 or 24 channels with kernel = stride = 4; 8 channels with kernel 8) with an error
    as large as the output itself, silently; real checkpoints' shapes were right there (a comment in
    tests/tiny_models.py). Each distinct shape runs once on a small random input, in float32 and under
    autocast; bfloat16 rounding alone stays near 0.3% of the output, the cases seen were near 100%."""
    wrong = [f"{name} ({_conv_shape(conv)}: off by {error:.0%})" for name, conv, error in _bf16_conv_errors(model)
             if error > BF16_CONV_TOLERANCE]
    if wrong:
        raise ConfigError(f"--bf16: this machine computes {len(wrong)} of the model's convolutions wrong in "
                          f"bfloat16 (against float32 on a random input): {', '.join(wrong)}; leave --bf16 off")


BF16_CONV_TOLERANCE = 0.05  # relative error of a convolution's bfloat16 output against float32


def _bf16_conv_errors(model: Any) -> list[tuple[str, Any, float]]:
    """(name, module, relative error of its output under bfloat16 autocast) for one convolution per shape."""
    import torch

    seen, errors = set(), []
    generator = torch.Generator().manual_seed(0)
    device = getattr(model, "device", torch.device("cpu"))
    for name, conv in model.named_modules():
        if not isinstance(conv, (torch.nn.Conv1d, torch.nn.Conv2d)) or _conv_shape(conv) in seen:
            continue
        seen.add(_conv_shape(conv))
        size = [k + s * 31 for k, s in zip(conv.kernel_size, conv.stride)]
        sample = torch.randn(1, conv.in_channels, *size, generator=generator).to(device)
        with torch.inference_mode():
            exact = conv(sample)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                rounded = conv(sample).float()
        errors.append((name, conv, float((rounded - exact).norm() / exact.norm().clamp_min(1e-12))))
    return errors


def _conv_shape(conv: Any) -> str:
    return (f"Conv{len(conv.kernel_size)}d {conv.in_channels}->{conv.out_channels}, kernel {conv.kernel_size}, "
            f"stride {conv.stride}, groups {conv.groups}")


def half_dtype(precision: str) -> Any:
    """torch.bfloat16 for `bf16`, torch.float16 for `fp16`, None for float32."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def autocast(model: Any, precision: str) -> Any:
    """Autocast to bfloat16 (`bf16`) or float16 (`fp16`) on the model's device; float32: a no-op context."""
    import torch

    dtype = half_dtype(precision)
    return torch.autocast(model_device(model).type, dtype=dtype, enabled=dtype is not None)


def load_for_inference(path: str, trust_remote_code: bool = False, device: str = "auto") -> PreTrainedModel:
    """A local model folder, in float32, ready to predict; without transformers' "Loading weights" bar
    (nothing is downloaded, and the bar would otherwise print on every `predict`)."""
    import torch
    from transformers import AutoModelForAudioClassification
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForAudioClassification.from_pretrained(
            path, dtype=torch.float32, trust_remote_code=trust_remote_code, use_safetensors=True
        )
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return model.to(resolve_device(device)).eval()


def whisper_context_seconds(longest_clip_s: float, max_duration: float) -> int:
    """Whole seconds of context: the longest clip, capped by max_duration, rounded up, at most 30."""
    return max(1, min(30, math.ceil(min(longest_clip_s, max_duration) - 1e-9)))


def shorten_whisper_context(model: PreTrainedModel, extractor: FeatureExtractionMixin, seconds: int) -> None:
    """Cut Whisper's encoder to `seconds` of audio: slice the sinusoidal position table and make the
    extractor pad to match. The saved folder stays a stock Whisper classifier (the stock pipeline loads it).
    Written by hand because transformers has no option for it; the encoder refuses any other length."""
    import torch

    if not is_whisper(extractor):
        return
    positions = seconds * WHISPER_FRAMES_PER_SECOND
    encoder = model.encoder
    if positions >= encoder.embed_positions.num_embeddings:
        return
    table = encoder.embed_positions.weight.data[:positions].clone()
    encoder.embed_positions = torch.nn.Embedding(positions, table.shape[1])
    encoder.embed_positions.weight.data.copy_(table)
    encoder.embed_positions.requires_grad_(False)
    encoder.max_source_positions = positions
    model.config.max_source_positions = positions
    encoder.config.max_source_positions = positions
    set_whisper_context(extractor, seconds)


def freeze_first_layers(model: Any, count: int) -> int:
    """Freeze the encoder's first `count` transformer layers and every parameter registered before them
    (convolutions, embeddings: transformers registers them in the order they run); returns how many
    weights it froze. The layers are the model's largest `ModuleList`; the head is never frozen."""
    import torch

    if count == 0:
        return 0
    lists = [module for module in model.modules() if isinstance(module, torch.nn.ModuleList)]
    layers = max(lists, key=lambda module: sum(p.numel() for p in module.parameters()), default=None)
    if layers is None or count > len(layers):
        raise ConfigError(f"--freeze-layers {count}: {type(model).__name__} has "
                          f"{len(layers) if layers is not None else 'no'} transformer layers")
    last = list(layers[count - 1].parameters())[-1]
    frozen = 0
    for name, param in model.named_parameters():
        if name.split(".")[0] not in HEAD_MODULES:
            param.requires_grad_(False)
            frozen += param.numel()
        if param is last:
            return frozen
    raise AssertionError("unreachable: the layer's parameters are the model's")


def freeze_feature_encoder(model: PreTrainedModel) -> bool:
    """Freeze the convolutional waveform encoder where the model has one; True if it did."""
    freeze = getattr(model, "freeze_feature_encoder", None)
    if freeze is None:
        return False
    freeze()
    return True


@contextmanager
def forwards_replaced(modules: Iterable[Any], forward_of: Callable[[Any], Callable[..., Any]]) -> Iterator[None]:
    """Within this block, each of `modules` runs `forward_of(module)` instead of its class's forward (an
    instance attribute, deleted after); weights and state dict are never touched."""
    modules = list(modules)
    for module in modules:
        module.forward = forward_of(module)
    try:
        yield
    finally:
        for module in modules:
            del module.forward  # the class's own forward again

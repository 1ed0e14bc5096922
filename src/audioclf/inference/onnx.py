"""ONNX: export a model folder to `model.onnx` (optionally int8) and run it with onnxruntime behind `Classifier`."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from audioclf.config import ConfigError, check_device_spec
from audioclf.runs import ONNX_FILE

EXPORT_INFO = "onnx.json"
# Files of the source folder that the exported folder needs: labels (config.json), the feature
# extractor, the run's config (max_duration), its status and model card.
CARRIED_FILES = ("config.json", "preprocessor_config.json", "config.yaml", "run.json", "README.md")
QUANTIZE_CHOICES = ("int8",)
# Their SDPA attention fails torch.export under a dynamic length (its output's reshape is decomposed as a view
# of a transposed tensor: "Cannot view a tensor"); their eager attention exports, the same scores.
EAGER_ATTENTION_FOR_EXPORT = ("wav2vec2-bert", "wav2vec2-conformer")


CUDA_PROVIDER = "CUDAExecutionProvider"


class ExportError(ValueError):
    """An export that cannot be made as asked (format, quantization, source or output folder)."""


class OnnxModel:
    """An onnxruntime session that `Classifier` calls like a transformers model: `config`, `eval()`,
    `model(**features).logits`."""

    def __init__(self, path: Path, device: str = "auto") -> None:
        from transformers import AutoConfig

        ort = _import_onnx_extra()
        options = ort.SessionOptions()
        # Idle threads sleep instead of spinning: between runs the CPU goes to feature extraction, which
        # runs in PyTorch between every two batches, and on 2 cores spinning threads would compete with it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path / ONNX_FILE), options, providers=onnx_providers(ort, device))
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.config = AutoConfig.from_pretrained(str(path))

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, **features: Any) -> Any:
        import torch
        from transformers.modeling_outputs import SequenceClassifierOutput

        feeds = {name: _as_numpy(features[name]) for name in self.input_names}
        logits = self.session.run(None, feeds)[0]
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))


def onnx_providers(ort: Any, device: str) -> list[Any]:
    """onnxruntime's execution providers for `--device`: CUDA's (with the CPU's for what it lacks) for cuda or
    cuda:N, and for auto where there is a GPU and this onnxruntime build has it (onnxruntime-gpu); else the CPU's."""
    import torch

    check_device_spec(device)
    available = ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not (CUDA_PROVIDER in available and torch.cuda.is_available())):
        return ["CPUExecutionProvider"]
    if CUDA_PROVIDER not in available:
        raise ConfigError(f"--device {device}: this onnxruntime has no CUDA provider (it has "
                          f"{', '.join(available)}); pip install onnxruntime-gpu, or use --device cpu")
    index = int(device.partition(":")[2] or 0)
    return [(CUDA_PROVIDER, {"device_id": index}), "CPUExecutionProvider"]


def _import_onnx_extra() -> Any:
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as err:
        raise ExportError(f"ONNX needs the onnx extra ({err.name} is missing): pip install 'audioclf[onnx]'") from err
    return onnxruntime


def is_onnx_folder(path: Path) -> bool:
    return (path / ONNX_FILE).is_file()


def export_onnx(model_dir: str | Path, output: str | Path, quantize: str | None = None,
                overwrite: bool = False, device: str = "auto") -> Path:
    """Export a model or run folder to `output/model.onnx` (dynamic batch; dynamic length where the model
    takes any length), with its labels and feature extractor; `quantize="int8"` adds dynamic int8
    weight quantization. The model is traced on `device`. The folder is built beside `output` and renamed
    into place when complete.

    >>> export_onnx("runs/minds", "runs/minds-onnx", quantize="int8")      # doctest: +SKIP
    """
    from audioclf.inference.classifier import Classifier

    source, output = Path(model_dir), Path(output)
    if quantize not in (None, *QUANTIZE_CHOICES):
        raise ExportError(f"quantize must be one of {QUANTIZE_CHOICES} or None, got {quantize!r}")
    if output.exists() and not overwrite:
        raise ExportError(f"{output} already exists; pass --overwrite to replace it")
    _import_onnx_extra()
    classifier = Classifier.load(source, device=device)
    if isinstance(classifier.model, OnnxModel):
        raise ExportError(f"{source} is already an ONNX export")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}-"))
    try:
        with _exporter_notices_silenced():
            input_names = _export_graph(classifier, staging / ONNX_FILE)
            if quantize:
                _quantize_int8(staging / ONNX_FILE)
        for name in CARRIED_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        if classifier.uses_length_aware_encoder:  # the graph takes an attention mask: the extractor must give one
            classifier.extractor.return_attention_mask = True
            classifier.extractor.save_pretrained(staging)
        info = {"source": str(source), "inputs": input_names, "quantize": quantize}
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


@contextmanager
def _exporter_notices_silenced() -> Iterator[None]:
    """Hide what the exporting libraries print that no user can act on: torch.onnx's note that torchvision
    (whose ops it only registers) is missing, a deprecation inside torch.export, and onnxruntime's quantizer
    suggesting its optional pre-processing pass (left out: the int8 figures in bench/inference.py were
    measured without it). Their errors still show."""
    loggers = [logging.getLogger("torch.onnx"), logging.getLogger()]  # the quantizer logs on the root logger
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _export_graph(classifier: Any, path: Path) -> list[str]:
    """torch.onnx's dynamo exporter (the TorchScript one mis-exports wav2vec2's weight-normed
    positional convolution: its logits differed by ~50%). Group-norm checkpoints are exported with an
    attention mask and their length-aware first norm (`exact_batching`), so ONNX batches them exactly too;
    1-D convolutions go out as 2-D ones (`convolutions_as_2d`)."""
    import torch

    from audioclf.features import extract_features, pads_to_fixed_length

    masked = classifier.uses_length_aware_encoder
    example = extract_features(classifier.extractor, [np.zeros(classifier.rate, np.float32)] * 2,
                               attention_mask=True if masked else None).to(classifier.model.device)
    names = list(example.keys())
    batch = torch.export.Dim("batch", min=1, max=4096)
    # Samples (wav2vec2 family: the convolutions need 400) or feature frames (Wav2Vec2-BERT: [batch, frames, 160]).
    shortest = 400 if "input_values" in names else 2
    length = torch.export.Dim("length", min=shortest, max=classifier.rate * 3600)
    fixed_length = pads_to_fixed_length(classifier.extractor)
    shapes = tuple({0: batch} if fixed_length else {0: batch, 1: length} for _ in names)
    model = classifier.model
    if model.config.model_type in EAGER_ATTENTION_FOR_EXPORT:
        model.set_attn_implementation("eager")
    try:
        with convolutions_as_2d(model):
            program = torch.onnx.export(_logits_only(model, names, masked), tuple(example[n] for n in names),
                                        input_names=names, output_names=["logits"], dynamic_shapes=(shapes,),
                                        dynamo=True, verbose=False)
    except Exception as err:  # the exporter's own errors run to pages; the first line of the deepest one says why
        raise ExportError(f"torch.onnx could not export this {model.config.model_type} model: {_root_cause(err)}; "
                          "predict and serve still run its PyTorch folder") from err
    program.save(str(path))
    return names


def _root_cause(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


@contextmanager
def convolutions_as_2d(model: Any) -> Iterator[int]:
    """While inside, every zero-padded `Conv1d` of `model` computes as a 2-D convolution over a height of 1
    (same weights, same sums); yields how many. Why: onnxruntime's CPU runs 2-D convolutions with its
    blocked-channel kernels, and 1-D ones without; the 2-D ones appear to skip the taps that meet only padding
    (on 20 frames, faster than the arithmetic of all 128 taps at this CPU's rate would allow). The
    wav2vec2-base config's positional convolution (kernel 128, 16 groups) took 79-122 ms per batch of 16 clips
    of 20-37 frames as 1-D, 7-26 ms as 2-D; its whole int8 export 270.9 against 334.0 ms per batch of 16 clips
    of 5,000 samples, and whisper-tiny.en's 32.9 against 35.6 ms per batch of 16 at a 1 s context, the same
    top-1 on the 1,000 clips of lucas and nicolas (interleaved timings, AMD EPYC, 2 cores)."""
    import functools

    import torch

    from audioclf.models import forwards_replaced

    convolutions = [module for module in model.modules() if isinstance(module, torch.nn.Conv1d)
                    and module.padding_mode == "zeros" and isinstance(module.padding, tuple)
                    and "forward" not in vars(module)]
    with forwards_replaced(convolutions, lambda conv: functools.partial(_conv1d_as_2d, conv)):
        yield len(convolutions)


def _conv1d_as_2d(conv: Any, x: Any) -> Any:
    import torch

    return torch.nn.functional.conv2d(x.unsqueeze(-2), conv.weight.unsqueeze(-2), conv.bias,
                                      stride=(1, *conv.stride), padding=(0, *conv.padding),
                                      dilation=(1, *conv.dilation), groups=conv.groups).squeeze(-2)


def _quantize_int8(path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_suffix(".int8.onnx")
    # Per-channel scales: on the bench's whisper-tiny.en classifiers they kept top-1 agreement with float32
    # at 0.98-0.99 where one scale per tensor kept 0.96-0.98, at the same speed. MatMul only: on CPUs
    # without VNNI, int8 convolutions (ConvInteger) run slower than float32 ones (and on this project's AVX-512
    # VNNI machine too, README); in `python bench/inference.py` the wav2vec2-base config's int8 export went
    # from 0.72x its float32 export's clips/s to 1.29x with the convolutions left in float32, and
    # whisper-tiny.en's from 1.20x to 1.43x. Products of two activations (attention's scores and weighted
    # values) stay float32 as well: quantized, both sides get one scale per call, which cost agreement
    # (whisper-tiny.en's fell to 0.98 with them, where keeping the first layer in float32 had brought it back)
    # and time, for no weights saved (README, "Benchmarks").
    quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=activation_products(path))
    quantized.replace(path)


def activation_products(path: Path) -> list[str]:
    """The MatMul nodes of which neither input is a weight (a stored initializer): products of activations."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {tensor.name for tensor in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "MatMul" and not weights & set(node.input)]


def _logits_only(model: Any, names: list[str], length_aware: bool) -> Any:
    """A module taking the inputs positionally and returning only the logits: what the exporter traces."""
    import torch

    from audioclf.inference.exact_batching import clip_lengths

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            features = dict(zip(names, inputs))
            if not length_aware:
                return self.model(**features).logits
            with clip_lengths(self.model, features["attention_mask"].sum(dim=-1)):
                return self.model(**features).logits

    return LogitsOnly().eval()


def _as_numpy(value: Any) -> np.ndarray:
    return value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)


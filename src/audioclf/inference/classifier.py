"""`Classifier`: load a trained model folder and predict labels for files or waveforms, batched by length."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from audioclf.audio import AudioSource, load_audio
from audioclf.config import ConfigError
from audioclf.features import load_feature_extractor, padding_changes_output
from audioclf.features import sampling_rate as extractor_rate
from audioclf.inference.exact_batching import length_aware_encoder_needed, run_batch
from audioclf.inference.windows import WindowPrediction, classify_windows, window_samples
from audioclf.models import min_input_samples


Prediction = list[dict[str, Any]]


class Classifier:
    """A fine-tuned audio classifier.

    >>> clf = Classifier.load("runs/minds")                     # doctest: +SKIP
    >>> clf.predict(["call1.wav"], top_k=3)                     # doctest: +SKIP
    [[{'label': 'balance', 'score': 0.91}, ...]]
    """

    def __init__(self, model: Any, extractor: Any, max_duration: float | None = None, name: str = "",
                 precision: str = "float32") -> None:
        self.precision = precision  # float32, or forward passes under bf16 / fp16 autocast (PyTorch models)
        self.model = _in_half_precision(model, precision).eval()
        self.extractor = extractor
        self.max_duration = max_duration
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.rate = extractor_rate(extractor)
        self.uses_length_aware_encoder = length_aware_encoder_needed(model, extractor)
        self._equal_lengths_only = padding_changes_output(extractor) and not self.uses_length_aware_encoder
        self.min_samples = min_input_samples(model.config)

    @classmethod
    def load(cls, path: str | Path, trust_remote_code: bool = False, bf16: bool = False, fp16: bool = False,
             device: str = "auto") -> Classifier:
        """Load a run folder, any transformers audio-classification folder (safetensors), or a folder
        made by `export_onnx` (runs on onnxruntime). `device`: auto (a CUDA GPU when there is one), cpu, cuda
        or cuda:N. `bf16`: run a PyTorch model under bfloat16 autocast, faster on a GPU and on a CPU with native
        bfloat16 (AVX-512 BF16 or AMX), slower on other CPUs; `fp16`: float16 autocast, on a CUDA device."""
        from audioclf.inference.onnx import OnnxModel, is_onnx_folder
        from audioclf.config import precision_of
        from audioclf.models import check_precision_here, load_for_inference
        from audioclf.runs import require_model_folder, run_max_duration

        path = Path(path)
        require_model_folder(path)
        precision = precision_of(bf16, fp16)
        extractor = load_feature_extractor(str(path), trust_remote_code=trust_remote_code)
        if is_onnx_folder(path):
            if precision != "float32":
                raise ConfigError(f"{path} is an ONNX export, run by onnxruntime: --bf16 and --fp16 apply to "
                                  "PyTorch models (use the folder it was exported from, or --quantize int8 for a "
                                  "faster export)")
            model = OnnxModel(path, device)
        else:
            model = load_for_inference(str(path), trust_remote_code=trust_remote_code, device=device)
            check_precision_here(model, precision)
        return cls(model, extractor, max_duration=run_max_duration(path), name=path.name, precision=precision)

    @property
    def labels(self) -> list[str]:
        id2label = self.model.config.id2label
        return [id2label[i] for i in sorted(id2label)]

    def prepare(self, item: AudioSource | np.ndarray, input_rate: int | None = None, crop: bool = True) -> np.ndarray:
        """Decode/resample/crop one input exactly as training did (`crop=False`: the whole recording, for
        windows). Arrays are taken to be at `input_rate` (default: the model's rate)."""
        if isinstance(item, np.ndarray):
            item = (item, input_rate or self.rate)
        return load_audio(item, self.rate, self.max_duration if crop else None, min_samples=self.min_samples)

    def predict(
        self,
        inputs: Sequence[AudioSource | np.ndarray],
        top_k: int = 5,
        batch_size: int = 8,
        sampling_rate: int | None = None,
    ) -> list[Prediction]:
        """Per input, the `top_k` labels as `{"label", "score"}` dicts sorted by score."""
        waves = [self.prepare(item, sampling_rate) for item in inputs]
        return [self.top_labels(row, top_k) for row in self.probabilities(waves, batch_size)]

    def predict_windows(
        self,
        inputs: Sequence[AudioSource | np.ndarray],
        window_s: float,
        hop_s: float | None = None,
        top_k: int = 5,
        batch_size: int = 8,
        sampling_rate: int | None = None,
    ) -> list[list[WindowPrediction]]:
        """Per input, the whole recording cut into `window_s`-second windows every `hop_s` seconds (default:
        side by side), each as `{"start_s", "end_s", "predictions"}`: for recordings longer than a clip."""
        window, hop = window_samples(self, window_s, hop_s)
        return [classify_windows(self, self.prepare(item, sampling_rate, crop=False), window, hop, top_k, batch_size)
                for item in inputs]

    def probabilities(self, waves: Sequence[np.ndarray], batch_size: int = 8, progress: bool = False) -> np.ndarray:
        """Softmax scores, shape (len(waves), num_labels), in input order."""
        import torch
        from tqdm.auto import tqdm

        out = np.zeros((len(waves), len(self.labels)), dtype=np.float32)
        lengths = getattr(waves, "lengths", None)  # CachedWaves knows them without reading every clip
        lengths = [len(w) for w in waves] if lengths is None else [int(n) for n in lengths]
        batches = plan_batches(lengths, batch_size, self._equal_lengths_only)
        with torch.inference_mode():
            for batch in tqdm(batches, desc="predicting", unit="batch", disable=not progress):
                outputs, _ = run_batch(self.model, self.extractor, [waves[i] for i in batch],
                                       self.uses_length_aware_encoder, self.precision)
                out[batch] = torch.softmax(outputs.logits.float(), dim=-1).cpu().numpy()
        return out

    def top_labels(self, scores: np.ndarray, top_k: int) -> Prediction:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        order = np.argsort(-scores, kind="stable")[:top_k]
        labels = self.labels
        return [{"label": labels[i], "score": float(scores[i])} for i in order]


def _in_half_precision(model: Any, precision: str) -> Any:
    """The model with its weights cast once to bfloat16 (`bf16`) or float16 (`fp16`); float32 leaves it as it is.
    Autocast alone casts every weight again in every batch (bench/inference.py, wav2vec2-base config: 2.81x the
    stock pipeline that way, 3.16x this way)."""
    from audioclf.models import half_dtype

    dtype = half_dtype(precision)
    return model.to(dtype) if dtype is not None else model


def plan_batches(lengths: Sequence[int], batch_size: int, equal_lengths_only: bool) -> list[list[int]]:
    """Group indices by length so padding is minimal; where padding would change the model's output,
    only clips of identical length share a batch."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        fits = current is not None and len(current) < batch_size
        if fits and equal_lengths_only:
            fits = lengths[current[0]] == lengths[index]
        if fits:
            current.append(index)
        else:
            batches.append([index])
    return batches


def iter_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively) into their audio files; files are kept as given."""
    from audioclf.audio import is_audio_file

    found: list[Path] = []
    for path in map(Path, paths):
        found.extend(sorted(p for p in path.rglob("*") if is_audio_file(p)) if path.is_dir() else [path])
    return found

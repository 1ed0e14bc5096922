"""The `probe` strategy: run the frozen encoder once, cache every layer's mean-pooled state per clip, and
train the model's own head (weighted layer sum -> projector -> mean -> classifier) on that cache.

Exact, not an approximation: the projector is affine, so the mean over frames of projected states equals
the projected mean of the states. Clips are pooled over exactly the frames the model itself pools (all
frames of a Whisper context; each clip's own frames, under its attention mask, for the wav2vec2 family), so the saved
folder is a stock transformers model whose scores equal the head's. Written by hand: transformers has
no linear-probe trainer for its audio heads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioclf.config import ConfigError
from audioclf.features import pads_to_fixed_length
from audioclf.inference.classifier import plan_batches
from audioclf.inference.exact_batching import length_aware_encoder_needed, run_batch
from audioclf.training.dataset import DecodedClips

log = logging.getLogger("audioclf")

HEAD_PARTS = ("layer_weights", "projector", "classifier")


class ProbeUnsupported(ConfigError):
    """The architecture's head is not a weighted layer sum + projector + classifier."""


def supports_probe(model: Any) -> bool:
    return all(hasattr(model, part) for part in HEAD_PARTS) and getattr(model.config, "use_weighted_layer_sum", False)


def pooled_layer_states(model: Any, extractor: Any, clips: DecodedClips, batch_size: int = 16,
                        desc: str = "encoding", precision: str = "float32") -> np.ndarray:
    """Per clip, the mean over frames of every hidden state (embeddings + each layer): (clips, layers, hidden).
    `precision` bf16 or fp16: the model under that autocast."""
    import torch
    from tqdm.auto import tqdm

    out: np.ndarray | None = None
    fixed_length = pads_to_fixed_length(extractor)
    length_aware = length_aware_encoder_needed(model, extractor)
    batches = plan_batches(clips.lengths, batch_size, equal_lengths_only=not (fixed_length or length_aware))
    with torch.inference_mode():
        for batch in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 5):
            outputs, features = run_batch(model, extractor, [clips.waves[i] for i in batch], length_aware,
                                          precision, output_hidden_states=True)
            frames = None if fixed_length else _frame_mask(model, features, outputs.hidden_states[0].shape[1])
            pooled = torch.stack([_mean_over_frames(layer.float(), frames) for layer in outputs.hidden_states], dim=1)
            if out is None:
                out = np.zeros((len(clips.lengths), *pooled.shape[1:]), dtype=np.float32)
            out[batch] = pooled.cpu().numpy()
    assert out is not None, "no clips to encode"
    return out


def _frame_mask(model: Any, features: Any, frames: int) -> Any:
    """Which hidden-state frames are the clip's own (None: all are), as the model's head computes it."""
    mask = features.get("attention_mask")
    return None if mask is None else model._get_feature_vector_attention_mask(frames, mask)


def _mean_over_frames(states: Any, frames: Any) -> Any:
    if frames is None:
        return states.mean(dim=1)
    weights = frames.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1)


def head_logits(model: Any, pooled: Any) -> Any:
    """The model's head applied to cached pooled states (a torch tensor of shape (clips, layers, hidden))."""
    import torch

    weights = torch.softmax(model.layer_weights, dim=-1)
    mixed = (pooled * weights.view(1, -1, 1)).sum(dim=1)
    return model.classifier(model.projector(mixed))


def fold_standardization(linear: Any, mean: Any, std: Any) -> None:
    """Make `linear(x)` equal what it gave for `(x - mean) / std`."""
    linear.weight /= std
    linear.bias -= linear.weight @ mean


@dataclass
class ProbeSettings:
    """How the states are computed (`precision` bf16 or fp16: under that autocast) and the head trained on them."""

    epochs: int
    learning_rate: float
    weight_decay: float
    batch_size: int
    seed: int
    class_weights: Any = None  # a torch tensor of per-label loss weights, or None
    precision: str = "float32"


class Probe:
    """The frozen encoder's pooled states of the train and validation clips, computed once, and the head
    fitted on them: on train alone (so validation stays unseen and can judge it), or on both."""

    def __init__(self, model: Any, extractor: Any, train: DecodedClips, validation: DecodedClips,
                 settings: ProbeSettings) -> None:
        if not supports_probe(model):
            raise ProbeUnsupported(f"{type(model).__name__} has no weighted-layer-sum head; use --strategy finetune")
        start = time.perf_counter()
        model.eval()
        self.settings = settings
        self.initial_head = {name: p.detach().clone() for name, p in _head_parameters(model)}
        self.train = self._encode(model, extractor, train, "train", settings.precision)
        self.validation = (self._encode(model, extractor, validation, "validation", settings.precision)
                           if validation.labels else None)
        self.encode_s = time.perf_counter() - start
        self.seconds_per_clip = self.encode_s / (len(train.labels) + len(validation.labels))

    @staticmethod
    def _encode(model: Any, extractor: Any, clips: DecodedClips, name: str, precision: str) -> tuple[Any, Any]:
        """The clips' pooled states and labels, on the model's device, where its head is fitted on them."""
        import torch

        states = pooled_layer_states(model, extractor, clips, desc=f"encoding {name}", precision=precision)
        return (torch.from_numpy(states).to(model.device),
                torch.tensor(clips.labels, dtype=torch.long, device=model.device))

    def fit(self, model: Any, with_validation: bool = False) -> dict[str, float]:
        """Fit `model`'s head from its initial state (the same start every time); returns figures."""
        import torch

        start = time.perf_counter()
        _restore(model, self.initial_head)
        states, labels = self.train
        if with_validation and self.validation is not None:
            states, labels = torch.cat([states, self.validation[0]]), torch.cat([labels, self.validation[1]])
        figures = {"train_accuracy": _fit_head(model, states, labels, self.settings)}
        if self.validation is not None and not with_validation:
            figures["validation_accuracy"] = _accuracy(model, *self.validation)  # unrounded: auto compares it
        figures["head_s"] = round(time.perf_counter() - start, 2)
        log.info("probe: head %d epochs on %d clips in %.1f s (encoder pass %.1f s), %s", self.settings.epochs,
                 len(labels), figures["head_s"], self.encode_s,
                 ", ".join(f"{k} {v:.4f}" for k, v in figures.items() if k.endswith("accuracy")))
        return figures


def _head_parameters(model: Any) -> list[tuple[str, Any]]:
    return [(name, p) for name, p in model.named_parameters() if name.split(".")[0] in HEAD_PARTS]


def _restore(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in _head_parameters(model):
            param.copy_(state[name])


def _accuracy(model: Any, states: Any, labels: Any) -> float:
    import torch

    with torch.no_grad():
        return float((head_logits(model, states).argmax(-1) == labels).float().mean())


def _fit_head(model: Any, states: Any, labels: Any, settings: ProbeSettings) -> float:
    """AdamW on the head over standardized states, then the standardization folded into the projector
    (so the head takes raw states again); returns the accuracy on the states it was fit on."""
    import torch

    # One mean/std per hidden dimension over clips and layers, so that it commutes with the layer mix
    # (whose weights sum to 1).
    mean, std = states.mean(dim=(0, 1)), states.std(dim=(0, 1)).clamp_min(1e-6)
    scaled = (states - mean) / std
    optimizer = torch.optim.AdamW([p for _, p in _head_parameters(model)], lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    weights = None if settings.class_weights is None else settings.class_weights.to(states.device)
    for _ in range(settings.epochs):
        order = torch.randperm(len(labels), generator=generator).to(states.device)
        for step in range(0, len(order), settings.batch_size):
            index = order[step : step + settings.batch_size]
            loss = torch.nn.functional.cross_entropy(head_logits(model, scaled[index]), labels[index],
                                                     weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        fold_standardization(model.projector, mean, std)
    return _accuracy(model, states, labels)

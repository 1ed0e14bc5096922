"""The `probe` strategy: run the frozen encoder once, cache every layer's mean-pooled state per clip, and
train the model's own head (weighted layer sum -> projector -> mean -> classifier) on that cache.

Exact, not an approximation: the projector is affine, so the mean over frames of projected states equals
the projected mean of the states. Clips are pooled over exactly the frames the model itself pools (all
frames of a Whisper context; each clip alone, never zero-padded, for the wav2vec2 family), so the saved
folder is a stock transformers model whose scores equal the head's. Written by hand: transformers has
no linear-probe trainer for its audio heads.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from audioclf.config import ConfigError
from audioclf.features import extract_features
from audioclf.inference.classifier import plan_batches
from audioclf.training.dataset import DecodedClips

log = logging.getLogger("audioclf")

HEAD_PARTS = ("layer_weights", "projector", "classifier")


class ProbeUnsupported(ConfigError):
    """The architecture's head is not a weighted layer sum + projector + classifier."""


def supports_probe(model: Any) -> bool:
    return all(hasattr(model, part) for part in HEAD_PARTS) and getattr(model.config, "use_weighted_layer_sum", False)


def pooled_layer_states(model: Any, extractor: Any, clips: DecodedClips, batch_size: int = 16,
                        desc: str = "encoding") -> np.ndarray:
    """Per clip, the mean over frames of every hidden state (embeddings + each layer): (clips, layers, hidden)."""
    import torch
    from tqdm.auto import tqdm

    out: np.ndarray | None = None
    batches = plan_batches(clips.lengths, batch_size, equal_lengths_only=True)
    with torch.inference_mode():
        for batch in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 5):
            features = extract_features(extractor, [clips.waves[i] for i in batch])
            features.pop("attention_mask", None)  # equal lengths: nothing is padded
            states = model(**features, output_hidden_states=True).hidden_states
            pooled = torch.stack([layer.float().mean(dim=1) for layer in states], dim=1).numpy()
            if out is None:
                out = np.zeros((len(clips.lengths), *pooled.shape[1:]), dtype=np.float32)
            out[batch] = pooled
    assert out is not None, "no clips to encode"
    return out


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


def train_probe(model: Any, extractor: Any, train: DecodedClips, epochs: int, learning_rate: float,
                weight_decay: float, batch_size: int, seed: int) -> dict[str, float]:
    """Train `model`'s head in place on the frozen encoder's cached states; returns timing figures."""
    import time

    import torch

    if not supports_probe(model):
        raise ProbeUnsupported(f"{type(model).__name__} has no weighted-layer-sum head; use --strategy finetune")
    start = time.perf_counter()
    model.eval()
    pooled = torch.from_numpy(pooled_layer_states(model, extractor, train, desc="encoding train"))
    encoded = time.perf_counter()
    # Standardize each hidden dimension (one mean/std over clips and layers, so that it commutes with the
    # layer mix, whose weights sum to 1), train, then fold the scaling into the projector.
    mean, std = pooled.mean(dim=(0, 1)), pooled.std(dim=(0, 1)).clamp_min(1e-6)
    pooled = (pooled - mean) / std
    labels = torch.tensor(train.labels, dtype=torch.long)
    params = [p for name, p in model.named_parameters() if name.split(".")[0] in HEAD_PARTS]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for step in range(0, len(order), batch_size):
            index = order[step : step + batch_size]
            loss = torch.nn.functional.cross_entropy(head_logits(model, pooled[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((head_logits(model, pooled).argmax(-1) == labels).float().mean())
        fold_standardization(model.projector, mean, std)
    log.info("probe: encoder pass %.1f s, head %d epochs %.1f s, train accuracy %.4f",
             encoded - start, epochs, time.perf_counter() - encoded, accuracy)
    return {"encode_s": round(encoded - start, 2), "head_s": round(time.perf_counter() - encoded, 2),
            "train_accuracy": round(accuracy, 4)}

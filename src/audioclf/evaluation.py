"""Evaluation: scikit-learn metrics, the confusion-matrix plot, the metrics table and the model card."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from audioclf import runs


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], label_names: list[str], num_skipped: int = 0
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support (scikit-learn, no Hub download)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # over the labels that occur (scikit-learn's own default): one with no clip and no prediction has no F1
        "macro_f1": float(f1_score(y_true, y_pred, labels=sorted({*y_true, *y_pred}) or ids, average="macro",
                                   zero_division=0)),
        "num_eval_clips": int(len(y_true)),
        "num_skipped": int(num_skipped),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
    }


def result_warnings(metrics: dict[str, Any], counts: dict[str, int],
                    validation: tuple[float, dict[str, int]] | None = None) -> list[str]:
    """What a user must not miss: test (or validation) accuracy no better than chance or than always
    answering the most frequent label, and training labels so imbalanced that accuracy flatters the model.
    `validation` is (accuracy, clips per label) of the validation split, when there was one."""
    support = {name: row["support"] for name, row in metrics["per_class"].items()}
    warnings = [w for w in (_near_chance("test", metrics["accuracy"], support),
                            _near_chance("validation", *validation) if validation else None) if w]
    if counts and max(counts.values()) > 1.5 * max(min(counts.values()), 1):
        most, least = max(counts, key=counts.__getitem__), min(counts, key=counts.__getitem__)
        warnings.append(
            f"training labels are imbalanced ('{most}': {counts[most]} clips, '{least}': {counts[least]}); accuracy "
            f"favours frequent labels, so read macro-F1 ({metrics['macro_f1']:.3f}) and the per-class recall; "
            "--class-weights weights the loss against it.")
    return warnings


def _near_chance(split: str, accuracy: float, support: dict[str, int]) -> str | None:
    total = sum(support.values())
    if not total:
        return None
    majority = max(support, key=support.__getitem__)
    if support[majority] == total:
        return (f"the {split} split holds clips of one label only ('{majority}': {total}), so its accuracy "
                f"({accuracy:.3f}) cannot tell a model that listens from one that always answers '{majority}'; "
                "give it clips of every label (a larger --test-size or --validation-size, or a split column).")
    chance, majority_share = 1 / len(support), support[majority] / total
    if accuracy > max(chance, majority_share) + 0.02:
        return None
    return (f"{split} accuracy {accuracy:.3f} is no better than guessing (chance {chance:.3f}; always answering "
            f"'{majority}' scores {majority_share:.3f}). Usual causes: too few epochs or too low a learning rate, "
            "labels that do not match the audio, clips cut too short by --max-duration, or a learning rate so "
            "high that training diverged.")


def accuracy(eval_pred: Any) -> dict[str, float]:
    """compute_metrics for transformers.Trainer."""
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def save_confusion_matrix(
    y_true: Sequence[int], y_pred: Sequence[int], label_names: list[str], path: Path, title: str = ""
) -> None:
    """Write a PNG of the confusion matrix with label names on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(label_names))))
    size = max(5.0, 0.55 * len(label_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=label_names).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45 if len(label_names) > 6 else "horizontal"
    )
    ax.set_title(title or "Confusion matrix")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    runs.atomic_write_bytes(Path(path), buffer.getvalue())


def format_metrics(metrics: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    width = max([len(name) for name in metrics["per_class"]] + [5])
    lines = [
        f"accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   "
        f"clips {metrics['num_eval_clips']}   skipped {metrics['num_skipped']}",
        f"{'label':<{width}}  precision  recall     f1  support",
    ]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}"
        )
    return "\n".join(lines)


def model_card(
    base_model: str, data_description: str, label_names: list[str], hyperparameters: dict[str, Any],
    metrics: dict[str, Any], num_train: int,
) -> str:
    """A Hub-style README.md for the run folder (a preset, `audioclf:<name>`, is no Hub base model)."""
    hyper = "\n".join(f"| {key} | {value} |" for key, value in hyperparameters.items())
    from_scratch = base_model.startswith("audioclf:")
    base_line = "" if from_scratch else f"base_model: {base_model}\n"
    origin = f"trained from scratch (preset `{base_model}`)" if from_scratch else f"fine-tuned from `{base_model}`"
    clips = (f"{num_train} training clips, {metrics['num_eval_clips']} evaluation clips "
             f"({metrics['num_skipped']} unreadable clips skipped)")
    return f"""---
library_name: transformers
pipeline_tag: audio-classification
{base_line}tags: [audio-classification, audioclf]
metrics: [accuracy, f1]
---

# Audio classifier {origin}

Trained with audioclf on {data_description}:
{clips},
{len(label_names)} labels: {', '.join(label_names)}.

## Results on the test split

| metric | value |
|---|---|
| accuracy | {metrics['accuracy']:.4f} |
| macro-F1 | {metrics['macro_f1']:.4f} |

Per-class figures are in `metrics.json`; the confusion matrix is `confusion_matrix.png`.

## Use

```python
from transformers import pipeline
classifier = pipeline("audio-classification", model="<this folder>")
classifier(waveform)  # 1-D float32 array at the feature extractor's sampling rate
```

or `audioclf predict <this folder> clip.wav`.

## Training hyperparameters

| name | value |
|---|---|
{hyper}
"""


def score_clips(clf: Any, clips: Any, num_skipped: int, out_dir: Path) -> dict[str, Any]:
    """Predict with a `Classifier` (the one inference path), compute metrics, write metrics.json and the
    confusion matrix into `out_dir`."""
    if not clips.waves:
        raise ValueError("no usable clips to evaluate")
    predicted = clf.probabilities(clips.waves, progress=len(clips.waves) > 50).argmax(axis=1).tolist()
    metrics = classification_metrics(clips.labels, predicted, clf.labels, num_skipped)
    out_dir = Path(out_dir)
    runs.atomic_write_json(out_dir / runs.METRICS_FILE, metrics)
    save_confusion_matrix(clips.labels, predicted, clf.labels, out_dir / runs.CONFUSION_FILE,
                          title=f"{clf.name}: accuracy {metrics['accuracy']:.3f}")
    return metrics

"""Metrics, the confusion-matrix plot and the model card."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioclf.evaluation import (classification_metrics, format_metrics, model_card, result_warnings,
                                 save_confusion_matrix)


def test_metrics_match_a_hand_count() -> None:
    # truth a a b b c ; predicted a b b b a  -> 3 of 5 right
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"], num_skipped=2)
    assert metrics["accuracy"] == pytest.approx(0.6) and metrics["num_skipped"] == 2
    assert metrics["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert metrics["per_class"]["c"]["recall"] == 0.0  # never predicted, no crash on zero division
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert "accuracy 0.6000" in format_metrics(metrics)


def test_macro_f1_leaves_out_a_label_with_no_clip_and_no_prediction() -> None:
    metrics = classification_metrics([0, 0, 1], [0, 1, 1], ["a", "b", "c"])  # no 'c' in truth or predictions
    assert metrics["per_class"]["c"]["support"] == 0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_confusion_matrix_png(tmp_path: Path) -> None:
    save_confusion_matrix([0, 1, 1], [0, 1, 0], ["yes", "no"], tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_model_card_names_the_base_model_only_when_it_is_on_the_hub() -> None:
    metrics = classification_metrics([0, 1], [0, 1], ["a", "b"])
    pretrained = model_card("facebook/wav2vec2-base", "data", ["a", "b"], {"learning_rate": 3e-5}, metrics, 8)
    scratch = model_card("audioclf:compact-whisper", "data", ["a", "b"], {}, metrics, 8)
    assert "base_model: facebook/wav2vec2-base" in pretrained and "| learning_rate | 3e-05 |" in pretrained
    assert "base_model" not in scratch and "trained from scratch" in scratch


def test_warns_when_accuracy_is_no_better_than_the_majority_label_or_labels_are_imbalanced() -> None:
    names = ["yes", "no", "maybe"]
    always_yes = classification_metrics([0, 0, 0, 0, 1, 2], [0] * 6, names)  # 4/6: the majority baseline
    (warning,) = result_warnings(always_yes, {"yes": 10, "no": 10, "maybe": 10})
    assert "no better than guessing" in warning and "'yes' scores 0.667" in warning
    good = classification_metrics([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], names)
    assert result_warnings(good, {"yes": 10, "no": 9, "maybe": 8}) == []
    (imbalance,) = result_warnings(good, {"yes": 40, "no": 10, "maybe": 8})
    assert "'yes': 40 clips, 'maybe': 8" in imbalance and "macro-F1" in imbalance


def test_a_split_of_one_label_is_named_as_such_not_as_guessing() -> None:
    one_label = classification_metrics([1, 1], [1, 1], ["yes", "no"])
    (warning,) = result_warnings(one_label, {"yes": 5, "no": 5})
    assert "test split holds clips of one label only ('no': 2)" in warning and "guessing" not in warning

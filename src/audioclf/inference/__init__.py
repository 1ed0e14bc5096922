"""Inference: the `Classifier` used by predict, evaluate and (later) serve."""

from audioclf.inference.classifier import Classifier, iter_audio_files, plan_batches

__all__ = ["Classifier", "iter_audio_files", "plan_batches"]

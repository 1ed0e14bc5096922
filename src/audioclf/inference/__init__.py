"""Inference: the `Classifier` that predict, windows, evaluate, serve and export all run a model through."""

from audioclf.inference.classifier import Classifier, iter_audio_files, plan_batches

__all__ = ["Classifier", "iter_audio_files", "plan_batches"]

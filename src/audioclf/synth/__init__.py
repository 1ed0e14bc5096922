"""Synthetic speech datasets: eSpeak NG voices speaking phrase files (`audioclf synth`)."""

from audioclf.synth.dataset import SynthOptions, bundled_phrases, synthesize_dataset

__all__ = ["SynthOptions", "bundled_phrases", "synthesize_dataset"]

"""Training: decode clips once, fine-tune with transformers' Trainer, write the run folder."""

"""Weight averaging for fine-tuning (`--average-weights`): the mean of the weights at each epoch's end, kept across --resume."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger("audioclf")

AVERAGE_FILE = "epoch_average.safetensors"
_COUNT = "n_averaged"


class EpochAverage(TrainerCallback):
    """A running mean (torch's `AveragedModel`, on the CPU) of the model's weights at the end of every epoch,
    and at the start when `include_start` (a probe-trained head, worth keeping in the mean). Written beside
    each checkpoint, so that a resumed run continues the mean from the checkpoint it resumes."""

    def __init__(self, include_start: bool, resume_from: Path | None) -> None:
        self.include_start = include_start
        self.resume_from = resume_from
        self.average: Any = None

    @property
    def count(self) -> int:
        return 0 if self.average is None else int(self.average.n_averaged)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        from torch.optim.swa_utils import AveragedModel

        self.average = AveragedModel(model, device="cpu")
        saved = self.resume_from / AVERAGE_FILE if self.resume_from is not None else None
        if saved is not None and saved.is_file():
            self._load(saved)
        elif saved is not None:
            log.warning("%s has no %s: the weight average restarts from this checkpoint", self.resume_from.name,
                        AVERAGE_FILE)
        elif self.include_start:
            self.average.update_parameters(model)

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.average.update_parameters(model)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            from safetensors.torch import save_file

            tensors = {name: p.detach().contiguous() for name, p in self.average.module.named_parameters()}
            tensors[_COUNT] = self.average.n_averaged
            save_file(tensors, str(Path(args.output_dir) / f"checkpoint-{state.global_step}" / AVERAGE_FILE))

    def apply_to(self, model: Any) -> None:
        """Give `model` the averaged weights (nothing to do before the first epoch ends)."""
        import torch

        if self.count == 0:
            return
        with torch.no_grad():
            for param, mean in zip(model.parameters(), self.average.module.parameters()):
                param.copy_(mean.to(param.device, param.dtype))

    def _load(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file

        saved = load_file(str(path))
        with torch.no_grad():
            for name, param in self.average.module.named_parameters():
                param.copy_(saved[name])
            self.average.n_averaged.copy_(saved[_COUNT])

"""Weight averaging for fine-tuning, kept across --resume: the mean of the weights at each epoch's end
(`--average-weights`) and the mix with the weights it started from (`--wise-ft`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from audioclf.runs import RunError

log = logging.getLogger("audioclf")

AVERAGE_FILE = "epoch_average.safetensors"
START_FILE = "start_weights.safetensors"  # in the checkpoints folder, written once
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


class StartMix(TrainerCallback):
    """WiSE-FT (Wortsman et al., 2022; `--wise-ft`): the weights fine-tuning starts from (a trained head on the
    pretrained encoder), copied to the CPU and to `folder` at the start, so that a resumed run mixes with
    the same start; `apply_to` turns the fine-tuned weights into (1 - share) x start + share x fine-tuned.
    Written here because transformers and torch average over a run's own snapshots, not with its start."""

    def __init__(self, share: float, folder: Path, resuming: bool) -> None:
        self.share = share
        self.path = Path(folder) / START_FILE
        self.resuming = resuming
        self.start: dict[str, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        from safetensors.torch import load_file, save_file

        if self.resuming:
            if not self.path.is_file():
                raise RunError(f"cannot resume --wise-ft: {self.path}, the weights fine-tuning started from, "
                               "is missing")
            self.start = load_file(str(self.path))
            return
        self.start = {name: p.detach().to("cpu", copy=True).contiguous() for name, p in model.named_parameters()}
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            save_file(self.start, str(self.path))

    def apply_to(self, model: Any) -> None:
        import torch

        with torch.no_grad():
            for name, param in model.named_parameters():
                start = self.start[name].to(param.device, param.dtype)
                param.mul_(self.share).add_(start, alpha=1 - self.share)

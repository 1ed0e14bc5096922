"""Ctrl-C during training: finish the current step, save a checkpoint, and stop, so the run can be resumed."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from transformers import TrainerCallback


class StopOnInterrupt(TrainerCallback):
    """The first SIGINT asks the Trainer to save and stop after the current step; a second one interrupts
    at once (the default handler is back)."""

    def __init__(self) -> None:
        self.requested = False
        self.stopped = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
            self.stopped = True
        return control

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\naudioclf: stopping after this step and saving a checkpoint (Ctrl-C again to abort now)",
              flush=True)

    @classmethod
    @contextmanager
    def installed(cls, trainer: Any) -> Iterator[StopOnInterrupt]:
        stopper = cls()
        trainer.add_callback(stopper)
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, stopper._request) if in_main_thread else None
        try:
            yield stopper
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous)
            trainer.remove_callback(stopper)

"""`MicroBatcher`: gathers concurrent requests' waveforms into one model call, with a bounded queue.

Written by hand: serving frameworks that batch (Triton, TorchServe, Ray Serve) are whole servers of
their own; this is the few lines of asyncio that `audioclf serve` needs.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

import numpy as np

RunBatch = Callable[[Sequence[np.ndarray]], np.ndarray]


class Overloaded(RuntimeError):
    """More requests are waiting than the queue limit allows; the caller should retry later."""


class MicroBatcher:
    """Collects waveforms for up to `window_s` (or until `max_batch` are waiting) and scores them in one
    call of `run_batch`, on a worker thread, one batch at a time. `max_batch=1` turns batching off.

    >>> batcher = MicroBatcher(clf.probabilities, max_batch=8, window_s=0.005, queue_limit=64)  # doctest: +SKIP
    >>> scores = await batcher.submit(wave)                                                     # doctest: +SKIP
    """

    def __init__(self, run_batch: RunBatch, max_batch: int, window_s: float, queue_limit: int) -> None:
        if max_batch < 1 or window_s < 0 or queue_limit < 1:
            raise ValueError("max_batch and queue_limit must be >= 1 and window_s >= 0")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self.queue_limit = queue_limit
        self.waiting = 0
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, wave: np.ndarray) -> np.ndarray:
        """The scores of one waveform; raises Overloaded when the queue is full."""
        if self.waiting >= self.queue_limit:
            raise Overloaded(f"{self.waiting} requests are already waiting")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.waiting += 1
        try:
            self._queue.put_nowait((wave, future))
            return await future
        finally:
            self.waiting -= 1

    async def _serve_forever(self) -> None:
        while True:
            batch = await self._collect()
            live = [(wave, future) for wave, future in batch if not future.done()]  # skip cancelled requests
            if not live:
                continue
            try:
                scores = await asyncio.to_thread(self.run_batch, [wave for wave, _ in live])
            except Exception as err:  # one failing batch must not stop the server: each request gets the error
                for _, future in live:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), row in zip(live, scores):
                if not future.done():
                    future.set_result(row)

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.window_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

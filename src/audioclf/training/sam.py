"""Sharpness-aware minimization (SAM, Foret et al. 2021): a step's gradient taken at the worst nearby weights.

Written by hand: the maintained SAM packages wrap the optimizer and need a closure passed to `optimizer.step`,
which Trainer never does; here the two backward passes happen inside Trainer's own `training_step`, so
gradient accumulation, clipping, the scheduler and the fused AdamW stay Trainer's."""

from __future__ import annotations

from typing import Any, Callable


def sharpness_aware_backward(backward: Callable[[], Any], params: list[Any], rho: float) -> Any:
    """Run `backward` (one forward-backward pass that adds to each parameter's .grad and returns the loss)
    at the weights, step them `rho` along this batch's own normalised gradient, run it again there, and put
    them back (from a copy: exactly where they were). Each .grad ends as what it held before plus the
    gradient at the stepped weights; the loss returned is the first pass's, at the weights themselves."""
    import torch

    earlier = [p.grad for p in params]  # what earlier micro-batches of an accumulated update summed
    for p in params:
        p.grad = None
    loss = backward()
    moved = [p for p in params if p.grad is not None]
    with torch.no_grad():
        weights = [p.detach().clone() for p in moved]
        grads = [p.grad for p in moved]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        torch._foreach_add_(moved, grads, alpha=float(rho / (norm + 1e-12)))
    for p in params:
        p.grad = None
    backward()
    with torch.no_grad():
        for p, weight in zip(moved, weights):
            p.copy_(weight)
        for p, before in zip(params, earlier):
            if before is not None:
                p.grad = before if p.grad is None else p.grad.add_(before)
    return loss

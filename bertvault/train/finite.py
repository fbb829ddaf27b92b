"""Non-finite training stops before it is logged or saved: the last good checkpoint stays the newest.

Every step records, on the device and without a sync, the first step whose loss (or, without a
grad scaler, whose gradient norm) was not finite; the record is read at logging steps, which sync
anyway. Before a checkpoint is written the weights themselves are checked too: an update can turn
them to inf/NaN while that step's loss and gradients were still finite.
"""

from __future__ import annotations

import torch

from bertvault.errors import TrainingError

ADVICE = "lower --lr, or use --precision fp32 (or bf16 instead of fp16)"


def parameters_finite(module: torch.nn.Module) -> bool:
    """One sync for all tensors; elementwise, so large but finite weights never overflow a norm."""
    flags = [torch.isfinite(p.detach()).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


class Watch:
    def __init__(self, device, last_saved: int | None):
        self.device = device
        self.first_bad = torch.zeros((), dtype=torch.long, device=device.device)
        self.last_saved = last_saved

    def update(self, step: int, losses: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        finite = torch.isfinite(losses).all()
        if grad_norm is not None:
            finite = finite & torch.isfinite(grad_norm)
        self.first_bad = torch.where((self.first_bad == 0) & ~finite, step, self.first_bad)

    def saved(self, step: int) -> None:
        self.last_saved = step

    def check(self, step: int, module: torch.nn.Module | None = None) -> None:
        """Raises TrainingError (exit 8) when any rank saw a non-finite loss, or the weights are not
        finite (`module` given: before a save). Every rank calls it at the same steps."""
        weights_bad = module is not None and not parameters_finite(module)
        weights_flag = torch.tensor(float(weights_bad), device=self.first_bad.device)
        flags = torch.stack([(self.first_bad > 0).float(), weights_flag])
        flags = self.device.all_reduce_sum(flags)
        if not bool(flags.any()):
            return
        first = int(self.first_bad)
        what = (f"the loss became non-finite at step {first}" if first
                else f"the loss became non-finite by step {step}" if flags[0] > 0
                else f"the weights became non-finite by step {step}")
        kept = (f"the newest checkpoint (step {self.last_saved}) was saved before and is untouched"
                if self.last_saved else "no checkpoint was written")
        raise TrainingError(f"{what}, so the run stopped without saving; {kept}; {ADVICE}")

"""Optimizers and learning-rate schedules, as google-research/bert and NVIDIA's LAMB recipe use them.

- Parameter groups: no weight decay on LayerNorm weights and on biases.
- AdamW: torch's (fused kernels where the device has them), β 0.9/0.999, ε 1e-6 by default.
- LAMB (You et al. 2019): Adam's direction scaled per tensor by ‖w‖ / ‖update‖.
- Schedules: linear warmup, then linear (`linear`) or polynomial (`poly`) decay to 0.
"""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger(__name__)


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only: biases and LayerNorm parameters are left alone (as BERT did)."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:  # tied weights appear once
            continue
        seen.add(id(param))
        if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or param.ndim < 2:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Lamb(torch.optim.Optimizer):
    """LAMB: per-tensor trust ratio ‖w‖/‖Adam update + decay‖ (bias-corrected moments, as NVIDIA's)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.01):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0  # a Python int: no device sync to read it (XLA, CUDA)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = exp_avg / (1 - beta1**step)
                v_hat = exp_avg_sq / (1 - beta2**step)
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm, u_norm = p.norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update * trust, alpha=-group["lr"])
        return loss


def build_optimizer(model: torch.nn.Module, name: str, lr: float, weight_decay: float,
                    betas: tuple[float, float], eps: float, fused: bool) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
        except (RuntimeError, TypeError) as exc:  # a device or dtype without fused kernels
            log.info("fused AdamW unavailable (%s); using the foreach implementation", exc)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


class WarmupDecay:
    """lr multiplier at a step: linear warmup to 1, then (1 - progress) ** power down to 0.

    A class rather than a lambda so that LambdaLR can save and restore it with the scheduler.
    """

    def __init__(self, warmup: int, total: int, power: float = 1.0):
        self.warmup = warmup
        self.total = total
        self.power = power

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        remaining = max(self.total - self.warmup, 1)
        progress = min((step - self.warmup) / remaining, 1.0)
        return (1.0 - progress) ** self.power


def build_schedule(optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int,
                   power: float = 0.5) -> torch.optim.lr_scheduler.LambdaLR:
    shape = WarmupDecay(warmup, total, 1.0 if kind == "linear" else power)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, shape)


def default_warmup(steps: int) -> int:
    """10% of the run, at most BERT's 10,000 steps."""
    return min(10_000, math.ceil(0.1 * steps))


def clip_gradients(model: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """Global-norm clipping (BERT clips at 1.0); returns the norm before clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return torch.nn.utils.get_total_norm([p.grad for p in params])

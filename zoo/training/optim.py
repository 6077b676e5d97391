"""Optimizers by name, from the run's settings: torch's for one model, and the same update rules on
stacked tensors for trials that train together (zoo.training.multitrial)."""

import torch

from zoo.model import ZooModel
from zoo.runs.config import TrainConfig
from zoo.runs.plugin_calls import blamed, plugin_bug


def model_optimizers(model: ZooModel, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """The optimizers `model.configure_optimizers` builds with the run's settings, by name; anything else it
    gives (the optimizer itself, not {name: optimizer}) said as its plugin's bug before training starts."""
    with blamed(model, "configure_optimizers"):
        out = model.configure_optimizers(lambda params, **kw: make_optimizer(params, train, **kw))
    if not isinstance(out, dict) or not out or not all(
            isinstance(name, str) and hasattr(opt, "step") and hasattr(opt, "zero_grad") for name, opt in out.items()):
        raise plugin_bug(model, "configure_optimizers", f"gave {type(out).__name__} {str(out)[:80]!r}, not a dict "
                                                        "of optimizers by name ({'main': optimizer})")
    return out


def make_optimizer(params, train: TrainConfig, **overrides) -> torch.optim.Optimizer:
    """Build the optimizer `train.optimizer` names; `overrides` (lr, betas, ...) win over the settings."""
    name = overrides.pop("optimizer", train.optimizer)
    lr = overrides.pop("lr", train.lr)
    wd = overrides.pop("weight_decay", train.weight_decay)
    params = [p for p in params if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **overrides)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **overrides)
    if name == "sgd":
        momentum = overrides.pop("momentum", train.momentum)
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd, **overrides)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd, **overrides)
    raise ValueError(f"unknown optimizer '{name}'")


class StackedOptimizer:
    """torch's Adam / AdamW / SGD / Adagrad update rules on stacked tensors [K, ...], with a learning rate,
    weight decay and momentum per trial. The step count and the schedule's factor are device tensors,
    as in torch's capturable optimizers, so an update recorded in a CUDA graph replays correctly."""

    def __init__(self, name: str, params: dict[str, torch.Tensor], lr, wd, momentum):
        self.name = name
        self.lr, self.wd, self.momentum = lr, wd, momentum  # [K] tensors
        wide = torch.float32 if lr.device.type == "mps" else torch.float64  # float64: torch's own rounding
        self.t = torch.zeros((), dtype=wide, device=lr.device)
        self.factor = torch.ones((), device=lr.device)
        self.decay = bool((wd != 0).any())  # read from the device here, never inside a recorded step
        self.state: dict[str, dict[str, torch.Tensor]] = {k: {} for k in params}
        self.b1, self.b2, self.eps = 0.9, 0.999, 1e-8

    @staticmethod
    def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    def keep(self, idx: torch.Tensor) -> None:
        self.lr, self.wd, self.momentum = self.lr[idx], self.wd[idx], self.momentum[idx]
        self.decay = bool((self.wd != 0).any())
        self.state = {k: {s: v[idx] for s, v in st.items()} for k, st in self.state.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        self.t.add_(1)
        lrs = self.lr * self.factor
        if self.name in ("adam", "adamw"):
            correction1 = 1 - torch.pow(self.b1, self.t)
            correction2 = (1 - torch.pow(self.b2, self.t)).sqrt()
        for k, p in params.items():
            g = grads[k]
            lr, wd = self._b(lrs, p), self._b(self.wd, p)
            st = self.state[k]
            if self.name == "adamw":
                p.mul_(1 - lr * wd)
            elif self.decay:
                g = g + wd * p
            if self.name in ("adam", "adamw"):
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                st["m"].lerp_(g, 1 - self.b1)
                st["v"].mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
                denom = (st["v"].sqrt() / correction2).add_(self.eps)
                p.sub_((lr.to(correction1.dtype) / correction1).float() * st["m"] / denom)
            elif self.name == "sgd":
                mom = self._b(self.momentum, p)
                if "buf" not in st:
                    st["buf"] = g.clone()
                else:
                    st["buf"].mul_(mom).add_(g)
                d = torch.where(mom != 0, st["buf"], g)
                p.sub_(lr * d)
            else:  # adagrad
                if not st:
                    st["sum"] = torch.zeros_like(p)
                st["sum"].addcmul_(g, g, value=1)
                p.sub_(lr * g / (st["sum"].sqrt() + 1e-10))

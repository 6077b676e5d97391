"""Many trials in one vectorised step: trials whose tensors have the same shapes (the same model config)
and differ only in learning rate, weight decay, momentum, seed or patience train together, with
`torch.func.stack_module_state` + `vmap`: one kernel launch per layer for all of them instead of one
per trial, which is what keeps a GPU busy with small models.

Each trial is trained as the engine would train it alone: its own seeded initialisation and batch
order, its own optimizer state (Adam, AdamW, SGD or Adagrad, written out with torch's update rules),
its own early stopping; the losses agree with `zoo.cv.fit` of the trial alone to float rounding.

What cannot be stacked is refused with a ConfigError: differing model configs, models with buffers
(batch norm), custom training steps (VAE warm-up, GANs), pruning or iterative autoencoding, bf16,
dynamic binarisation.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any, Callable

import torch
from torch import nn

from zoo.config import TrainConfig
from zoo.cv import FitResult, reduce_history
from zoo.data import ImageData
from zoo.engine import EVAL_BATCH, batches
from zoo.errors import ConfigError
from zoo.model import Batch, ZooModel

MAY_DIFFER = {"lr", "weight_decay", "momentum", "seed", "patience"}


class _Loss(nn.Module):
    """forward(x, y) -> the model's training losses, so `functional_call` can drive `loss`."""

    def __init__(self, model: ZooModel, validation: bool = False):
        super().__init__()
        self.model = model
        self.validation = validation

    def forward(self, x, y):
        batch = Batch(x, y)
        return self.model.validation_step(batch) if self.validation else self.model.loss(batch)


def check_stackable(cls: type, model_cfgs: list, train_cfgs: list[TrainConfig]) -> None:
    if not train_cfgs:
        raise ConfigError("no trials to train")
    if any(m != model_cfgs[0] for m in model_cfgs):
        raise ConfigError("trials train together only with the same model config (the same tensor shapes)")
    first = dataclasses.asdict(train_cfgs[0])
    for t in train_cfgs[1:]:
        differ = {k for k, v in dataclasses.asdict(t).items() if first[k] != v} - MAY_DIFFER
        if differ:
            raise ConfigError(f"trials train together only when they differ in {', '.join(sorted(MAY_DIFFER))}; "
                              f"these differ: {', '.join(sorted(differ))}")
    t = train_cfgs[0]
    if t.prune_every or t.iterative_passes > 1:
        raise ConfigError("pruning and iterative autoencoding are not vectorised; train these trials one by one")
    if t.bf16 or t.binarize == "dynamic":
        raise ConfigError("bf16 and dynamic binarisation are not vectorised; train these trials one by one")
    if t.optimizer not in ("adam", "adamw", "sgd", "adagrad"):
        raise ConfigError(f"optimizer '{t.optimizer}' is not vectorised")
    if cls.training_step is not ZooModel.training_step:
        raise ConfigError(f"model '{cls.name}' has its own training step; its trials train one by one")


class _Optim:
    """torch's Adam / AdamW / SGD / Adagrad update rules on stacked tensors [K, ...], with a learning rate,
    weight decay and momentum per trial."""

    def __init__(self, name: str, params: dict[str, torch.Tensor], lr, wd, momentum):
        self.name = name
        self.lr, self.wd, self.momentum = lr, wd, momentum  # [K] tensors
        self.step = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {k: {} for k in params}
        self.b1, self.b2, self.eps = 0.9, 0.999, 1e-8

    @staticmethod
    def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    def keep(self, idx: torch.Tensor) -> None:
        self.lr, self.wd, self.momentum = self.lr[idx], self.wd[idx], self.momentum[idx]
        self.state = {k: {s: v[idx] for s, v in st.items()} for k, st in self.state.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], factor: float) -> None:
        self.step += 1
        t = self.step
        for k, p in params.items():
            g = grads[k]
            lr, wd = self._b(self.lr * factor, p), self._b(self.wd, p)
            st = self.state[k]
            if self.name == "adamw":
                p.mul_(1 - lr * wd)
            elif bool((self.wd != 0).any()):
                g = g + wd * p
            if self.name in ("adam", "adamw"):
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                st["m"].lerp_(g, 1 - self.b1)
                st["v"].mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
                step_size = lr / (1 - self.b1 ** t)
                denom = (st["v"].sqrt() / math.sqrt(1 - self.b2 ** t)).add_(self.eps)
                p.sub_(step_size * st["m"] / denom)
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


def train_together(cls: type, model_cfg, train_cfgs: list[TrainConfig], data: ImageData, *,
                   report: Callable[[int, int, dict[str, Any]], bool] | None = None, metric: str | None = None,
                   reduce: str = "best", keep_models: bool = False) -> list[FitResult]:
    """Train one model per TrainConfig, all at once; `report(k, epoch, record)` is called for every trial
    after every epoch and may return False to stop that trial (a pruner). Returns a FitResult per trial."""
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    check_stackable(cls, [model_cfg] * len(train_cfgs), train_cfgs)
    device = data.train_x.device
    models = []
    for t in train_cfgs:
        torch.manual_seed(t.seed)
        models.append(cls(model_cfg, data.shape, data.num_classes).to(device))
    if any(True for _ in models[0].buffers()):
        raise ConfigError("models with buffers (batch norm) are not vectorised; train these trials one by one")
    params, _ = stack_module_state(models)
    params = {k: v.detach().clone() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    train_net, val_net = _Loss(base), _Loss(base, validation=True)
    names = list(params)

    def loss_fn(p, x, y):
        out = functional_call(train_net, {f"model.{k}": v for k, v in p.items()}, (x, y))
        return out["loss"], out

    def val_fn(p, x, y):
        return functional_call(val_net, {f"model.{k}": v for k, v in p.items()}, (x, y))

    step = vmap(grad_and_value(loss_fn, has_aux=True), randomness="different")
    validate = vmap(val_fn, in_dims=(0, None, None), randomness="different")

    t0 = train_cfgs[0]
    as_tensor = lambda vals: torch.tensor(vals, dtype=torch.float32, device=device)  # noqa: E731
    opt = _Optim(t0.optimizer, params, as_tensor([t.lr for t in train_cfgs]),
                 as_tensor([t.weight_decay for t in train_cfgs]), as_tensor([t.momentum for t in train_cfgs]))
    shuffles = [torch.Generator().manual_seed(t.seed) for t in train_cfgs]
    active = list(range(len(train_cfgs)))  # trial indices still training, in stack order
    histories: list[list[dict]] = [[] for _ in train_cfgs]
    best = [(None, 0, None)] * len(train_cfgs)  # (value, epoch, params)
    bad = [0] * len(train_cfgs)
    stopped = ["completed"] * len(train_cfgs)
    monitor = cls.monitor
    n, bs = data.train_x.shape[0], t0.batch_size
    start_all = time.perf_counter()
    for epoch in range(1, t0.epochs + 1):
        factor = 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(t0.epochs, 1))) if t0.lr_schedule == "cosine" else 1.0
        base.train()
        orders = [torch.randperm(n, generator=shuffles[k]).to(device) for k in active]
        sums: dict[str, torch.Tensor] = {}
        start = time.perf_counter()
        for s in range(0, n, bs):
            idx = torch.stack([o[s:s + bs] for o in orders])                       # [K, B]
            xs = data.train_x[idx].float().div_(255.0)
            ys = data.train_y[idx]
            grads, (_, out) = step(params, xs, ys)
            opt.update(params, grads, factor)
            for key, v in out.items():
                v = v.detach().float() * idx.shape[1]
                sums[key] = sums[key] + v if key in sums else v
        seconds = time.perf_counter() - start
        base.eval()
        vsums: dict[str, torch.Tensor] = {}
        nv = data.val_x.shape[0]
        with torch.no_grad():
            for batch in batches(data.val_x, data.val_y, max(EVAL_BATCH, bs)):
                for key, v in validate(params, batch.x, batch.y).items():
                    v = v.detach().float() * len(batch)
                    vsums[key] = vsums[key] + v if key in vsums else v
        train_m = {k: (v / n).tolist() for k, v in sums.items()}
        val_m = {k: (v / max(nv, 1)).tolist() for k, v in vsums.items()}
        keep = []
        for j, k in enumerate(active):
            record = {"epoch": epoch, **{f"train_{m}": v[j] for m, v in train_m.items()},
                      **{f"val_{m}": v[j] for m, v in val_m.items()},
                      "lr": train_cfgs[k].lr * factor, "seconds": round(seconds / len(active), 3)}
            watched = (val_m if nv else train_m).get(monitor, [None] * len(active))[j] if monitor else None
            improved = monitor is None or best[k][0] is None or watched < best[k][0]
            if improved:
                best[k] = (watched, epoch, {name: params[name][j].detach().clone() for name in names}
                           if keep_models else None)
                bad[k] = 0
            else:
                bad[k] += 1
            record["best"] = improved
            histories[k].append(record)
            go_on = True
            if report is not None and not report(k, epoch, record):
                stopped[k], go_on = "pruned", False
            elif train_cfgs[k].patience and bad[k] >= train_cfgs[k].patience:
                stopped[k], go_on = "early_stopping", False
            elif not all(math.isfinite(v) for v in (record.get(f"val_{monitor}", 0.0), record.get("train_loss", 0.0))):
                stopped[k], go_on = "diverged", False
            if go_on:
                keep.append(j)
        if len(keep) < len(active):
            sel = torch.tensor(keep, dtype=torch.long, device=device)
            params = {k2: v[sel].clone() for k2, v in params.items()}
            opt.keep(sel)
            active = [active[j] for j in keep]
        if not active:
            break
    total = time.perf_counter() - start_all
    results = []
    metric = metric or monitor or "loss"
    for k, t in enumerate(train_cfgs):
        model = None
        if keep_models and best[k][2] is not None:
            model = cls(model_cfg, data.shape, data.num_classes).to(device)
            model.load_state_dict(best[k][2])
            model.eval()
        results.append(FitResult(value=reduce_history(histories[k], metric, reduce) if histories[k] else math.nan,
                                 best_value=best[k][0], best_epoch=best[k][1], epochs=len(histories[k]),
                                 seconds=total / len(train_cfgs), stopped=stopped[k], history=histories[k],
                                 model=model))
    return results

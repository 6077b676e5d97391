"""Optimizers by name, from the run's settings."""

import torch

from zoo.runs.config import TrainConfig


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

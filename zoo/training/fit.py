"""Training one configuration in memory, as `zoo search` trials and `zoo cv` folds are trained: no run
folder, the best epoch's weights kept and restored, the validation metric reduced over the epochs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from zoo.console import quiet
from zoo.data import ImageData
from zoo.errors import ConfigError
from zoo.model import build_seeded
from zoo.runs.config import TrainConfig
from zoo.training.callbacks import callbacks_for, check
from zoo.training.engine import Callback, Trainer
from zoo.training.regularize import plain_state_dict

REDUCE = ("best", "mean", "last")


class UnrecordedMetric(ConfigError):
    """A metric to score by that the model does not record: the command's mistake, whatever data it trains on."""


@dataclass
class FitResult:
    value: float                      # the validation metric reduced over the epochs (REDUCE)
    best_value: float | None          # the best epoch's validation metric
    best_epoch: int
    epochs: int
    seconds: float
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, float] | None = None
    model: Any = None


class KeepBest(Callback):
    """Keeps the best epoch's weights in memory (no run folder), restored by `restore`."""

    def __init__(self):
        self.state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer, epoch, record) -> None:
        if record.get("best"):
            self.state = {k: v.detach().clone() for k, v in plain_state_dict(trainer.model).items()}

    def restore(self, model) -> None:
        if self.state is not None:
            model.load_state_dict(self.state, strict=True)


def reduce_history(history: list[dict[str, Any]], metric: str, reduce: str = "best",
                   maximized: tuple[str, ...] = ()) -> float:
    """The `metric` over the epochs: its best, mean or last value. The best is the lowest, or the highest of a
    metric better when higher (`maximized`, the model class's: accuracy). A metrics.jsonl key (`val_loss`,
    `train_loss`) as written; a bare name (`loss`) is the validation one."""
    key = metric if metric.startswith(("val_", "train_")) else f"val_{metric}"
    values = [r[key] for r in history if key in r]
    if not values:
        have = sorted(k[4:] for r in history[:1] for k in r if k.startswith("val_"))
        raise UnrecordedMetric(f"no validation '{metric}' was recorded",
                          f"The model's validation metrics are: {', '.join(have) or 'none (is val_fraction 0?)'}.")
    if reduce == "best":
        return max(values) if key.split("_", 1)[1] in maximized else min(values)
    if reduce == "mean":
        return sum(values) / len(values)
    if reduce == "last":
        return values[-1]
    raise ConfigError(f"unknown reduction '{reduce}'", f"Use one of {', '.join(REDUCE)}.")


def fit(cls: type, model_cfg, train_cfg: TrainConfig, data: ImageData, *, callbacks=(),
        log: Callable[[str], None] = quiet, metric: str | None = None, reduce: str = "best",
        test: bool = False, keep_model: bool = False) -> FitResult:
    """Train one configuration on `data` without a run folder (regularisers as configured)."""
    if data.val_x.shape[0] == 0:
        raise ConfigError("there is no validation split to score the configuration on",
                          "Set val_fraction above 0 (or use cross-validation).")
    if "val" in data.reused:  # a score on the training images would rank configurations by memorising
        raise ConfigError(f"no validation score: {data.caveat()}",
                          "Cross-validate instead (each fold holds out images of its own), or add images.")
    regs = callbacks_for(train_cfg)
    net = build_seeded(cls, model_cfg, data, train_cfg.seed, data.train_x.device)
    check(regs, net)
    keep = KeepBest()
    trainer = Trainer(net, data, train_cfg, run_dir=None, callbacks=[*regs, *callbacks, keep], log=log,
                      progress=False)
    start = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - start
    metric = metric or net.monitor or "loss"
    value = reduce_history(result.history, metric, reduce, cls.maximized)
    keep.restore(net)
    net.eval()
    test_metrics = trainer.evaluate(data.test_x, data.test_y) if test and has_own_test(data) else None
    return FitResult(value=value, best_value=result.best_value, best_epoch=result.best_epoch,
                     epochs=len(result.history), seconds=seconds, stopped=result.stopped, history=result.history,
                     test=test_metrics, model=net if keep_model else None)


def has_own_test(data: ImageData) -> bool:
    """Whether the test split holds images of its own (a tiny folder's reuses the training images)."""
    return data.test_x.shape[0] > 0 and "test" not in data.reused

"""Training one configuration in memory, as `zoo search` trials and `zoo cv` folds are trained: no run
folder, the best epoch's weights kept and restored, the validation metric reduced over the epochs."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

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
SPLITS = ("val_", "train_")  # the prefixes of metrics.jsonl's metric keys
PROBE_IMAGES = (4, 1024)  # images of the epoch that lists the metrics: a few, else (a VampPrior's hundreds of
                          # pseudo-inputs need as many) a thousand


def metric_key(name: str) -> str:
    """The metrics.jsonl key of an objective name: `val_loss` and `train_loss` as written, `loss` the
    validation one (`val_loss`)."""
    return name if name.startswith(SPLITS) else f"val_{name}"


class UnrecordedMetric(ConfigError):
    """A metric to score by that the model does not record: the command's mistake, whatever data it trains on."""


@dataclass
class FitResult:
    value: float                      # the validation metric reduced over the epochs (REDUCE)
    best_value: float | None          # the early-stopping epoch's monitored value
    best_epoch: int                   # the early-stopping epoch (the monitor's best)
    epochs: int
    seconds: float
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, float] | None = None
    model: Any = None
    scored_epoch: int | None = None   # the epoch `value` is of (None: reduce mean scores no single epoch)
    test_epoch: int | None = None     # the epoch whose weights were kept, and `test` measured


class KeepScored(Callback):
    """Keeps in memory (no run folder) the weights of the epoch the score is of: the scored metric's best epoch
    (reduce best) or its last (last); the early-stopping epoch where no single epoch is scored (mean). The test
    figure is then of the weights the score is of, not of another epoch's."""

    def __init__(self, key: str, reduce: str, higher: bool):
        self.key, self.reduce, self.higher = key, reduce, higher
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch: int | None = None
        self.value: float | None = None

    def _kept(self, record: dict[str, Any]) -> bool:
        if self.reduce == "mean":
            return bool(record.get("best"))
        if self.key not in record:
            return False
        value = record[self.key]
        if self.reduce == "best" and self.value is not None and not (
                value > self.value if self.higher else value < self.value):
            return False  # not better: the first best epoch is the one min()/max() scores
        self.value = value
        return True

    def on_epoch_end(self, trainer, epoch, record) -> None:
        if self._kept(record):
            self.epoch = epoch
            self.state = {k: v.detach().clone() for k, v in plain_state_dict(trainer.model).items()}

    def restore(self, model) -> None:
        if self.state is not None:
            model.load_state_dict(self.state, strict=True)


def reduce_history(history: list[dict[str, Any]], metric: str, reduce: str = "best",
                   maximized: tuple[str, ...] = ()) -> float:
    """The `metric` over the epochs: its best, mean or last value. The best is the lowest, or the highest of a
    metric better when higher (`maximized`, the model class's: accuracy). A metrics.jsonl key (`val_loss`,
    `train_loss`) as written; a bare name (`loss`) is the validation one."""
    key = metric_key(metric)
    values = [r[key] for r in history if key in r]
    if not values:
        raise unrecorded(metric, history)
    if reduce == "best":
        return max(values) if key.split("_", 1)[1] in maximized else min(values)
    if reduce == "mean":
        return sum(values) / len(values)
    if reduce == "last":
        return values[-1]
    raise ConfigError(f"unknown reduction '{reduce}'", f"Use one of {', '.join(REDUCE)}.")


def unrecorded(metric: str, history: list[dict[str, Any]], said: str = "") -> UnrecordedMetric:
    """The refusal of a `metric` the epochs of `history` do not record (`said`: another first line), listing those
    of its kind that they do: validation metrics by their bare names, training ones (train_loss) as written."""
    train = metric.startswith("train_")
    kind = "training" if train else "validation"
    have = sorted(k if train else k[4:] for r in history[:1] for k in r if k.startswith("train_" if train else "val_"))
    return UnrecordedMetric(said or f"no {kind} '{metric}' was recorded",
                            f"The model's {kind} metrics are: "
                            + (', '.join(have) or ('none' if train else 'none (is val_fraction 0?)'))
                            + (": score by one of them with --metric NAME (metric= in Python)." if have else "."))


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
    metric = metric or net.monitor or "loss"
    key = metric_key(metric)
    keep = KeepScored(key, reduce, key.split("_", 1)[1] in cls.maximized)
    trainer = Trainer(net, data, train_cfg, run_dir=None, callbacks=[*regs, *callbacks, keep], log=log,
                      progress=False)
    start = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - start
    value = reduce_history(result.history, metric, reduce, cls.maximized)
    keep.restore(net)
    net.eval()
    test_metrics = trainer.evaluate(data.test_x, data.test_y) if test and has_own_test(data) else None
    return FitResult(value=value, best_value=result.best_value, best_epoch=result.best_epoch,
                     epochs=len(result.history), seconds=seconds, stopped=result.stopped, history=result.history,
                     test=test_metrics, model=net if keep_model else None,
                     scored_epoch=None if reduce == "mean" else keep.epoch, test_epoch=keep.epoch)


def has_own_test(data: ImageData) -> bool:
    """Whether the test split holds images of its own (a tiny folder's reuses the training images)."""
    return data.test_x.shape[0] > 0 and "test" not in data.reused


class _Listed(Exception):
    """Ends the probe's training after its first epoch, carrying that epoch's metric keys."""

    def __init__(self, keys: list[str]):
        super().__init__()
        self.keys = keys


def epoch_keys(cls: type, model_cfg, train_cfg: TrainConfig, data: ImageData, n: int) -> list[str]:
    """The metrics.jsonl keys of the metrics one epoch records, trained as `fit` trains (with the configuration's
    regularisers) on `n` images, on the CPU: which names a model records is told by training it, for any plugin,
    with nothing to declare. Raises what that training raises (a configuration that cannot train on `n`)."""
    class Stop(Callback):
        def on_epoch_end(self, trainer, epoch, record):
            raise _Listed([k for k in record if k.startswith(SPLITS)])

    val_x, val_y = (data.val_x, data.val_y) if data.val_x.shape[0] else (data.train_x, data.train_y)
    tiny = dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n], val_x=val_x[:n],
                               val_y=val_y[:n], test_x=data.test_x[:0], test_y=data.test_y[:0], reused={},
                               files={}).to("cpu")
    one_epoch = dataclasses.replace(train_cfg, epochs=1, patience=0, plot_every=0, compile=False, cuda_graph=False)
    try:
        fit(cls, model_cfg, one_epoch, tiny, callbacks=[Stop()])
    except _Listed as listed:
        return listed.keys
    raise RuntimeError("the probe's epoch ended without its callback")  # (fit calls it every epoch)


def probe_keys(candidates: Iterable[tuple[type, Any, TrainConfig, ImageData]],
               refused: list[Exception] | None = None) -> list[str] | None:
    """The metric keys of one epoch (epoch_keys) of the first candidate configuration (cls, model config, training
    config, data) that trains on a few images, else of the first that trains on a thousand (a VampPrior's hundreds
    of pseudo-inputs need as many); None where none does (the real training then says why). `refused`, where given,
    receives why each candidate failed, with the most images it was tried on (when none trained)."""
    candidates = list(candidates)
    why: dict[int, Exception] = {}
    for n in PROBE_IMAGES:
        for i, (cls, model_cfg, train_cfg, data) in enumerate(candidates):
            if n > PROBE_IMAGES[0] and data.train_x.shape[0] <= PROBE_IMAGES[0]:
                continue  # no more images to try with
            try:
                return epoch_keys(cls, model_cfg, train_cfg, data, n)
            except Exception as e:  # noqa: BLE001 - a configuration that cannot be built or trained: its training says
                why[i] = e
    if refused is not None:
        refused.extend(why[i] for i in sorted(why))
    return None


def check_recorded(cls: type, model_cfg, train_cfg: TrainConfig, data: ImageData, metric: str) -> None:
    """Refuse (UnrecordedMetric) a `metric` to score by that one epoch of this configuration does not record,
    before any real training; say nothing where the configuration cannot train on the probe's images."""
    keys = probe_keys([(cls, model_cfg, train_cfg, data)])
    if keys is not None and metric_key(metric) not in keys:
        raise unrecorded(metric, [{k: 0.0 for k in keys}])

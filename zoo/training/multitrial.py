"""Many trials in one vectorised step: trials whose tensors have the same shapes and differ only in
learning rate, weight decay, momentum, seed, patience or a model hyperparameter the plugin reads from a
tensor made with `zoo.hyper_buffer` (dropout p, a denoiser's noise level, a VAE's β) train together, with
`torch.func.stack_module_state` + `vmap`: one kernel launch per layer for all of them instead of one
per trial, which is what keeps a GPU busy with small models.

The trials go through the same epoch loop as a run alone (zoo.training.epochs.run_epochs): only the
batch step differs, and every quantity carries a trial axis. Each trial is trained as the engine would
train it alone: its own seeded initialisation and batch
order, its own optimizer state (Adam, AdamW, SGD or Adagrad, written out with torch's update rules),
its own hyperparameter values, its own early stopping. Deterministic models agree with `zoo.training.fit.fit` of
the trial alone to float rounding; in stochastic ones (dropout, noise, a VAE's sampling) each trial
draws its own random numbers, from another stream than it would alone.

What cannot be stacked is refused with a ConfigError: model configs differing elsewhere, tensors of
different shapes (dropout 0 beside dropout > 0 adds layers), models with saved buffers (batch norm),
custom training steps (GANs), state carried between steps, pruning or iterative autoencoding, bf16, dynamic
binarisation.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from typing import Any, Callable

import torch
from torch import nn

from zoo.console import to_stderr
from zoo.data import ImageData
from zoo.errors import ConfigError
from zoo.model import (Batch, StepContext, ZooModel, build_seeded, has_own_training_step, hyper_keys, schedule_names,
                       step_state_names)
from zoo.runs.config import TrainConfig
from zoo.training.epochs import (EpochEnd, EpochLosses, LossSums, Tracker, fixed_draws, lr_factor, run_epochs,
                                 validation_means)
from zoo.training.fit import FitResult, reduce_history
from zoo.training.graphstep import WARMUP_STEPS, NumberWatch, on_side_stream, try_recording
from zoo.training.optim import StackedOptimizer

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


def _on_meta(cls: type, model_cfg, shape, num_classes: int) -> ZooModel:
    with torch.device("meta"):  # no memory: only names, shapes and what the constructor registered
        return cls(model_cfg, shape, num_classes)


def layout(model: ZooModel) -> tuple:
    """Names and shapes of a model's parameters and buffers, and which buffers are saved."""
    saved = set(model.state_dict())
    return (tuple((k, tuple(v.shape)) for k, v in model.named_parameters()),
            tuple((k, tuple(v.shape), k in saved) for k, v in model.named_buffers()))


def vectorizable_keys(cls: type, model_cfg, shape=(1, 28, 28), num_classes: int = 0) -> list[str]:
    """The config keys trials of this model may differ in and still train together: those whose values
    the model holds in `hyper_buffer` tensors."""
    return sorted(hyper_keys(_on_meta(cls, model_cfg, shape, num_classes)))


def _shared(model: ZooModel, model_cfg) -> dict[str, Any]:
    """What trials must share to train together: the config without the keys held in hyper buffers. The
    rest of such a key (a denoiser's noise kind) shows in the buffers' names, which `layout` compares."""
    free = hyper_keys(model)
    return {k: v for k, v in dataclasses.asdict(model_cfg).items() if k not in free}


def group_key(cls: type, model_cfg, train_cfg: TrainConfig, shape, num_classes: int = 0) -> str:
    """Trials with equal keys may train together (if `check_stackable` agrees)."""
    model = _on_meta(cls, model_cfg, shape, num_classes)
    train = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in MAY_DIFFER}
    return json.dumps([cls.name, _shared(model, model_cfg), train, layout(model)], sort_keys=True, default=str)


def check_stackable(cls: type, model_cfgs: list, train_cfgs: list[TrainConfig], shape, num_classes: int = 0) -> None:
    if not train_cfgs:
        raise ConfigError("no trials to train")
    if len(model_cfgs) != len(train_cfgs):
        raise ConfigError(f"{len(model_cfgs)} model configs for {len(train_cfgs)} trials")
    models = [_on_meta(cls, m, shape, num_classes) for m in model_cfgs]
    shared = _shared(models[0], model_cfgs[0])
    for model, m in zip(models[1:], model_cfgs[1:]):
        differ = {k for k, v in _shared(model, m).items() if shared.get(k) != v}
        if differ:
            free = ", ".join(sorted(hyper_keys(models[0]))) or "none here"
            raise ConfigError(f"trials train together only when their model configs differ in values held in "
                              f"tensors ({free}); these differ: {', '.join(sorted(differ))}")
    first = dataclasses.asdict(train_cfgs[0])
    for t in train_cfgs[1:]:
        differ = {k for k, v in dataclasses.asdict(t).items() if first[k] != v} - MAY_DIFFER
        if differ:
            raise ConfigError(f"trials train together only when they differ in {', '.join(sorted(MAY_DIFFER))}; "
                              f"these differ: {', '.join(sorted(differ))}")
    t = train_cfgs[0]
    if t.prune_every or t.iterative_passes > 1 or t.train_callbacks:
        raise ConfigError("pruning, iterative autoencoding and other training callbacks are not vectorised; "
                          "train these trials one by one")
    if t.bf16 or t.binarize == "dynamic":
        raise ConfigError("bf16 and dynamic binarisation are not vectorised; train these trials one by one")
    if t.optimizer not in ("adam", "adamw", "sgd", "adagrad"):
        raise ConfigError(f"optimizer '{t.optimizer}' is not vectorised")
    if has_own_training_step(cls):
        raise ConfigError(f"model '{cls.name}' has its own training step; its trials train one by one")
    layouts = [layout(m) for m in models]
    if any(lay != layouts[0] for lay in layouts):
        raise ConfigError("trials train together only when their tensors have the same names and shapes "
                          "(dropout 0 beside dropout > 0 adds layers, a noise kind names its level's tensor); "
                          "train them in separate groups")
    carried = step_state_names(models[0])
    if carried:
        raise ConfigError(f"model '{cls.name}' carries state from one step to the next ({', '.join(sorted(carried))}), "
                          "which one shared step cannot keep per trial; its trials train one by one")
    if any(saved for _, _, saved in layouts[0][1]):
        raise ConfigError("models with saved buffers (batch norm) are not vectorised; train these trials one by one")


class _Stack:
    """The trials still training: stacked parameters, hyperparameters and optimizer state, and the step
    that trains all of them on one batch. With `record` (cuda_graph on a CUDA device) that step, from
    gathering the batches to the update and the loss sums, is recorded once in a CUDA graph and
    replayed: one launch a batch for every trial together."""

    def __init__(self, params, hypers, opt: StackedOptimizer, step, data: ImageData, batch_size: int, record: bool,
                 log: Callable[[str], None]):
        self.params, self.hypers, self.opt, self.step = params, hypers, opt, step
        self.data, self.record, self.log = data, record, log
        k = next(iter(params.values())).shape[0]
        self.index = torch.zeros((k, batch_size), dtype=torch.long, device=data.train_x.device)
        self.sums = LossSums()  # a value per trial
        self.graph = None
        self.eager_steps = 0
        if record:
            torch.backends.cudnn.benchmark = True  # static shapes: let cuDNN pick its fastest kernels once

    def _train(self, index: torch.Tensor) -> None:
        xs = self.data.train_x[index].float().div_(255.0)                  # [K, B, C, H, W]
        grads, (_, out) = self.step(self.params, self.hypers, xs, self.data.train_y[index])
        self.opt.update(self.params, grads)
        self.sums.add(out, index.shape[1])

    def _eager(self, index: torch.Tensor) -> None:
        on_side_stream(lambda: self._train(index), index.device, side=self.record)

    def train_batch(self, index: torch.Tensor) -> None:
        """One step of every trial; index: [K, b] rows of the training set, a row of indices per trial."""
        if index.shape != self.index.shape:  # the short last batch of an epoch
            return self._eager(index)
        self.index.copy_(index)
        if self.graph is None and self.record and self.eager_steps >= WARMUP_STEPS:
            self.graph = try_recording(lambda: self._train(self.index), index.device, self.log)
            self.record = self.graph is not None  # not recordable: every later step eager
        if self.graph is not None:
            self.graph.replay()
        else:
            self._eager(self.index)
            self.eager_steps += 1

    def keep(self, sel: torch.Tensor) -> None:
        """Drop the trials not in `sel`; the shapes change, so a recorded step is recorded again."""
        self.params = {k: v[sel].clone() for k, v in self.params.items()}
        self.hypers = {k: v[sel] for k, v in self.hypers.items()}
        self.opt.keep(sel)
        self.sums.keep(sel)
        self.index = self.index[sel].clone()
        self.graph, self.eager_steps = None, 0

    def stop_recording(self) -> None:
        self.graph, self.record = None, False


def _stack_trials(cls: type, model_cfgs: list, train_cfgs: list[TrainConfig], data: ImageData,
                  log: Callable[[str], None]):
    """Build every trial's model from its own seed and stack them: returns the `_Stack` that trains them,
    the vmapped validation step, and the shared module (on the meta device) the steps call."""
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    device = data.train_x.device
    models = [build_seeded(cls, m, data, t.seed, device)
              for m, t in zip(model_cfgs, train_cfgs)]
    for model, t in zip(models, train_cfgs):
        model.check_training(t, data)  # as the Trainer asks each model, before anything is stacked
    params, buffers = stack_module_state(models)
    params = {k: v.detach().clone() for k, v in params.items()}
    schedules = schedule_names(models[0])
    hypers = {k: v.clone() for k, v in buffers.items() if k not in schedules}  # each trial's dropout p, noise, β
    base = copy.deepcopy(models[0]).to("meta")
    for name in schedules:  # one real tensor on the shared module, which base.before_step changes for all trials
        owner, _, leaf = name.rpartition(".")
        setattr(base.get_submodule(owner), leaf, buffers[name][0].clone())
    train_net, val_net = _Loss(base), _Loss(base, validation=True)

    def tensors(p, h):
        return {f"model.{k}": v for k, v in (*p.items(), *h.items())}

    def loss_fn(p, h, x, y):
        out = functional_call(train_net, tensors(p, h), (x, y))
        return out["loss"], out

    def val_fn(p, h, x, y):
        return functional_call(val_net, tensors(p, h), (x, y))

    t0 = train_cfgs[0]
    as_tensor = lambda vals: torch.tensor(vals, dtype=torch.float32, device=device)  # noqa: E731
    opt = StackedOptimizer(t0.optimizer, params, as_tensor([t.lr for t in train_cfgs]),
                 as_tensor([t.weight_decay for t in train_cfgs]), as_tensor([t.momentum for t in train_cfgs]))
    record = t0.cuda_graph and device.type == "cuda" and not has_own_training_step(cls)
    stack = _Stack(params, hypers, opt, vmap(grad_and_value(loss_fn, has_aux=True), randomness="different"),
                   data, t0.batch_size, record=record, log=log)
    validate = vmap(val_fn, in_dims=(0, 0, None, None), randomness="different")
    return stack, validate, base


def _per_trial(means: dict[str, list[float]], k: int) -> list[dict[str, float]]:
    """{key: [a value per trial]} as one {key: value} per trial."""
    return [{key: values[j] for key, values in means.items()} for j in range(k)]


class _Trial:
    """One trial while it trains with others: its history, its progress (zoo.training.epochs.Tracker, as a run
    alone keeps it) and its best weights."""

    def __init__(self, index: int, train: TrainConfig):
        self.index = index  # its place among the trials given
        self.history: list[dict[str, Any]] = []
        self.tracker = Tracker(train.patience)
        self.best_params = None

    def add(self, end: EpochEnd, params: Callable[[], dict] | None) -> None:
        """Append an epoch's row; `params()` copies the trial's weights (asked only when they are its best)."""
        if end.improved:
            self.best_params = params() if params is not None else None
        end.record.setdefault("best", False)
        self.history.append(end.record)

    def goes_on(self, end: EpochEnd, pruned: bool) -> bool:
        """Whether the trial trains another epoch: not if pruned, stopped early or diverged."""
        if pruned:
            self.tracker.stop("pruned")
            return False
        return end.stop is None


def train_together(cls: type, model_cfgs, train_cfgs: list[TrainConfig], data: ImageData, *,
                   report: Callable[[int, int, dict[str, Any]], bool] | None = None, metric: str | None = None,
                   reduce: str = "best", keep_models: bool = False,
                   log: Callable[[str], None] = to_stderr) -> list[FitResult]:
    """Train one model per (model config, TrainConfig), all at once; `model_cfgs` is a list or one config
    for every trial. `report(k, epoch, record)` is called for every trial after every epoch and may
    return False to stop that trial (a pruner). Returns a FitResult per trial."""
    if not isinstance(model_cfgs, (list, tuple)):
        model_cfgs = [model_cfgs] * len(train_cfgs)
    check_stackable(cls, model_cfgs, train_cfgs, data.shape, data.num_classes)
    stack, validate_step, base = _stack_trials(cls, model_cfgs, train_cfgs, data, log)
    watch = NumberWatch(base, log)
    device = data.train_x.device
    trials = [_Trial(k, t) for k, t in enumerate(train_cfgs)]
    shuffles = [torch.Generator().manual_seed(t.seed) for t in train_cfgs]
    active = list(range(len(train_cfgs)))  # trial indices still training, in stack order
    monitor = cls.monitor
    t0 = train_cfgs[0]
    n, bs = data.train_x.shape[0], t0.batch_size
    start_all = time.perf_counter()

    def train_epoch(epoch: int) -> EpochLosses:
        """Every active trial's steps of `epoch`, at once: each its own batch order."""
        factor = lr_factor(t0, epoch)
        stack.opt.factor.fill_(factor)
        base.train()
        orders = torch.stack([torch.randperm(n, generator=shuffles[k]) for k in active]).to(device)  # [K, n]
        stack.sums.zero()
        ctx = StepContext({}, epoch)
        ctx.steps_per_epoch = math.ceil(n / bs)
        start = time.perf_counter()
        for s in range(0, n, bs):
            base.before_step(ctx)
            if stack.record and not watch.unchanged():
                stack.stop_recording()
            stack.train_batch(orders[:, s:s + bs])
            ctx.step += 1
        means = stack.sums.means(n)  # waits for the device
        return EpochLosses(_per_trial(means, len(active)), [{"lr": train_cfgs[k].lr * factor} for k in active], n,
                           time.perf_counter() - start)

    def validate() -> list[dict[str, float]]:
        base.eval()
        with fixed_draws(t0.seed, device):  # the first trial's, as it draws them trained alone
            means = validation_means(lambda batch: validate_step(stack.params, stack.hypers, batch.x, batch.y),
                                     data.val_x, data.val_y, bs)
        return _per_trial(means, len(active))

    def end_member(epoch: int, trial: _Trial, end: EpochEnd) -> bool:
        j = active.index(trial.index)  # its place in the stack
        weights = (lambda: {name: v[j].detach().clone() for name, v in stack.params.items()}) if keep_models else None
        trial.add(end, weights)
        pruned = report is not None and not report(trial.index, epoch, end.record)
        return trial.goes_on(end, pruned)

    def keep(staying: list[int]) -> None:
        stack.keep(torch.tensor(staying, dtype=torch.long, device=device))
        active[:] = [active[j] for j in staying]

    run_epochs(trials, range(1, t0.epochs + 1), monitor, train_epoch=train_epoch, validate=validate,
               end_member=end_member, keep=keep)
    seconds = (time.perf_counter() - start_all) / len(train_cfgs)
    metric = metric or monitor or "loss"
    results = []
    for trial, model_cfg in zip(trials, model_cfgs):
        trial.tracker.finish()
        model = None
        if trial.best_params is not None:
            model = cls(model_cfg, data.shape, data.num_classes).to(device)
            model.load_state_dict(trial.best_params)
            model.eval()
        value = reduce_history(trial.history, metric, reduce, cls.maximized) if trial.history else math.nan
        results.append(FitResult(value=value,
                                 best_value=trial.tracker.best_value, best_epoch=trial.tracker.best_epoch,
                                 epochs=len(trial.history), seconds=seconds, stopped=trial.tracker.stopped,
                                 history=trial.history, model=model))
    return results

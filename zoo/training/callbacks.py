"""Training callbacks: behaviour that acts on any model while it trains (pruning, iterative autoencoding,
activity penalties, ...), kept out of the models and out of the engine's loop.

A callback is a `Callback` subclass that a plugin returns from the `zoo_callbacks` hook (zoo's own
register through the same hook, in zoo.plugins.callbacks). It is turned on by the run's configuration:

* by the `train_callbacks` key, a list of `NAME:VALUES` specs (like a noise model: `l1-activity:0.01`), whose
  values are the class's `params`; or
* by training keys of its own that zoo knows (`keys`: pruning's `prune_*`), read in `from_config`.

It changes training through its hooks only: `on_loss` may change the loss an optimizer minimises
(and log values to metrics.jsonl); nothing replaces a method of the model.
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from zoo.errors import CapabilityError, ConfigError, ZooError, out_of_memory
from zoo.plugin_values import spec_numbers, step_problem
from zoo.registry import failed_plugins, load_registry
from zoo.runs.plugin_calls import blamed, plugin_entry, plugin_named

if TYPE_CHECKING:  # pragma: no cover
    from zoo.model import Batch, ZooModel
    from zoo.training.engine import Trainer


@dataclass
class LossStep:
    """One optimizer's loss on one training batch, as callbacks see it: `on_loss` may replace `loss`,
    and put detached scalars in `logs` (they become `train_KEY` in metrics.jsonl)."""

    model: "ZooModel"
    batch: "Batch"
    optimizer: str
    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Callback:
    """Hooks into training. A plugin's callback also sets `name`, `description` and either `params`
    (the values of its `train_callbacks = ["NAME:VALUES"]` spec) or `keys` and `from_config`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ()       # spec values, in order: l1-activity:WEIGHT
    defaults: ClassVar[tuple[float, ...]] = ()   # of the trailing params a spec may leave out
    integer: ClassVar[tuple[str, ...]] = ()      # params that must be whole numbers (passed as int)
    ranges: ClassVar[dict[str, tuple[float, float]]] = {}  # valid (low, high) of a param, both included
    keys: ClassVar[tuple[str, ...]] = ()         # TrainConfig keys that turn it on (zoo's own callbacks)

    @classmethod
    def from_config(cls, train) -> "Callback | None":
        """The callback a TrainConfig asks for, or None. By default: the one named in `train_callbacks`."""
        for spec in train.train_callbacks:
            name, values = _split_spec(spec)
            if name == cls.name:
                return cls(*cls.parse_values(spec, values))
        return None

    @classmethod
    def parse_values(cls, spec: str, values: list[str]) -> list[float | int]:
        """The numbers of a spec, defaults filled in, whole numbers and ranges checked: one ConfigError
        for any mistake."""
        return spec_numbers(cls, values, f"train_callbacks: '{spec}'")

    def check(self, model: "ZooModel") -> None:
        """Refuse, with a ConfigError, a model this callback cannot work on (before anything is written)."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...

    def on_loss(self, trainer: "Trainer", step: LossStep) -> None:
        """Change `step.loss` (what `step.optimizer` minimises on `step.batch`) and log to `step.logs`."""

    def after_backward(self, trainer: "Trainer", optimizer: str) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None:
        """After the last epoch, with the best weights restored (and the model in eval mode)."""


def _split_spec(spec: str) -> tuple[str, list[str]]:
    name, *values = str(spec).strip().split(":")
    return name.strip().lower(), [v.strip() for v in values if v.strip() != ""]


def installed() -> dict[str, type[Callback]]:
    """Every callback class the installed plugins provide, by name."""
    return {name: e.cls for name, e in load_registry().callbacks.items()}


def callbacks_for(train) -> list[Callback]:
    """The callbacks a TrainConfig turns on, in the registry's order (zoo's own first). A name in
    `train_callbacks` that no plugin provides is refused."""
    available = installed()
    names = [_split_spec(spec)[0] for spec in train.train_callbacks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"train_callbacks names {', '.join(twice)} more than once", "Name each callback once.")
    for name in names:
        cls = available.get(name)
        if cls is None or cls.keys:  # zoo's own are turned on by their keys, not by name
            selectable = sorted(n for n, c in available.items() if not c.keys)
            close = difflib.get_close_matches(name, selectable, n=3, cutoff=0.5)
            raise ConfigError(f"train_callbacks: unknown callback '{name}'",
                              (f"Did you mean: {', '.join(close)}? " if close else "")
                              + "`zoo list` shows the installed callbacks"
                              + (f" ({', '.join(selectable)})." if selectable else ".")
                              + " (On --resume: the run's own train_callbacks, which need their plugins.)"
                              + failed_plugins())
    made = []
    for cls in available.values():  # a plugin's __init__ (or from_config) that raises: said as its package's bug
        own = getattr(cls.from_config, "__func__", None) is not getattr(Callback.from_config, "__func__", None)
        with blamed(cls, "from_config" if own else "__init__") if _plugins(cls) else contextlib.nullcontext():
            made.append(cls.from_config(train))
    reg = load_registry().callbacks
    for cb in filter(None, made):
        entry = reg.get(cb.name)
        if entry is not None and entry.package != "zoo":  # a plugin's: its mistakes said as its own
            guard(cb, f"{entry.package} {entry.version}")
    return [cb for cb in made if cb is not None]


def _plugins(cls: type) -> bool:
    """Whether `cls` is a plugin's callback (not zoo's own): what it raises is said as its package's bug."""
    entry = load_registry().callbacks.get(getattr(cls, "name", ""))
    return entry is not None and entry.cls is cls and entry.package != "zoo"


HOOKS = ("on_train_start", "on_epoch_start", "on_loss", "after_backward", "on_epoch_end", "on_train_end")


def guard(cb: Callback, package: str) -> None:
    """Make each hook `cb`'s class overrides end, where it raises (or `on_loss` logs what is no scalar tensor),
    in one error naming the callback and its package, as a logger's failure is said; the engine still sees which
    hooks the class has (it asks the class). An error of zoo's kind and a failed allocation stay as they are."""
    for hook in HOOKS:
        if getattr(type(cb), hook) is not getattr(Callback, hook):
            setattr(cb, hook, _guarded(cb, hook, getattr(cb, hook), package))


def _guarded(cb: Callback, hook: str, method, package: str):
    def call(trainer, *args):
        where = f"training callback '{cb.name}' (package {package})"
        try:
            method(trainer, *args)
        except ZooError:
            raise
        except Exception as e:  # noqa: BLE001 - a plugin's hook may raise anything
            if out_of_memory(e) is not None:  # the engine says what is kept and what to do
                raise
            raise CapabilityError(f"{where}: its {hook}() raised {type(e).__name__}: {str(e)[:300]}",
                                  _fix(trainer)) from e
        problem = step_problem(args[0].logs) if hook == "on_loss" else None
        if problem:
            raise CapabilityError(f"{where}: its on_loss() logged {problem}, not a scalar tensor", _fix(trainer))

    return call


def _fix(trainer) -> str:
    """The hint of a plugin callback's failure: whose fix it is, and the epochs kept."""
    saved, run_dir = getattr(trainer, "saved_epoch", 0), getattr(trainer, "run_dir", None)
    kept = (f" Epochs up to {saved} are saved in {run_dir}: `zoo train --resume` continues them once the plugin is "
            "fixed.") if saved and run_dir else ""
    return ("A bug in the callback's plugin (docs/plugins.md, section 3): report it to its author, or train a new run "
            "without it (leave it out of train_callbacks: a resumed run keeps the callbacks it was trained with)."
            + kept)


def check(callbacks, model) -> None:
    """Refuse, before anything is written, a callback the model cannot take; a plugin's check() that raises other
    than a ConfigError is said as its package's bug."""
    for cb in callbacks:
        with blamed(cb, "check") if _plugins(type(cb)) else contextlib.nullcontext():
            cb.check(model)


def divergence_hint(train, plugins) -> str:
    """What a new run may change after a training diverged: a lower learning rate (bf16 off), or, where a plugin's
    training callback or noise model took part (one that changes the loss, or gives NaN images only after the
    first batches zoo checks in full, may be what diverged), training without it."""
    theirs = [plugin_named(p) for p in plugins if (found := plugin_entry(p)) is not None
              and found[0] in ("callback", "noise model") and found[1].package != "zoo"]
    return ("Train a new run (another --out, or --overwrite) with a lower learning rate (--lr)"
            + (" or bf16 off" if train.bf16 else "") + (f", or without {' and '.join(theirs)}" if theirs else "")
            + ": --resume keeps the run's settings.")

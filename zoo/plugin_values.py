"""The numbers of a plugin's `NAME:VALUES` spec (a noise model's `gaussian:0.3`, a training callback's
`l1-activity:0.01`), checked in one place: how many, the defaults of those left out, whole numbers,
ranges. The class declares `params`, `defaults` (for the trailing params a spec may leave out),
`integer` and `ranges`. Also what the registry asks of each class a plugin's hook returns (`unfit`): its
base class and, for a model, a Config zoo can write into a run and read back; and what a plugin that fails to
import is said to lack (`load_error`)."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any, Sequence

from zoo.errors import ConfigError


def spec_numbers(cls: Any, values: Sequence, where: str) -> list[float | int]:
    """`values` (text or numbers) as the numbers of `cls.params`, defaults filled in: one ConfigError
    for any mistake, starting with `where` ("gaussian noise", "train_callbacks: 'l1-activity:x'")."""
    params, defaults = tuple(cls.params), tuple(cls.defaults)
    form = ":".join([cls.name, *params])
    if len(values) > len(params):
        raise ConfigError(f"{where} has {len(values)} value(s); {cls.name} takes {len(params)} value(s)",
                          f"Write it as {form}.")
    try:
        numbers: list[float | int] = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: its values must be numbers", f"Write it as {form}.") from None
    missing = len(params) - len(numbers)
    if missing > len(defaults):
        raise ConfigError(f"{where} leaves out a value {cls.name} needs", f"Write it as {form}.")
    numbers += [float(d) for d in defaults[len(defaults) - missing:]] if missing else []
    for i, (key, number) in enumerate(zip(params, numbers)):
        if key in getattr(cls, "integer", ()):
            if not float(number).is_integer():
                raise ConfigError(f"{where}: {key} must be a whole number, got {number:g}")
            numbers[i] = number = int(number)
        low, high = cls.ranges.get(key, (float("-inf"), float("inf")))
        if not low <= number <= high:
            valid = f">= {low:g}" if high == float("inf") else f"in {low:g}..{high:g}"
            raise ConfigError(f"{where}: {key} must be {valid}, got {number:g}")
    return numbers


# ------------------------------------------------------------------ what a class a plugin's hook returns needs

# The base class each kind of plugin class must derive from, by module and name: the registry sits below
# them all (they read it), so it knows them by name rather than by importing them.
BASES = {"model": ("zoo.model", "ZooModel"), "noise model": ("zoo.data.noise", "NoiseModel"),
         "sampler": ("zoo.analysis.latent_samplers", "LatentSampler"),
         "callback": ("zoo.training.callbacks", "Callback"), "logger": ("zoo.tracking.logger", "Logger")}

# The Config field types zoo writes into config.json and reads back (zoo.runs.config.coerce): a field of any
# other type trains, and then its run can never be loaded, resumed or given that field by --set.
SCALARS = (bool, int, float, str)
SUPPORTED_TYPES = "bool, int, float, str, list[X] or tuple[X, ...] of one of those, and X | None of any of these"


# The names zoo's own arguments take, which a model's Config field may not: zoo.train(NAME=...) and
# zoo.create(NAME=...) take a config key as a keyword beside them, and a config file's top-level `model` and
# `preset` say what it trains (search writes its best.toml that way). Training keys (lr, seed) are noted, not
# refused (zoo.tasks.training.training_key_clash): --set sets both.
_TRAIN = ("model", "preset", "config", "out", "resume", "log", "progress", "callbacks", "init", "overwrite")
OWN_ARGUMENTS = {
    **{k: f"an argument of zoo.train ({k}=)" for k in _TRAIN},
    **{k: f"an argument of zoo.create ({k}=)" for k in ("name", "shape", "num_classes")},
    "model": "the model a config file or a search's best.toml names (model = \"NAME\"), and zoo.train's model=",
    "preset": "the preset a config file names (preset = \"NAME\"), and zoo.train's preset=",
}


def unfit(cls: Any, kind: str) -> str | None:
    """What keeps a class a hook returned from working as a plugin of `kind` (None: nothing): not a class,
    not of the kind's base class; for a noise model or a callback, ill-formed `params`, `defaults`, `integer` or
    `ranges` (`spec_problem`); for a model, no dataclass `Config` with a default for every field, of types
    zoo reads back from config.json, or neither `loss` nor its own training and validation steps
    (docs/plugins.md, section 2)."""
    module, base_name = BASES[kind]
    if not inspect.isclass(cls):
        return f"the hook returned {type(cls).__name__} {shown(cls)}, not a class"
    base = next((c for c in cls.__mro__ if c.__module__ == module and c.__name__ == base_name), None)
    if base is None:
        return f"{cls.__name__} is not a subclass of zoo.{base_name}"
    if kind in ("noise model", "callback"):  # a spec NAME:VALUES is read by its params, defaults, integer, ranges
        problem = spec_problem(cls)
        if problem:
            return problem
    if kind == "callback":
        return _unbuildable_callback(cls, base)
    if kind == "noise model":
        return _unvectorized_noise(cls)
    if kind != "model":
        return None
    config = getattr(cls, "Config", None)
    if not (inspect.isclass(config) and dataclasses.is_dataclass(config)):
        return f"{cls.__name__}.Config is not a dataclass (its hyperparameters, each with a default)"
    missing = [f.name for f in dataclasses.fields(config)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        return f"{cls.__name__}.Config has fields without a default: {', '.join(missing)}"
    unreadable = config_type_problem(config)
    if unreadable:
        return f"{cls.__name__}.Config {unreadable}"
    taken = next((f.name for f in dataclasses.fields(config) if f.name in OWN_ARGUMENTS), None)
    if taken:
        return (f"{cls.__name__}.Config has a field '{taken}', which is {OWN_ARGUMENTS[taken]}: the field could "
                "never be set (--set refuses it, the Python call takes it as its own); rename it (docs/plugins.md)")
    fields = {f.name for f in dataclasses.fields(config)}
    for attr in ("loss_keys", "train_loss_keys", "test_keys"):  # a typo there silently turns its protection off
        unknown = sorted(str(k) for k in getattr(cls, attr, ()) if k not in fields)
        if unknown:
            return (f"{cls.__name__}.{attr} names {', '.join(unknown)}, not a field of its Config "
                    f"({', '.join(sorted(fields))})")
    own_steps = cls.training_step is not base.training_step and cls.validation_step is not base.validation_step
    if cls.loss is base.loss and not own_steps:
        return f"{cls.__name__} has no loss (nor its own training_step and validation_step)"
    return None


def spec_problem(cls: Any) -> str | None:
    """What is wrong with the `params`, `defaults`, `integer` and `ranges` a noise model or a callback declares
    (None: nothing), said when its plugin loads: `params = ("sigma")` (a one-element tuple without its comma)
    was read letter by letter, `defaults = (0.2)` failed in a TypeError, a typo in `ranges` turned its check off."""
    attrs = {a: getattr(cls, a, ()) for a in ("params", "defaults", "integer")}
    for attr, value in attrs.items():
        if not isinstance(value, (tuple, list) if attr != "integer" else (tuple, list, set, frozenset)):
            comma = isinstance(value, (str, int, float))
            return (f"{cls.__name__}.{attr} is {shown(value)}, not a tuple"
                    + (f": a one-element tuple needs its comma, ({value!r},)" if comma else ""))
    params, defaults = attrs["params"], attrs["defaults"]
    if not all(isinstance(p, str) and p for p in params) or len(set(params)) != len(params):
        return f"{cls.__name__}.params is {shown(params)}, not a tuple of distinct names"
    if len(defaults) > len(params) or not all(_number(d) for d in defaults):
        return (f"{cls.__name__}.defaults is {shown(defaults)}, not numbers for the last of its params "
                f"({', '.join(params)})")
    ranges = getattr(cls, "ranges", {})
    if not isinstance(ranges, dict):
        return f"{cls.__name__}.ranges is {shown(ranges)}, not a dict of (low, high) by param"
    for attr, names in (("integer", attrs["integer"]), ("ranges", list(ranges))):
        unknown = [str(k) for k in names if k not in params]
        if unknown:
            return (f"{cls.__name__}.{attr} names {', '.join(unknown)}, not one of its params "
                    f"({', '.join(params) or 'none'})")
    for key, pair in ranges.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(_number, pair)) and pair[0] <= pair[1]):
            return f"{cls.__name__}.ranges['{key}'] is {shown(pair)}, not a (low, high) pair of numbers"
    for key, default in zip(params[len(params) - len(defaults):], defaults):
        low, high = ranges.get(key, (default, default))
        if not low <= default <= high or (key in attrs["integer"] and not float(default).is_integer()):
            return f"{cls.__name__}.defaults gives {key} = {default!r}, which its ranges or integer refuse"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _unvectorized_noise(cls: Any) -> str | None:
    """A noise model declaring `vectorized = True` whose __call__ takes no `strength=` (the DAE passes it)."""
    if not getattr(cls, "vectorized", False):
        return None
    try:
        taken = inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):  # no signature to read: taken as it says
        return None
    if "strength" in taken or any(p.kind is p.VAR_KEYWORD for p in taken.values()):
        return None
    return (f"{cls.__name__} has vectorized = True, but its __call__ takes no strength= (the levels of a vectorised "
            "training): add the argument, or set vectorized = False (docs/plugins.md)")


def _unbuildable_callback(cls: Any, base: type) -> str | None:
    """A callback built the default way (Callback.from_config: cls(*its spec's values)) whose __init__ cannot take
    them: said when the plugin loads, not as a TypeError when a training asks for it."""
    params = tuple(getattr(cls, "params", ()) or ())
    if not params or getattr(cls.from_config, "__func__", None) is not getattr(base.from_config, "__func__", None):
        return None
    try:
        inspect.signature(cls).bind(*([0] * len(params)))
    except TypeError:
        return (f"{cls.__name__} has params ({', '.join(params)}), which a spec's values are passed to its "
                f"__init__ as, and its __init__ does not take {len(params)} value(s): define "
                f"__init__(self, {', '.join(params)}) (docs/plugins.md, section 3)")
    except ValueError:  # no signature to read (a C type): built as it is
        return None
    return None


def config_type_problem(config: type) -> str | None:
    """Which field of a model's Config dataclass has a type zoo cannot read back from config.json (None: none):
    refused when the plugin loads, not after a training whose run can never be loaded."""
    try:
        hints = typing.get_type_hints(config)
    except Exception as e:  # noqa: BLE001 - a plugin's annotation may name anything
        return f"has field types that cannot be read ({type(e).__name__}: {e})"
    for f in dataclasses.fields(config):
        tp = hints.get(f.name, f.type)
        if not reads_back(tp):
            return (f"field '{f.name}' is of type {type_word(tp)}, which zoo cannot read back "
                    f"from a run's config.json (zoo supports {SUPPORTED_TYPES}; a choice is a str with "
                    "param(..., choices=(...)))")
        if f.default is None and type(None) not in typing.get_args(tp):
            name = type_word(tp)
            return f"field '{f.name}' defaults to None but is of type {name}: declare it as {name} | None"
    return None


def type_word(tp: Any) -> str:
    """A type as its author wrote it: int, Path, list[list[int]], Literal['relu', 'tanh']."""
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def reads_back(tp: Any) -> bool:
    """Whether zoo.runs.config.coerce turns a JSON value back into a field of type `tp`."""
    if tp in SCALARS:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):  # one item type (coerce reads every item as the first argument)
        items = {a for a in args if a is not Ellipsis}
        return len(items) == 1 and next(iter(items)) in SCALARS
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or reads_back(a) for a in args)
    return False


def step_problem(out: Any) -> str | None:
    """What keeps a model's training or validation step output from being losses zoo averages over an epoch
    (None: nothing): a dict of scalar tensors, each the batch's mean."""
    import torch  # here: the registry reads this module, and `zoo list` imports no torch for it

    if not isinstance(out, dict):
        return f"a {type(out).__name__}"
    for key, value in out.items():
        if not isinstance(value, torch.Tensor):
            return f"'{key}' = {shown(value)} (a {type(value).__name__})"
        if value.ndim != 0:
            return f"'{key}' of shape {tuple(value.shape)}"
    return None


def shown(obj: Any) -> str:
    """A plugin's object as a message shows it: its repr (60 characters at most), or its type's name where
    that repr fails."""
    try:
        return f"{obj!r:.60}"
    except Exception:  # noqa: BLE001 - a plugin's __repr__ may raise anything
        return f"<a {type(obj).__name__}>"


# Modules that moved when zoo/ was grouped into folders (0.1 -> 0.2), for the message a plugin that
# still imports an old path gets; the base classes a plugin needs are importable from `zoo` itself.
MOVED_MODULES = {
    "zoo.engine": "zoo.training.engine", "zoo.epochs": "zoo.training.epochs", "zoo.graphstep": "zoo.training.graphstep",
    "zoo.multitrial": "zoo.training.multitrial", "zoo.callbacks": "zoo.training.callbacks",
    "zoo.regularize": "zoo.training.regularize", "zoo.optim": "zoo.training.optim",
    "zoo.batching": "zoo.training.batching", "zoo.runs": "zoo.runs.loading", "zoo.runfiles": "zoo.runs.files",
    "zoo.runlock": "zoo.runs.lock", "zoo.runinfo": "zoo.runs.info", "zoo.checkpoint": "zoo.runs.checkpoint",
    "zoo.modelcard": "zoo.runs.modelcard", "zoo.config": "zoo.runs.config", "zoo.analysis": "zoo.analysis.latent",
    "zoo.samplers": "zoo.analysis.latent_samplers", "zoo.metrics": "zoo.analysis.metrics",
    "zoo.quality": "zoo.analysis.quality", "zoo.plots": "zoo.analysis.plots", "zoo.cv": "zoo.search.cv",
    "zoo.noise": "zoo.data.noise", "zoo.space": "zoo.search.space",
}
PUBLIC_BASES = "from zoo import ZooModel, Callback, Logger, NoiseModel, LatentSampler, param, hookimpl"


def load_error(e: Exception) -> str:
    """What a plugin's failure to load says: the error, and for an import of a module that moved, where
    it is now."""
    text = f"{type(e).__name__}: {e}"
    missing = getattr(e, "name", None) if isinstance(e, ImportError) else None
    if missing in MOVED_MODULES:
        text += (f". zoo moved {missing} to {MOVED_MODULES[missing]}: import from there, or the base classes "
                 f"from zoo itself ({PUBLIC_BASES})")
    return text

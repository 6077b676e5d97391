"""Typed configurations: dataclass fields with help, range and choices; `key=value` overrides (TOML files:
zoo.runs.config_files).

A model plugin's hyperparameters live in its own dataclass; the settings every run shares
(optimizer, batch size, data set, ...) live in `TrainConfig`. Both are flat, so one TOML file
or one `--set key=value` can address any key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.console import to_stderr
from zoo.errors import ConfigError
from zoo.runs.config_files import config_values, refuse_newer_keys

SEED_MAX = 2**32 - 1  # the largest seed torch, numpy and scikit-learn all accept


def param(default: Any, help: str, *, low: float | None = None, high: float | None = None,
          choices: tuple | list | None = None):
    """A config field with its documentation and valid range; lists get a fresh copy per instance."""
    meta = {"help": help, "low": low, "high": high, "choices": tuple(choices) if choices else None}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Settings the engine uses for every plugin."""

    dataset: str = param("digits", "data set: mnist, fashion-mnist, kmnist, digits, folder:PATH")
    data_dir: str = param("", "where to look first for data files (else $ZOO_DATA_DIR, cache, /usr/share/datasets)")
    image_size: int = param(0, "resize folder images to this size (0: their most common size)", low=0, high=1024)
    val_fraction: float = param(0.1, "fraction of the training set held out for validation", low=0.0, high=0.9)
    binarize: str = param("none", "binary pixels: dynamic (resampled ~ Bernoulli(grey) every batch; validation and "
                          "test sampled once, fixed), static (all sampled once), none (grey levels)",
                          choices=("none", "dynamic", "static"))
    optimizer: str = param("adam", "optimizer", choices=("adam", "adamw", "sgd", "adagrad"))
    lr: float = param(1e-3, "learning rate", low=0.0, high=10.0)
    weight_decay: float = param(0.0, "L2 weight decay", low=0.0, high=10.0)
    momentum: float = param(0.9, "momentum (sgd only)", low=0.0, high=1.0)
    lr_schedule: str = param("constant", "learning-rate schedule over the epochs", choices=("constant", "cosine"))
    batch_size: int = param(256, "training batch size", low=1, high=1_000_000)
    epochs: int = param(10, "maximum number of epochs", low=1, high=100_000)
    patience: int = param(0, "early stopping: epochs without a better validation loss (0: off)", low=0, high=100_000)
    seed: int = param(0, "random seed for initialisation and shuffling", low=0, high=SEED_MAX)
    device: str = param("auto", "auto, cpu, cuda, cuda:N or mps")
    bf16: bool = param(False, "bfloat16 autocast on CUDA")
    channels_last: bool = param(True, "keep conv weights and image batches in channels-last memory layout "
                                      "(faster convolutions on CPU and GPU; the same results up to float rounding)")
    cuda_graph: bool = param(False, "capture the whole training step in one CUDA graph (adam / adamw / sgd, models "
                                    "whose steps keep no Python state): far fewer launches for small models")
    compile: bool = param(False, "torch.compile the model's layers (fused kernels, for GPUs; the first steps "
                                 "take longer while it compiles)")
    plot_every: int = param(0, "also save a sample/reconstruction grid in progress/ every N epochs and after "
                               "the last (0: none; the final picture is written in any case)", low=0, high=100_000)
    # Regularisers the engine applies to models with `encoder` and `decoder` modules (zoo.training.regularize).
    prune_every: int = param(0, "L1-prune weights every N epochs (0: never); amounts per group below", low=0,
                             high=100_000)
    prune_encoder_linear: float = param(0.0, "fraction of the unpruned weights of each encoder linear layer "
                                        "pruned every prune_every epochs", low=0.0, high=0.99)
    prune_encoder_conv: float = param(0.0, "the same for each encoder conv layer", low=0.0, high=0.99)
    prune_decoder_linear: float = param(0.0, "the same for each decoder linear layer", low=0.0, high=0.99)
    prune_decoder_conv: float = param(0.0, "the same for each decoder (transposed) conv layer", low=0.0, high=0.99)
    iterative_passes: int = param(1, "iterative autoencoding: reconstructions in the training loss (the "
                                  "decoder's output fed back into the encoder); 1: plain", low=1, high=16)
    iterative_weights: list[float] = param([], "weight of each pass's loss (empty: 1 for every pass)", low=0.0,
                                           high=1e6)
    train_callbacks: list[str] = param([], "training callbacks plugins provide, each as NAME:VALUES (`zoo list` "
                                       "shows the installed ones and their values)")
    # Where training is watched besides metrics.jsonl (always written): logger plugins (zoo.tracking).
    loggers: list[str] = param([], "also log training to these loggers: tensorboard, mlflow, or a plugin's "
                               "(`zoo list`); metrics.jsonl is always written")
    tensorboard_dir: str = param("", "TensorBoard event files go to RUN/tensorboard; with a folder here, to "
                                 "FOLDER/RUN-NAME instead (one --logdir for many runs)")
    mlflow_uri: str = param("", "MLflow tracking URI (else $MLFLOW_TRACKING_URI, else MLflow's default, "
                                "sqlite:///mlflow.db in the working folder)")


def fields_of(cls) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def field_type(f: dataclasses.Field, owner) -> Any:
    hints = typing.get_type_hints(owner)
    return hints[f.name]


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        return f"list[{getattr(inner, '__name__', str(inner))}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def describe_range(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    low, high = (_bound(meta.get(k)) for k in ("low", "high"))
    if low is not None and high is not None:
        return f"{low} .. {high}"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""


def _bound(value: float | int | None) -> str | None:
    """A range's bound as written: an int's every digit (a seed's 4294967295, not 4.29497e+09), a float's :g."""
    return None if value is None else str(value) if isinstance(value, int) else f"{value:g}"


def _scalar(value: Any, tp: type, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str):  # "6.0" as a TOML file's 6.0: whole, so taken; "6.5" never cut down
            text = value.strip()
            return int(text) if text.lstrip("+-").isdigit() else _scalar(float(text), int, key)
        try:  # a number of any kind (numpy's, a 0-d tensor, a Fraction) only where it is whole: never cut down
            whole = int(value)
            if whole != value:
                raise ValueError
        except (TypeError, OverflowError):  # a list, inf
            raise ValueError from None
        return whole
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if tp is str:
        if type(value).__module__ == "torch" and type(value).__name__ == "device":  # device=torch.device("cpu")
            return str(value)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError
        return str(value)
    raise ValueError


def default_of(f: dataclasses.Field) -> Any:
    """A config field's default value (a fresh list for list fields)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a TOML or command-line value to the field's type, or raise ValueError."""
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip()
            text = text[1:-1] if text[:1] == "[" and text[-1:] == "]" else text  # one pair: [[32]] is no list of ints
            items = [v.strip() for v in text.split(",")] if text.strip() else []
            if "" in items:  # "60,,": a value left out is a typo, not a shorter list
                raise ValueError
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [value]
        return [_scalar(v, inner, key) for v in items]
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
                    return None
                continue
            try:
                return coerce(value, arg, key)
            except (ValueError, TypeError):  # float(None): float | None reads a null only once past float
                pass
        raise ValueError
    return _scalar(value, tp, key)


def check_range(value: Any, f: dataclasses.Field) -> bool:
    meta = f.metadata
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is None:
            continue
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if meta.get("choices") and v not in meta["choices"]:
            return False
        if meta.get("low") is not None and v < meta["low"]:
            return False
        if meta.get("high") is not None and v > meta["high"]:
            return False
    return True


def build(cls, values: dict[str, Any], *, where: str = "config"):
    """Instantiate dataclass `cls` from `values` (unknown keys are an error), typed and range-checked."""
    known = {f.name: f for f in fields_of(cls)}
    kwargs = {}
    for key, value in values.items():
        f = known.get(key)
        if f is None:
            raise unknown_key(key, known, where)
        tp = field_type(f, cls)
        try:
            v = coerce(value, tp, key)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{where}: {key}={value!r} is not a valid {type_name(tp)}",
                f"{key}: {f.metadata.get('help', '')} (type {type_name(tp)}"
                + (f", {describe_range(f)}" if describe_range(f) else "") + ")",
            ) from None
        if not check_range(v, f):
            raise ConfigError(f"{where}: {key}={value!r} is out of range",
                              f"{key} must be {describe_range(f)}")
        kwargs[key] = v
    return cls(**kwargs)


def unknown_key(key: str, known, where: str) -> ConfigError:
    same_letters = [k for k in known if k.lower() == str(key).lower()]  # K for k: too short for difflib
    owners = [m for m in registry.list_models() if any(  # a key of another model: said so, before a guess
        f.name == key for f in fields_of(registry.get_model_class(m).Config))]
    close = same_letters or ([] if owners else difflib.get_close_matches(str(key), list(known), n=3, cutoff=0.6))
    hint = (f"Did you mean: {', '.join(close)}?" if close else f"{key} is a key of {', '.join(owners)}, not of "
            f"{where}." if owners else "`zoo info MODEL` (zoo.model_info('MODEL') in Python) lists the valid keys.")
    return ConfigError(f"{where}: unknown key '{key}'", hint)


def is_config_key(key: str) -> bool:
    """Whether `key` is a training key or a config key of an installed model (what `--set KEY=VALUE` takes)."""
    keys = {f.name for f in fields_of(TrainConfig)}
    for name in registry.list_models():
        keys |= {f.name for f in fields_of(registry.get_model_class(name).Config)}
    return key in keys


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["latent_dim=6", "channels=8,16,32"]` -> {"latent_dim": "6", "channels": "8,16,32"}; a key given twice
    keeps its last value, said where the two differ."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{item}'")
        name = key.strip().replace("-", "_")
        if name in out and out[name] != value.strip():  # the last wins, as options do, but not silently
            to_stderr(f"note: --set {name}={value.strip()} wins over the earlier --set {name}={out[name]}")
        out[name] = value.strip()
    return out


def check_count(value: Any, what: str, low: int = 1, high: int | None = None) -> int:
    """A count the caller gave (images, samples, a limit) as a whole number in low .. high, or a ConfigError
    naming it: never a float, text or bool taken as one, nor a 0 or negative one taken as "all"."""
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)  # numpy's integers too
    if not whole or value < low or (high is not None and value > high):
        span = f"from {low:,} to {high:,}" if high is not None else f"of at least {low:,}"
        raise ConfigError(f"{what} must be a whole number {span}, got {value!r:.60}")
    return int(value)


def check_flag(value: Any, what: str, *, none: bool = False) -> None:
    """A yes/no argument (save=) as a bool, or None where `none` (progress=: "on a terminal"): "no" is no False."""
    if not isinstance(value, bool) and not (none and value is None):
        raise ConfigError(f"{what}= is True or False{' (or None)' if none else ''}, not {value!r:.60}")


def check_seed(seed: Any, what: str = "--seed") -> int:
    """A seed as an int in 0 .. 2**32-1, or a ConfigError (not an overflow deep inside a library)."""
    return check_count(seed, what, 0, SEED_MAX)


# ------------------------------------------------------------------------------------- resolution

def resolve_config(name: str, *, preset: str | None = None, config: str | Path | dict | None = None,
                   overrides: dict[str, Any] | None = None) -> tuple[type, Any, TrainConfig]:
    """Layer defaults < plugin training defaults < preset < config file < overrides; type-check it all."""
    cls = registry.get_model_class(name)
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"overrides are a dict of config keys to values, not {type(overrides).__name__}",
                          "For example {'latent_dim': 16}.")
    values: dict[str, Any] = dict(getattr(cls, "train_defaults", {}))
    try:  # the model's own train_defaults must hold alone: their mistake is the plugin's, not the user's
        split_config(cls, values)
    except ConfigError as e:
        raise ConfigError(f"{name}'s train_defaults (in its plugin, package {registry.get_entry(name).package}): "
                          f"{e.message}", (f"{e.hint} " if e.hint else "") + "A fix for the plugin's author, not yours "
                          "to make.") from None
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"preset= is a catalogued preset's name, not {preset!r:.60}", "`zoo info MODEL` lists them.")
    if isinstance(preset, str) and not preset.strip():  # "" was taken for no preset: a typo's empty value
        raise ConfigError("preset='' names no preset", "Leave preset out (None) for none.")
    if preset:
        chosen = registry.get_preset(preset)
        if chosen.get("model") != name and not preset_fits(cls, chosen):
            registry.get_preset(preset, name)  # raises: the preset is for another model
        values.update(chosen["config"])
        try:  # a preset must hold on its own: its mistake is said as the preset's, not as the user's --set
            split_config(cls, values)
        except ConfigError as e:
            file = registry.catalog_file("presets", preset)
            hint = (e.hint + ("" if e.hint.endswith((".", "?")) else ".") + " ") if e.hint else ""  # a sentence
            raise ConfigError(f"preset '{preset}' (in {file.said()}): {e.message}", hint + file.fix()) from None
    if config is not None:
        file_values = config_values(config)
        named = file_values.pop("model", None)
        if named is not None and (not isinstance(named, str) or not named):  # [[model]], model = "": as without NAME
            model_named_by(None, config)  # raises: a model is named by a string
        if named and named != name:
            raise ConfigError(f"the config file is for model '{named}', not '{name}'")
        refuse_newer_keys(config, file_values, {f.name for f in (*fields_of(cls.Config), *fields_of(TrainConfig))})
        values.update(file_values)
    check_keys(cls, overrides or {})  # a None is the default, but of a key the model has: pseudo_input=None is a typo
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return (cls, *split_config(cls, values))


def preset_fits(cls: type, preset: dict[str, Any]) -> bool:
    """Whether another model's preset fits this model too (a DAE takes a ConvAE's, an IWAE the VAE's): both
    models come from one package, and the preset's keys are all this model's (or training) keys. A key of
    another package's model may mean another thing (a plugin's `hidden` width is no VAE's list of widths)."""
    models = registry.load_registry().models
    own, other = models.get(str(preset.get("model"))), models.get(getattr(cls, "name", ""))
    if own is None or other is None or own.package != other.package:
        return False
    known = {f.name for f in fields_of(cls.Config)} | {f.name for f in fields_of(TrainConfig)}
    return set(preset.get("config", {})) <= known


def model_named_by(preset: str | None, config: str | Path | dict | None) -> str | None:
    """The model a config file names (`model = "vae"`, as `zoo search` writes best.toml), or else the
    one a preset is for: `zoo train --config best.toml` needs no model name."""
    if config is not None:
        values = config_values(config)
        if "model" in values:
            if not isinstance(values["model"], str) or not values["model"]:
                raise ConfigError(f"model = {values['model']!r} in {config}: a model is named by a string",
                                  'Write model = "NAME" with one of: ' + ", ".join(registry.list_models()) + ".")
            return values["model"]
    if preset:
        model = registry.get_preset(preset)["model"]
        if model not in registry.list_models():
            raise ConfigError(f"preset '{preset}' is for model '{model}', which is not installed",
                              "`zoo list` shows the installed models; install the package that provides it.")
        return model
    return None


def check_keys(cls: type, values: dict[str, Any]) -> None:
    """Each key a key of the model's config or of TrainConfig, or a ConfigError naming the closest."""
    known = {f.name for f in fields_of(cls.Config)} | {f.name for f in fields_of(TrainConfig)}
    for key in values:
        if key not in known:
            raise unknown_key(key, known, cls.name)


def split_config(cls: type, values: dict[str, Any]) -> tuple[Any, TrainConfig]:
    model_keys = {f.name for f in fields_of(cls.Config)}
    train_keys = {f.name for f in fields_of(TrainConfig)}
    check_keys(cls, values)
    model_cfg = build(cls.Config, {k: v for k, v in values.items() if k in model_keys}, where=cls.name)
    train_cfg = build(TrainConfig, {k: v for k, v in values.items() if k in train_keys}, where="training")
    return model_cfg, train_cfg


def flat_config(run: dict[str, Any]) -> dict[str, Any]:
    """config.json's model and training keys in one table, by the names `--set` takes (a training key
    that a model key also has is `train.KEY`)."""
    flat = dict(run.get("config") or {})
    for k, v in (run.get("train") or {}).items():
        flat[f"train.{k}" if k in flat else k] = v
    return flat

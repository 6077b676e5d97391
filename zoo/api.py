"""The public Python API: what users call, and what the CLI is a thin layer over. Each task lives in
its own module under zoo/tasks/; loading runs and resolving configs live under zoo/runs/."""

from __future__ import annotations

import dataclasses

import difflib
from typing import Any

import torch

from zoo import registry
from zoo.analysis.interpolation import interpolate
from zoo.analysis.latent import latent_scatter
from zoo.analysis.manifold import manifold
from zoo.arguments import clear_arguments
from zoo.console import to_stderr
from zoo.data import dataset_names
from zoo.errors import ConfigError, UnknownModelError, ZooError
from zoo.model import ZooModel
from zoo.runs import config as cfgmod
from zoo.runs import files as runfiles
from zoo.runs.compare import Comparison, compare
from zoo.runs.config import TrainConfig, resolve_config, split_config
from zoo.runs.loading import load, read_run, resolve
from zoo.runs.run import Run
from zoo.tasks.denoising import denoise, load_images, noise_sweep
from zoo.tasks.evaluation import evaluate, reconstruct
from zoo.tasks.generation import generate, sample
from zoo.tasks.sample_quality import feature_network_name, sample_quality
from zoo.tasks.training import train, training_key_clash
from zoo.tasks.transfer import finetune
from zoo.training import multitrial

# Each command's function: a keyword it does not take (the CLI's spelling) is one ConfigError naming the one meant.
(compare, denoise, evaluate, finetune, generate, interpolate, latent_scatter, load, manifold, noise_sweep, reconstruct,
 sample, sample_quality, train) = (clear_arguments(f, __name__) for f in (
    compare, denoise, evaluate, finetune, generate, interpolate, latent_scatter, load, manifold, noise_sweep,
    reconstruct, sample, sample_quality, train))

__all__ = ["Comparison", "Run", "compare", "create", "denoise", "evaluate", "feature_network_name", "finetune",
           "generate", "interpolate", "latent_scatter", "list_models", "list_plugins", "load", "load_images",
           "manifold", "model_info", "noise_sweep", "read_run", "reconstruct", "resolve", "resolve_config",
           "sample", "sample_quality", "split_config", "train"]


def list_models() -> list[str]:
    """Names of every installed architecture plugin."""
    return registry.list_models()


def list_plugins() -> dict[str, list[dict[str, Any]]]:
    """Every installed plugin class by kind: "models", "noise_models" (with their "params"), "samplers",
    "callbacks" (with their "params", or the training "keys" that turn them on) and "loggers" (with what
    to "install" for them), each a row of name,
    package ("NAME VERSION") and description (a model's "clash": its hyperparameters named like training
    keys, said); "failed": the plugins that did not load."""
    reg = registry.load_registry()

    def rows(entries, **extra):
        return [{"name": e.name, "description": e.description, "package": f"{e.package} {e.version}",
                 **{k: f(e) for k, f in extra.items()}} for e in sorted(entries.values(), key=lambda e: e.name)]

    return {"models": rows(reg.models, clash=lambda e: training_key_clash(e.cls)),
            "noise_models": rows(reg.noise_models, params=lambda e: list(getattr(e.cls, "params", ()))),
            "samplers": rows(reg.samplers),
            "callbacks": rows(reg.callbacks, params=lambda e: list(e.cls.params), keys=lambda e: list(e.cls.keys)),
            "loggers": rows(reg.loggers, install=lambda e: e.cls.install or e.cls.requires),
            "failed": [dict(f.__dict__) for f in reg.failures]}


def model_info(name: str) -> dict[str, Any]:
    """A plugin's description, hyperparameters (type, default, range), training defaults, presets and catalogued
    weights."""
    catalogued = registry.weights().get(name) if isinstance(name, str) else None
    if catalogued is not None and name not in registry.list_models():  # weights, not a model: say which
        raise UnknownModelError(f"'{name}' names catalogued weights of model '{catalogued.get('model')}', not a model",
                                f"Load them with zoo.load('{name}') (`zoo info {name}` describes them); "
                                f"zoo.model_info('{catalogued.get('model')}') describes the model.")
    if isinstance(name, str) and name in dataset_names() and name not in registry.list_models():  # `zoo info mnist`
        trained = [k for k, w in registry.weights().items() if w.get("dataset") == name]
        weights = f" Catalogued weights trained on it: {', '.join(trained)} (`zoo info NAME`)." if trained else ""
        raise UnknownModelError(f"'{name}' is a data set, not a model", f"`zoo train MODEL --dataset {name}` trains "
                                f"a model on it (`zoo list` shows the models).{weights}")
    try:
        entry = registry.get_entry(name)
    except UnknownModelError as e:  # a misspelled name of weights is close to one of the catalogue's too
        close = difflib.get_close_matches(name, list(registry.weights()), n=3) if isinstance(name, str) else []
        if not close or name in registry.presets():  # a preset's name, said in e.hint: no weights "of that name"
            raise
        raise UnknownModelError(e.message, ((e.hint + " ") if e.hint else "") +
                                f"Catalogued weights of that name: {', '.join(close)}?") from None
    cls = entry.cls

    def describe(dc, defaults=None):
        rows = []
        for f in cfgmod.fields_of(dc):
            default = (defaults or {}).get(f.name, cfgmod.default_of(f))
            rows.append({"name": f.name, "type": cfgmod.type_name(cfgmod.field_type(f, dc)), "default": default,
                         "range": cfgmod.describe_range(f), "help": f.metadata.get("help", "")})
        return rows

    return {
        "name": entry.name, "description": entry.description, "package": entry.package, "version": entry.version,
        "capabilities": cls.capabilities(),
        "clash": training_key_clash(cls),  # hyperparameters named like training keys (a plugin's mistake)
        "params": describe(cls.Config, getattr(cls, "train_defaults", {})),
        "vectorized_keys": _vectorizable(cls),
        "train_params": describe(TrainConfig, getattr(cls, "train_defaults", {})),
        "presets": registry.presets(entry.name),
        # other models' presets whose keys all fit (`zoo train iwae --preset vae-mnist`), with what a value
        # of theirs the model refuses says to change ("needs": `--set batch_norm=false` for a VampPrior)
        "presets_that_fit": {k: {**p, **_needs(entry.name, k)} for k, p in registry.presets().items()
                             if p.get("model") != entry.name and cfgmod.preset_fits(cls, p)},
        # catalogued weights of this model, each by its name and description (zoo info NAME says more)
        "weights": {k: w.get("description", "") for k, w in registry.weights().items() if w.get("model") == entry.name},
    }


def _needs(name: str, preset: str) -> dict[str, str]:
    """{"needs": the remedy} where model `name`, built with another model's `preset` (on the meta device:
    no memory), refuses one of its values; {} where it takes the preset as it is."""
    import torch

    try:
        cls, model_cfg, _ = resolve_config(name, preset=preset)
        with torch.device("meta"):
            cls(model_cfg, (1, 28, 28), 10)
    except ZooError as e:
        return {"needs": e.hint or e.message}
    except Exception:  # noqa: BLE001 - a model that cannot be built on the meta device: said nothing of
        return {}
    return {}


def _vectorizable(cls: type) -> list[str]:
    """The config keys that search trials may differ in and train together: the default config's, and a
    dropout's where the model has one (at its default 0 it builds no dropout layer to hold the rate)."""
    configs = [cls.Config()]
    if any(f.name == "dropout" for f in dataclasses.fields(cls.Config)):
        configs.append(dataclasses.replace(cls.Config(), dropout=0.1))
    keys: set[str] = set()
    for config in configs:
        try:
            keys.update(multitrial.vectorizable_keys(cls, config, (1, 28, 28), 10))
        except Exception:  # a third-party model that cannot be built on the meta device: it shows none
            continue
    return sorted(keys)


def create(name: str, *, shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
           seed: int | None = None, preset: str | None = None, **config) -> ZooModel:
    """Build an untrained model by name, sized for images of `shape` (C, H, W), from its defaults, a catalogued
    `preset`'s values and `config` keys, in that order. Its initial weights are drawn from torch's global
    generator, as a torch module's are; with `seed`, from that seed alone (the weights zoo.train(name, seed=seed)
    starts from), and the caller's generator is left as it was."""
    if not isinstance(name, str):
        raise ConfigError(f"create: the model is named by a string (zoo.list_models()), not {name!r:.60}")
    shape = runfiles.check_image_shape(shape)
    num_classes = cfgmod.check_count(num_classes, "create: num_classes", 0, 100_000)
    seed = None if seed is None else cfgmod.check_seed(seed, "create: seed")
    cls, model_cfg, _ = resolve_config(name, preset=preset, overrides=config)
    training = sorted(set(config) - {f.name for f in cfgmod.fields_of(cls.Config)})
    if training:  # checked by resolve_config as training keys, which building a model has no use for
        to_stderr(f"note: zoo.create builds the model only and leaves out the training "
                  f"key{'s' * (len(training) > 1)} {', '.join(training)} (zoo.train('{name}', ...) takes "
                  f"{'them' if len(training) > 1 else 'it'})")
    runfiles.check_fits(cls, model_cfg, shape, num_classes, "cpu", copies=1, what="build")
    if seed is None:
        return cls(model_cfg, shape, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(model_cfg, shape, num_classes)


create = clear_arguments(create, __name__)  # defined here, checked as the others are

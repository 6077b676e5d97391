"""The objective's metric, checked before any trial runs.

A trial is scored on one of the metrics the engine records every epoch, named as in metrics.jsonl:
`val_<k>` (measured on the validation images; `<k>` alone means the same) or `train_<k>` (the mean
over the epoch's training batches). Which names a model records is told by training it: one epoch on
a few images of the data set, with a configuration of the space, exactly as a trial trains
(zoo.training.fit.fit), lists them for any plugin, with nothing to declare. A name it does not record is refused
before the first trial, with the names it does, not after every trial has trained.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from zoo import registry
from zoo.errors import ConfigError
from zoo.model import measured_alike
from zoo.runs.config import resolve_config
from zoo.search import cv as cvmod
from zoo.search.data import load_data
from zoo.search.space import Space
from zoo.search.study import optuna_module
from zoo.training.fit import probe_keys

PROBE_DRAWS = 4   # configurations drawn from the space to find one that builds (then the fixed part alone)


def describe(keys: list[str]) -> str:
    """The names a user may give, as metrics.jsonl writes them: `val_loss (or loss), ..., train_loss, ...`."""
    val = [f"{k} (or {k[4:]})" for k in keys if k.startswith("val_")]
    train = [k for k in keys if k.startswith("train_")]
    return ", ".join(val + train)


def check_metric(settings, space: Space, data_cache: dict) -> None:
    """Refuse an objective metric the model does not record (ConfigError listing those it does), and the
    loss of a model whose loss the space changes (see check_comparable). Loads the data set into
    `data_cache` (a missing one fails here, once)."""
    cls = registry.get_model_class(settings.model)
    if settings.metric.split("_", 1)[1] in cls.maximized:
        raise ConfigError(f"{settings.metric} is better when higher, and a search minimises its objective: the worst "
                          "model would win", f'Score the trials by a loss: metric = "{cls.monitor or "loss"}" in the '
                          "space file's [objective].")
    check_comparable(settings, space)
    keys = recorded_metrics(settings, space, data_cache)
    if keys is None or settings.metric in keys:
        return
    given = space.objective.get("metric")
    what = f"'{given}'" if given else f"'{settings.metric}' (the default)"
    raise ConfigError(f"the objective metric {what} is not one that {settings.model} reports",
                      f"{settings.model}'s metrics, as metrics.jsonl names them: {describe(keys)}. "
                      "Set `metric` in the space file's [objective].")


def check_comparable(settings, space: Space) -> None:
    """Refuse to score trials by a metric that a key they differ in changes the meaning of (the model's
    `loss_keys`: a β-VAE's loss rec + β·KL, an IWAE's bound at its K): the search would pick the value that
    makes the number smallest, not the best model."""
    split, metric = settings.metric.split("_", 1)
    varied = _varied(settings, space)
    keys, alike = measured_alike(registry.get_model_class(settings.model), varied, metric, split)
    if not keys:
        _check_validation_images(settings, varied)
        return
    one = len(keys) == 1
    alike_key = f"val_{alike[0]}" if alike and split == "train" else alike[0] if alike else ""
    raise ConfigError(f"the space varies {', '.join(keys)}, which change{'s' * one} what {settings.model}'s "
                      f"{settings.metric if split == 'train' else metric} "
                      f"measures: trials that differ in {'it' if one else 'them'} are not comparable by it (the "
                      "smallest number would win, not the best model)",
                      (f'Score them by a metric every trial measures alike: metric = "{alike_key}" in the space '
                       f"file's [objective], or fix {', '.join(keys)} in [fixed]." if alike else
                       f"No metric compares them: fix {', '.join(keys)} in [fixed] (one search each)."))


def _check_validation_images(settings, varied: set[str]) -> None:
    """Refuse a val_ objective where the space varies val_fraction: trials would be scored on other validation
    images each (as `zoo compare` says of runs that differ in it), and ranked partly by how easy theirs are. Not
    with --cv, whose folds are cut from the training and validation images together: every image is validated once
    in every trial (the folds' partition may differ, as it does between trials of another `seed`). Not a DATA_KEY
    of zoo.model: it leaves the test images and the training metrics' meaning alone."""
    if "val_fraction" in varied and settings.metric.startswith("val_") and not settings.cv:
        raise ConfigError(f"the space varies val_fraction, which changes the validation images {settings.metric} is "
                          "measured on: trials that differ in it are not comparable by it (the easiest validation "
                          "images would win, not the best model)",
                          "Fix val_fraction in [fixed], or score the trials by cross-validation with --cv K (its "
                          "folds validate every training and validation image once, whatever val_fraction).")


def _varied(settings, space: Space) -> set[str]:
    """The config keys trials may differ in: the searched ones, but a key searched over one value (`choices = [2.0]`)
    varies nothing. One under `when` still varies: where its condition is false it keeps the value the fixed part
    gives it (unless that is its one value)."""
    varied = {p.name.split("[")[0] for p in space.params if not p.helper and not _one_value(p)}
    conditional = [p for p in space.params if not p.helper and _one_value(p) and p.when is not None]
    if conditional:
        try:
            _, model_cfg, train_cfg = resolve_config(settings.model, preset=settings.preset,
                                                     config={**space.fixed, **settings.overrides})
        except ConfigError:  # a fixed part that does not resolve: each trial says why; count the key as varied
            model_cfg = train_cfg = None
        for p in conditional:
            kept = getattr(model_cfg, p.name, getattr(train_cfg, p.name, _UNKNOWN))
            if not _same(kept, p.choices[0]):
                varied.add(p.name)
    return varied


_UNKNOWN = object()


def _same(a, b) -> bool:
    """Equal values of one kind (True is no 1, but 1 is 1.0 for a float key)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _one_value(p) -> bool:
    """A searched key that can take one value only (`choices = [2.0]`)."""
    return p.choices is not None and len({repr(c) for c in p.choices}) == 1


def recorded_metrics(settings, space: Space, data_cache: dict) -> list[str] | None:
    """The metrics.jsonl keys of the model's metrics (`val_...`, `train_...`), from one epoch of the first
    configuration that trains (zoo.training.fit.probe_keys); None if none does (each trial then says why)."""
    candidates = []
    for cls, model_cfg, train_cfg in _configurations(settings, space):
        data = load_data(train_cfg, data_cache)
        if settings.cv:  # too many folds for the images: refused here, before the study folder is made
            cvmod.folds(data, settings.cv)
        if "val" in data.reused and not settings.cv:  # every trial would be scored on its training images
            raise ConfigError(f"cannot score trials on {data.name}: {data.caveat()}",
                              "Add images to the folder, or cross-validate with --cv K.")
        candidates.append((cls, model_cfg, train_cfg, data))
    refused: list[Exception] = []
    keys = probe_keys(candidates, refused)
    if keys is None and len(candidates) > 1:
        _refuse_every_configuration(candidates, refused)
    return keys


def _refuse_every_configuration(candidates: list, refused: list[Exception]) -> None:
    """Raise the model's refusal of every configuration probed (those drawn and the fixed part alone), where it is one
    (the same message) and the fixed part alone, built for the whole data set, meets it too: no draw can mend it
    (a VampPrior with batch norm, a class-conditional model on unlabelled images), and each trial would only be
    pruned with it, as `zoo train` and `zoo cv` refuse it at once. Said before the study folder is made."""
    said = {e.message for e in refused if isinstance(e, ConfigError)}
    if len(refused) != len(candidates) or len(said) != 1:
        return
    cls, model_cfg, _, data = candidates[-1]
    try:  # the probe trained on a few images: a refusal of their number is no refusal of the data set
        cls.check_data(model_cfg, data)
        with torch.device("meta"):  # no memory: the constructor's checks only
            cls(model_cfg, data.shape, data.num_classes)
    except ConfigError as e:
        if e.message in said:
            raise
    except Exception:  # noqa: BLE001 - not the refusal the probe met: each trial says what it meets
        return


def _configurations(settings, space: Space) -> Iterator[tuple[type, Any, Any]]:
    """(cls, model config, training config): a few drawn from the space (a throwaway in-memory study),
    then the fixed part alone."""
    optuna = optuna_module()
    base = {**space.fixed, **settings.overrides}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(PROBE_DRAWS):
        try:
            values, _ = space.sample(study.ask(), grid=settings.strategy == "grid")
            drawn = resolve_config(settings.model, preset=settings.preset, config=base, overrides=values)
        except ConfigError:
            continue
        yield drawn
    yield resolve_config(settings.model, preset=settings.preset, config=base)

"""The objective's metric, checked before any trial runs.

A trial is scored on a validation metric of the model, as the engine records it (`val_<name>` in
metrics.jsonl). Which names a model reports is told by its own `validation_step`, so one step on a
few real images, with a configuration of the space, lists them for any plugin, with nothing to
declare. A name the model does not report is refused at once, not after every trial has trained.
"""

from __future__ import annotations

from typing import Any, Iterator

from zoo.errors import ConfigError
from zoo.space import Space

PROBE_IMAGES = 4  # images of the validation step that lists the metrics
PROBE_DRAWS = 4   # configurations drawn from the space to find one that builds (then the fixed part alone)


def metric_name(name: str) -> str:
    """The model's name for the objective metric: `loss` for `loss` or `val_loss` (metrics.jsonl's name).
    A training metric is refused: a search scores trials on images they did not train on."""
    if name.startswith("train_"):
        raise ConfigError(f"the objective metric '{name}' is measured on the training images, and a search "
                          "scores trials on held-out ones", f"Use val_{name[6:]} (or {name[6:]}).")
    return name[4:] if name.startswith("val_") else name


def describe(names: list[str]) -> str:
    """The names a user may give, as in metrics.jsonl and short: `val_loss (or loss), ...`."""
    return ", ".join(f"val_{k} (or {k})" for k in names)


def check_metric(settings, space: Space, data_cache: dict) -> None:
    """Refuse an objective metric the model does not report (ConfigError listing those it does).
    Loads the data set into `data_cache` (a missing one fails here, once)."""
    names = reported_metrics(settings, space, data_cache)
    if names is None or settings.metric in names:
        return
    given = space.objective.get("metric")
    what = f"'{given}'" if given else f"'{settings.metric}' (the default)"
    raise ConfigError(f"the objective metric {what} is not one that {settings.model} reports",
                      f"{settings.model}'s validation metrics: {describe(names)}. "
                      "Set `metric` in the space file's [objective].")


def reported_metrics(settings, space: Space, data_cache: dict) -> list[str] | None:
    """The names of the model's validation metrics, from one validation step of the first configuration
    that builds; None if none does (each trial then says why)."""
    from zoo.search.worker import load_data

    for cls, model_cfg, train_cfg in _configurations(settings, space):
        data = load_data(train_cfg, data_cache)
        if "val" in data.reused and not settings.cv:  # every trial would be scored on its training images
            raise ConfigError(f"cannot score trials on {data.name}: {data.caveat()}",
                              "Add images to the folder, or cross-validate with --cv K.")
        try:
            return _validation_names(cls, model_cfg, train_cfg, data)
        except Exception:  # noqa: BLE001 - this configuration cannot be built or run: its trial says why
            continue
    return None


def _configurations(settings, space: Space) -> Iterator[tuple[type, Any, Any]]:
    """(cls, model config, training config): a few drawn from the space (a throwaway in-memory study),
    then the fixed part alone."""
    from zoo.api import resolve_config
    from zoo.search.study import optuna_module

    optuna = optuna_module()
    base = {**space.fixed, **settings.overrides}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(PROBE_DRAWS):
        try:
            values, _ = space.sample(study.ask(), grid=settings.sampler == "grid")
            drawn = resolve_config(settings.model, preset=settings.preset, config=base, overrides=values)
        except ConfigError:
            continue
        yield drawn
    yield resolve_config(settings.model, preset=settings.preset, config=base)


def _validation_names(cls: type, model_cfg, train_cfg, data) -> list[str]:
    """The keys of one validation step on a few images, on the CPU."""
    import torch

    from zoo.engine import to_batch
    from zoo.model import build_seeded

    x, y = (data.val_x, data.val_y) if data.val_x.shape[0] else (data.train_x, data.train_y)
    cpu = torch.device("cpu")
    net = build_seeded(cls, model_cfg, data.shape, data.num_classes, train_cfg.seed, cpu)
    net.eval()
    with torch.no_grad():
        out = net.validation_step(to_batch(x[:PROBE_IMAGES].to(cpu), y[:PROBE_IMAGES].to(cpu)))
    return list(out)

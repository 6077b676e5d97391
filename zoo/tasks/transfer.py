"""Transfer: a model trained on the labels on top of the encoder of a trained run (`zoo finetune`).

Which model that is, and what it takes from the source, is the plugins' business: any installed model
that implements `ZooModel.transfer_from` can be trained on top of another run."""

from __future__ import annotations

from pathlib import Path

from zoo import registry
from zoo.errors import CapabilityError, ConfigError
from zoo.model import ZooModel
from zoo.runs.config import coerce
from zoo.runs.loading import load
from zoo.runs.run import Run
from zoo.tasks.training import train
from zoo.training.engine import TrainResult


def transfer_models() -> dict[str, type[ZooModel]]:
    """The installed models that can be trained on top of another run's encoder, by name."""
    return {name: entry.cls for name, entry in sorted(registry.load_registry().models.items())
            if entry.cls.transfer_from.__func__ is not ZooModel.transfer_from.__func__}


def _pick(model: str | None) -> type[ZooModel]:
    found = transfer_models()
    if model is not None:
        if model not in found:
            raise CapabilityError(f"model '{model}' cannot be trained on top of another run",
                                  f"These can: {', '.join(found) or 'none installed'}.")
        return found[model]
    if len(found) != 1:
        raise ConfigError("no installed model trains on top of another run's encoder" if not found else
                          f"several installed models train on top of another run: {', '.join(found)}",
                          "Name one with --model NAME (model=NAME in Python)." if found else
                          "`zoo list` shows the models.")
    return next(iter(found.values()))


def finetune(source: str | Path | Run, *, hidden: int | str | list[int] | tuple[int, ...] = (60,), freeze: str = "all",
             unfreeze_last: int = 0, features: str = "latent", dataset: str | None = None,
             out: str | Path | None = None, model: str | None = None, **overrides) -> TrainResult:
    """Train a head on the labels on top of the encoder of a trained run; `zoo.evaluate(result.run_dir)`
    then measures its test accuracy (as `zoo finetune` does after training).

    `hidden`: the head's hidden layer sizes, [128, 64] (or 60, or the CLI's text "128,64").
    freeze="all" keeps the encoder fixed (but its last `unfreeze_last` weight layers); "none" trains all.
    features="latent" reads the code (a VAE's mean); "conv" reads the flattened conv features.
    `model`: which installed transfer model to train, when there is more than one."""
    sizes = _layer_sizes(hidden)
    cls = _pick(model)
    src = load(source, device=None if isinstance(source, Run) else "cpu")  # a caller's Run stays where it is
    values, init = cls.transfer_from(src, hidden=sizes, freeze=freeze, unfreeze_last=unfreeze_last,
                                     features=features)
    src_train = src.record["train"]
    dataset = dataset or src_train["dataset"]
    if dataset == src_train["dataset"] and src_train.get("data_dir") and "data_dir" not in overrides:
        overrides["data_dir"] = src_train["data_dir"]
    return train(cls.name, dataset=dataset, out=out, init=init, **{**values, **overrides})


def _layer_sizes(hidden) -> list[int]:
    """The head's hidden sizes as a list of ints, from a list, one int or the CLI's "128,64" (a text is
    never read letter by letter)."""
    try:
        if isinstance(hidden, bool) or not isinstance(hidden, (int, str, list, tuple)):
            raise ValueError
        sizes = coerce(hidden, list[int], "hidden")
    except (ValueError, TypeError):
        raise ConfigError(f"hidden={hidden!r:.60} (--hidden): give the head's layer sizes, e.g. [128, 64] or 60 "
                          "(128,64 on the command line)") from None
    if not all(1 <= s <= 65536 for s in sizes):  # said under the option's name, not the config key (head) it sets
        raise ConfigError(f"hidden={sizes} (--hidden): each layer of the head holds 1 to 65536 units")
    return sizes

"""Transfer: a model trained on the labels on top of the encoder of a trained run (`zoo finetune`).

Which model that is, and what it takes from the source, is the plugins' business: any installed model
that implements `ZooModel.transfer_from` can be trained on top of another run."""

from __future__ import annotations

import dataclasses
from os import PathLike
from pathlib import Path
from typing import Any

from zoo import hub, registry
from zoo.console import check_log, to_stderr
from zoo.data import canonical_dataset_name, load_dataset, relocated
from zoo.data.datasets import folder_of
from zoo.hub.locations import COMMIT_RE, HF_SCHEME
from zoo.errors import CapabilityError, ConfigError, DataNotFoundError, RunError
from zoo.model import ZooModel
from zoo.runs.config import coerce
from zoo.runs.config_files import config_values
from zoo.runs.info import how_ended
from zoo.runs.loading import load
from zoo.runs.run import Run, other_images
from zoo.tasks.train_arguments import check_flags
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
    `model`: which installed transfer model to train, when there is more than one.
    The other keywords are `zoo.train`'s (epochs=, lr=, overwrite=, data_dir=, ...); the keys the source's
    encoder fixes (its layers, activation, code size) are refused: the copied weights need them as they were."""
    given = {"freeze": freeze, "unfreeze_last": unfreeze_last, "features": features}
    for name in (k for k, v in given.items() if v is None):  # None is no setting: never a silent "train it all"
        raise ConfigError(f"{name}=None: give a value, or leave it out for its default")
    sizes = _layer_sizes(hidden)
    cls = _pick(model)
    _check_out(out)
    check_flags(overrides.get("overwrite", False), overrides.get("progress"))  # zoo.train's, before the source is read
    if "init" in overrides:  # the head's init copies the source's encoder: a second one would undo it
        raise ConfigError("init=: zoo.finetune sets the head's initial weights itself (the source's encoder, copied)",
                          "Leave init out; zoo.train(..., init=...) takes one for a model trained from scratch.")
    dataset, overrides, from_config = _with_config(cls, dataset, overrides)
    check_log(overrides.get("log", to_stderr))
    source = _pinned(source, overrides.get("log", to_stderr))
    src = load(source, device=None if isinstance(source, Run) else "cpu")  # a caller's Run stays where it is
    changed = src.weights_changed()
    if changed:  # the new run would record the file's weights as its encoder's source
        raise RunError(f"{changed}: the fine-tuned run would record {src.source} as its encoder's source",
                       "zoo.load the run again for the weights in its file, or train and save the changed model first.")
    if out is not None and Path(out).resolve() == src.folder.resolve():
        raise ConfigError(f"out={out} is the run it fine-tunes: its encoder run would be replaced by the head",
                          "Choose another --out (out=) for the head.")
    values, init = cls.transfer_from(src, hidden=sizes, freeze=freeze, unfreeze_last=unfreeze_last,
                                     features=features)
    for key in sorted(set(values) & set(overrides)):
        given = f"{key}={overrides[key]!r:.40} ({'in config=' if key in from_config else f'--set {key}'})"
        if key in src.record["config"]:
            raise ConfigError(f"{given}: '{key}' comes from the source run "
                              f"{src.source} ({key}={values[key]!r}), whose encoder the head reads",
                              f"Leave {key} out: the copied weights compute the source's code only in the network "
                              "they were trained in.")
        raise ConfigError(f"{given}: zoo finetune sets '{key}' itself ({key}={values[key]!r})",
                          "Use its options (zoo finetune --help: --hidden, --freeze, --unfreeze-last, --features; "
                          "hidden=, freeze=, unfreeze_last=, features= in Python).")
    log = overrides.get("log", to_stderr)
    _say_unfinished(src, log)
    src_train = src.record["train"]
    own = dataset is None or canonical_dataset_name(str(dataset)) == src_train["dataset"]
    if own:  # the source's own data set, read as it was trained on, where --data-dir says it is now
        dataset = src_train["dataset"]
        if overrides.get("data_dir"):  # a moved folder: its folder (as `zoo eval RUN --data-dir` takes it)
            dataset, overrides["data_dir"] = relocated(dataset, overrides["data_dir"])
        elif src_train.get("data_dir"):
            overrides["data_dir"] = src_train["data_dir"]
        if src_train.get("image_size") and overrides.get("image_size") is None:  # the size its encoder takes
            overrides["image_size"] = src_train["image_size"]
        if folder_of(dataset) is not None:
            _say_other_images(src, dataset, overrides.get("data_dir"), log)
    return train(cls.name, dataset=dataset, out=out, init=init, **values, **overrides)


def _pinned(source, log):
    """An hf:// source on a branch (or none: main) as the commit it is now, which the head records (init_from):
    a branch moves, and `zoo info` of the head then named weights that were no longer its encoder's. A Run
    loaded from a branch names the commit it was loaded at: its folder is huggingface-hub's snapshots/COMMIT."""
    text = source.source if isinstance(source, Run) else source
    if not (isinstance(text, str) and hub.is_hub_source(text) and hub.parse(text).kind == "hf"):
        return source
    loc = hub.parse(text)
    if loc.revision and COMMIT_RE.fullmatch(loc.revision):
        return source
    if isinstance(source, Run):
        if not COMMIT_RE.fullmatch(source.folder.name):  # another cache layout: the branch is all that is known
            return source
        return dataclasses.replace(source, source=f"{HF_SCHEME}{loc.repo}@{source.folder.name}")
    return f"{HF_SCHEME}{loc.repo}@{hub.pull(source, log=log)['commit']}"


def _check_out(out: Any) -> None:
    """out= as zoo.train takes it (a text or a path), checked before the source is loaded; "" names nothing, as
    the command line says (an unset variable's value would otherwise train into a default folder)."""
    if out is not None and not isinstance(out, (str, PathLike)):
        raise ConfigError(f"out= takes a text or a path, not {out!r:.60}")
    if out is not None and not str(out).strip():
        raise ConfigError(f"out={out!r}: an empty value names nothing",
                          "Name the head's run folder, or leave out= out for a new one under runs/.")


def _with_config(cls, dataset: str | None, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any], set[str]]:
    """config= (a dict or a TOML file, as zoo.train takes it) read into the keywords, which win over its keys as
    they do in zoo.train: its keys then meet the checks the keywords meet (its freeze, its encoder's keys), and
    its dataset is the dataset= keyword's. (Passed on whole, the head's own values silently won over its keys.)
    Also the keys it gave (for the messages)."""
    if overrides.get("config") is None:
        return dataset, {k: v for k, v in overrides.items() if k != "config"}, set()
    given = config_values(overrides["config"])
    named = given.pop("model", None)
    if named and named != cls.name:
        raise ConfigError(f"the config file is for model '{named}', not '{cls.name}' (the head zoo finetune trains)")
    config_dataset = given.pop("dataset", None)
    for key in sorted(set(given) & {"out", "resume", "preset", "log", "progress", "callbacks", "init", "overwrite",
                                    "config"}):
        raise ConfigError(f"config= holds '{key}', which is no config key: it is a keyword of zoo.finetune",
                          f"Pass it as {key}= (or leave it out).")
    merged = {**given, **{k: v for k, v in overrides.items() if k != "config"}}
    return (dataset if dataset is not None else config_dataset), merged, set(given) - set(overrides)


def _say_other_images(src: Run, dataset: str, data_dir: str | None, log) -> None:
    """A source's folder whose images changed since it was trained (zoo eval says it too): its splits are drawn
    anew, so the head's validation and test images may be ones the encoder was trained on. Read as the source read
    it, at its shape; its classes are not held to the source's (the head learns the labels it finds)."""
    train_cfg = src.train_config
    try:
        data = load_dataset(dataset, data_dir=data_dir or None, val_fraction=train_cfg.val_fraction,
                            image_size=train_cfg.image_size, binarize=train_cfg.binarize, shape=src.shape)
    except DataNotFoundError as e:
        if folder_of(dataset).is_dir():  # a damaged image: its own hint
            raise
        raise DataNotFoundError(e.message, "Where the run's images are now, say so: --data-dir FOLDER (data_dir= in "
                                "Python); or fine-tune on other images with --dataset.") from None
    differ = other_images(data, src.record)
    if differ:
        log(f"note: {differ}: not the images {src.source} was trained on, so the head's validation and test images "
            "may include images its encoder was trained on: its test accuracy is then not of held-out images")


def _say_unfinished(src: Run, log) -> None:
    """A source still training, or stopped, holds the weights of one of its epochs: the head reads those."""
    history = src.training_history()
    ended = how_ended(src.folder, history, src.record["train"].get("epochs"))
    if ended in ("training", "interrupted"):
        log(f"note: {src.source} is {'being trained now' if ended == 'training' else 'an interrupted training'} "
            f"({len(history)} of {src.record['train'].get('epochs')} epochs): the head reads the weights it holds "
            "now")


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

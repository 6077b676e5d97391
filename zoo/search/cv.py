"""K-fold cross-validation of a configuration (`zoo cv`), each fold trained by zoo.training.fit.

Folds are scikit-learn's `KFold` over the whole training set (the training and validation images of
the data set together); the test set is never touched by the folds.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from zoo.arguments import refuse_command_options
from zoo.console import check_log, quiet
from zoo.data import ImageData, canonical_data_dir, canonical_dataset_name
from zoo.data.datasets import with_binarization
from zoo.device import cuda_only_notes, keeps_callers_random_state, pick_device
from zoo.arguments import home
from zoo.errors import ConfigError, Interrupted, TrainingDiverged
from zoo.model import build_seeded
from zoo.runs.config import check_count, check_flag, resolve_config
from zoo.runs.eval_images import images_digest
from zoo.runs.run import training_data
from zoo.search.cv_files import claimed, keep_folds, kept_folds, write_results
from zoo.search.settings import merged_keys
from zoo.tasks.training import model_to_train
from zoo.tracking import logger_classes
from zoo.training.callbacks import callbacks_for, check
from zoo.training.fit import (REDUCE, FitResult, UnrecordedMetric, check_recorded, fit, has_own_test, metric_key,
                              probe_keys, unrecorded)

# Training settings that change where and how it is watched, not a fold's figures (resume keeps its folds).
UNSCORED = ("device", "data_dir", "plot_every", "loggers", "tensorboard_dir", "mlflow_uri", "compile")
STD = "sample standard deviation, n-1"  # of the folds' values: what "std" is, said in cv.json and by the CLI


def training_pool(data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and validation images together, each image once: a tiny folder's validation split
    reuses the training images, and counting them twice would let two folds hold out the same image."""
    if "val" in data.reused:
        return data.train_x, data.train_y
    return torch.cat([data.train_x, data.val_x]), torch.cat([data.train_y, data.val_y])


def grey_data(train_cfg, load: Callable[[Any], ImageData]) -> ImageData:
    """The data set of `train_cfg` in grey levels, as `load` (given training settings) reads it: folds
    are cut from grey images and binarised each as a run's splits are (`folds`)."""
    return load(dataclasses.replace(train_cfg, binarize="none"))


def folds(data: ImageData, k: int, seed: int = 0, binarize: str = "none") -> Iterator[ImageData]:
    """The k folds of the whole training set (train + validation images) of grey-level `data`:
    scikit-learn's KFold, shuffled with `seed`; each fold trains on k-1 parts and validates on the
    remaining one, so every fold holds out different images, then is binarised as `binarize` says, as a
    run's splits are (dynamic: its validation images once, its training images every batch; pooling
    binarised validation images with grey training ones mixed the two kinds in every fold). Too few
    images are refused here, before any fold is made."""
    x, y = training_pool(data)
    n = x.shape[0]
    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {k}")
    if k > n:
        raise ConfigError(f"{k} folds is more than the {n} training image(s) of {data.name}: each fold must "
                          f"hold out different images", f"Ask for at most {n} folds." if n >= 2 else
                          "Cross-validation needs a data set with at least 2 training images.")
    return _folds(data, x, y, k, seed, binarize)


def _folds(data: ImageData, x: torch.Tensor, y: torch.Tensor, k: int, seed: int,
           binarize: str) -> Iterator[ImageData]:
    import numpy as np
    from sklearn.model_selection import KFold

    reused = {split: of for split, of in data.reused.items() if split != "val"}  # each fold has its own
    for tr, va in KFold(n_splits=k, shuffle=True, random_state=seed).split(np.arange(x.shape[0])):
        tr_i = torch.as_tensor(tr, device=x.device)
        va_i = torch.as_tensor(va, device=x.device)
        yield with_binarization(dataclasses.replace(data, train_x=x[tr_i], train_y=y[tr_i], val_x=x[va_i],
                                                    val_y=y[va_i], reused=reused, files={}), binarize)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _row(name: str, data: ImageData, r: FitResult, key: str) -> dict[str, Any]:
    return {"fold": name, "train_images": int(data.train_x.shape[0]), "val_images": int(data.val_x.shape[0]),
            "epochs": r.epochs, "scored_epoch": r.scored_epoch, "value": r.value, "test_epoch": r.test_epoch,
            "test": r.test, "seconds": round(r.seconds, 3), "stopped": r.stopped,
            "curve": [{k: v for k, v in h.items() if k in ("epoch", "train_loss", "val_loss", key)} for h in r.history]}


def _checked_names(metric: Any, out: Any, reduce: Any) -> Path | None:
    """metric=, out= and reduce= of a Python call, refused before anything is loaded; `out` as a Path."""
    if metric is not None and not (isinstance(metric, str) and metric.strip()):
        raise ConfigError(f"metric= is the name of a metric the model records (such as 'mse'), not {metric!r:.60}",
                          "Leave it out to score by the metric the model's early stopping watches.")
    if reduce not in REDUCE:
        raise ConfigError(f"unknown reduction {reduce!r:.60}", f"Use one of {', '.join(REDUCE)}.")
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)) or (isinstance(out, str) and not out.strip()):
        raise ConfigError(f"out= is the folder to write cv.json and cv.png into (a path), not {out!r:.60}")
    return Path(out)


def _fit_fold(cls: type, model_cfg, train_cfg, fold: ImageData, grey: ImageData, name: str, metric: str,
              reduce: str) -> FitResult:
    """One fold trained and scored; its refusals said as the fold's where they are (not those of the set)."""
    try:
        return fit(cls, model_cfg, train_cfg, fold, metric=metric, reduce=reduce, test=True)
    except UnrecordedMetric:  # --metric names nothing the model records: no fold's doing
        raise
    except ConfigError as e:
        if _refused_anyway(cls, model_cfg, train_cfg, grey):  # the set's or the configuration's (no labels)
            raise
        # a limit on the training images (a VampPrior's pseudo-inputs) that a fold's fewer images reach
        raise ConfigError(f"fold {name}, which trains on {fold.train_x.shape[0]} of the "
                          f"{fold.train_x.shape[0] + fold.val_x.shape[0]} images: {e.message}", e.hint) from None
    except TrainingDiverged as e:
        raise TrainingDiverged(f"fold {name}: {e.message.rstrip('.')}; nothing was written", e.hint) from None


def _refused_anyway(cls: type, model_cfg, train_cfg, grey: ImageData) -> bool:
    """Whether the model is refused on all the training images of `grey` too (binarised as a fold's), as it is on a
    fold's."""
    x, y = training_pool(grey)
    pool = with_binarization(dataclasses.replace(grey, train_x=x, train_y=y), train_cfg.binarize)
    try:
        check(callbacks_for(train_cfg), build_seeded(cls, model_cfg, pool, train_cfg.seed, torch.device("cpu")))
    except ConfigError:
        return True
    except Exception:  # noqa: BLE001 - not a refusal of the set (memory, say): the fold's is said
        return False
    return False


def _default_metric(cls: type, model_cfg, train_cfg, data: ImageData) -> str:
    """The metric the model's early stopping watches; refused, with the names to choose from, where it watches none
    (a GAN: no validation loss means better)."""
    if cls.monitor is None:
        keys = probe_keys([(cls, model_cfg, train_cfg, data)]) or []
        raise unrecorded("", [{k: 0.0 for k in keys}], said=f"{cls.name} has no default metric to score the folds "
                         "by: its early stopping watches none")
    return cls.monitor


@keeps_callers_random_state
def cross_validate(model: str | None = None, *, folds_k: int = 5, dataset: str | None = None, preset: str | None = None,
                   config: str | Path | dict | None = None, overrides: dict[str, Any] | None = None,
                   compare_holdout: bool = False, metric: str | None = None, reduce: str = "best",
                   out: str | Path | None = None, overwrite: bool = False, log: Callable[[str], None] = quiet,
                   **keys) -> dict[str, Any]:
    """K-fold cross-validation of one configuration: per-fold validation (and test) losses, their mean
    and sample standard deviation; with `compare_holdout`, the plain validation split trained beside it.
    With `out`, writes cv.json and cv.png (validation curves per fold) there (`overwrite`: over an earlier
    cross-validation's, at the end). Config keys go in `overrides`
    or as keywords, as `zoo.train` takes them (epochs=5). With `out`, the folds finished are kept there as they
    end (folds.json), and the same call after a stop (Ctrl-C, a kill) goes on from them; without, a stop keeps
    nothing."""
    check_log(log, loggers=False)
    out, config = home(out), home(config)  # ~/cv is the user's home, as everywhere (zoo.arguments.home)
    refuse_command_options("cross_validate", keys)
    folds_k = check_count(folds_k, "--folds (folds_k=)", 2)
    check_flag(compare_holdout, "compare_holdout")
    check_flag(overwrite, "overwrite")
    out = _checked_names(metric, out, reduce)
    model = model_to_train(model, preset, config, "cv")  # best.toml names its model
    cls, model_cfg, train_cfg = resolve_config(model, preset=preset, config=config,
                                               overrides=merged_keys(keys, overrides, dataset))
    train_cfg.dataset = canonical_dataset_name(train_cfg.dataset)  # a folder by its absolute path, as zoo train has it
    train_cfg.data_dir = canonical_data_dir(train_cfg.data_dir)  # one that is no folder refused, as zoo train does
    if train_cfg.loggers:  # an unknown one refused as `zoo train` refuses it, a known one said unused
        logger_classes(train_cfg.loggers)
        log(f"note: a cross-validation logs to no logger (its folds are not kept as runs): loggers="
            f"{','.join(train_cfg.loggers)} is not used")
    with claimed(out, overwrite):
        where = ["before the first fold", 0]  # where a stop lands, as the trainings go; the folds kept
        try:
            result = _cross_validate(cls, model, model_cfg, train_cfg, folds_k, compare_holdout, metric, reduce, log,
                                     where, out, overwrite)
        except Interrupted as e:  # Ctrl-C, SIGTERM in a training: the same stop, said for cv
            raise Interrupted(f"cross-validation interrupted {where[0]} ({e.message}); {_kept(where[1], out)}") \
                from None
        except KeyboardInterrupt:  # between two trainings
            raise Interrupted(f"cross-validation interrupted {where[0]}; {_kept(where[1], out)}") from None
        if out is not None:
            result["written"] = write_results(result, out)
    return result


def _kept(done: int, out: Path | None) -> str:
    """What a stopped cross-validation kept: its finished folds, in --out, which the same command goes on from."""
    if out is None:
        return "nothing was kept (with --out, the folds finished are kept and the same command goes on from them)"
    if not done:
        return "no fold had finished: the same command starts again"
    return f"fold{'s 1-' if done > 1 else ' '}{done} {'are' if done > 1 else 'is'} kept in {out}: the same command " \
           f"goes on from {'them' if done > 1 else 'it'}"


def _cross_validate(cls, model: str, model_cfg, train_cfg, folds_k: int, compare_holdout: bool, metric: str | None,
                    reduce: str, log: Callable[[str], None], where: list, out: Path | None,
                    overwrite: bool) -> dict[str, Any]:
    device = pick_device(train_cfg.device)
    for note in cuda_only_notes(train_cfg, device):  # the folds' trainings say nothing (fit logs quietly)
        log(f"note: {note}")
    grey = grey_data(train_cfg, lambda cfg: training_data(cfg, device))
    data = with_binarization(grey, train_cfg.binarize)  # the standard split, as `zoo train` has it
    metric = metric or _default_metric(cls, model_cfg, train_cfg, data)
    key = metric_key(metric)  # as metrics.jsonl names it
    parts = folds(grey, folds_k, train_cfg.seed, train_cfg.binarize)  # refuses too few images before any training
    check_recorded(cls, model_cfg, train_cfg, data, metric)  # a misspelt --metric, before a fold's training
    if compare_holdout and data.val_x.shape[0] == 0:
        raise ConfigError("--compare-holdout: there is no validation split to train the holdout on (val_fraction "
                          "is 0)", "Leave out --compare-holdout, or set val_fraction above 0 (--set val_fraction=0.1).")
    if compare_holdout and "val" in data.reused:
        raise ConfigError(f"--compare-holdout: {data.caveat()}", "Leave out --compare-holdout, or add images.")
    if not has_own_test(data):
        log(f"no test figures: {data.caveat() or f'{data.name} has no test images'}")
    # What the folds are folds of: a stopped cross-validation goes on only from folds of the same (settings that
    # change no figure, such as the device asked for, left out).
    what = {"model": model, "config": dataclasses.asdict(model_cfg), "folds": folds_k, "metric": key,
            "reduce": reduce, "images": images_digest(*training_pool(grey)),
            "train": {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in UNSCORED}}
    rows = kept_folds(out, what, overwrite)[:folds_k]
    for i, fold in enumerate(parts, 1):
        if i <= len(rows):  # finished before a stop: its figures as they were
            where[:] = [f"after fold {i}/{folds_k}", i]
            log(f"fold {i}/{folds_k}: {key} {rows[i - 1]['value']:.5g} (kept from the stopped cross-validation)")
            continue
        where[0] = f"in fold {i}/{folds_k}"
        r = _fit_fold(cls, model_cfg, train_cfg, fold, grey, f"{i}/{folds_k}", metric, reduce)
        rows.append(_row(str(i), fold, r, key))
        keep_folds(out, what, rows)
        where[:] = [f"after fold {i}/{folds_k}", i]
        log(f"fold {i}/{folds_k}: {key} {r.value:.5g} ({_epoch(r)}), {r.seconds:.1f} s")
    mean, std = mean_std([r["value"] for r in rows])
    result: dict[str, Any] = {
        "model": model, "dataset": data.name, "pixels": data.pixels(), "folds": folds_k, "metric": key,
        "reduce": reduce, "config": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
        "mean": mean, "std": std, "std_is": STD, "test_weights": _test_weights(reduce, key), "per_fold": rows,
    }
    tests = [r["test"][key[4:]] for r in rows if r["test"] and key.startswith("val_") and key[4:] in r["test"]]
    if tests:
        result["test_mean"], result["test_std"] = mean_std(tests)
    if compare_holdout:
        where[0] = "in the holdout training"
        r = fit(cls, model_cfg, train_cfg, data, metric=metric, reduce=reduce, test=True)
        result["holdout"] = _row("holdout", data, r, key)
        log(f"holdout ({train_cfg.val_fraction:g} of the training set): {key} {r.value:.5g}")
    return result


def _epoch(r: FitResult) -> str:
    if r.scored_epoch is None:
        return f"mean of {r.epochs} epochs; tested: epoch {r.test_epoch}"
    return f"epoch {r.scored_epoch}"


def _test_weights(reduce: str, key: str) -> str:
    """The epoch of each fold's test figure (its row's test_epoch), in words."""
    if reduce == "mean":
        return "each fold's early-stopping epoch, whose weights the test figure is of (--reduce mean scores no " \
               "single epoch)"
    return f"the epoch of each fold's {reduce} {key}, the score, whose weights the test figure is of"

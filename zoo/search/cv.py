"""K-fold cross-validation of a configuration (`zoo cv`), each fold trained by zoo.training.fit.

Folds are scikit-learn's `KFold` over the whole training set (the training and validation images of
the data set together); the test set is never touched by the folds.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from zoo.analysis.plots import save_figure, subplots
from zoo.arguments import refuse_command_options
from zoo.console import check_log, quiet
from zoo.data import ImageData
from zoo.data.datasets import with_binarization
from zoo.device import cuda_only_notes, keeps_callers_random_state, pick_device
from zoo.errors import ConfigError, Interrupted
from zoo.runs import checkpoint as ckpt
from zoo.runs.config import check_count, check_flag, resolve_config
from zoo.runs.run import training_data
from zoo.tasks.training import model_to_train
from zoo.training.fit import REDUCE, FitResult, UnrecordedMetric, check_recorded, fit, has_own_test, metric_key


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
            "epochs": r.epochs, "best_epoch": r.best_epoch, "value": r.value,
            "test": r.test, "seconds": round(r.seconds, 3), "stopped": r.stopped,
            "curve": [{k: v for k, v in h.items() if k in ("epoch", "train_loss", "val_loss", key)} for h in r.history]}


def check_cv_out(out: Path) -> None:
    """`--out` of a cross-validation: a new folder or one it wrote before? Never a run's folder, nor over an
    earlier cross-validation's cv.json (of another model, perhaps), which it replaced without a word."""
    if (out / ckpt.CONFIG).is_file():
        raise ConfigError(f"--out {out} is a run folder: a cross-validation goes into a folder of its own",
                          "Choose another --out.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if (out / "space.toml").is_file():  # a search's study folder: its outputs are rewritten from its trials
        raise ConfigError(f"--out {out} is a search's study folder: a cross-validation goes into a folder of its own",
                          "Choose another --out.")
    held = [n for n in ("cv.json", "cv.png") if (out / n).exists()]
    if held:
        raise ConfigError(f"--out {out} holds an earlier cross-validation ({', '.join(held)})",
                          "Choose another --out, or move those files away first.")


@keeps_callers_random_state
def cross_validate(model: str | None = None, *, folds_k: int = 5, dataset: str | None = None, preset: str | None = None,
                   config: str | Path | dict | None = None, overrides: dict[str, Any] | None = None,
                   compare_holdout: bool = False, metric: str | None = None, reduce: str = "best",
                   out: str | Path | None = None, log: Callable[[str], None] = quiet, **keys) -> dict[str, Any]:
    """K-fold cross-validation of one configuration: per-fold validation (and test) losses, their mean
    and standard deviation; with `compare_holdout`, the plain validation split trained beside it.
    With `out`, writes cv.json and cv.png (validation curves per fold) there. Config keys go in `overrides`
    or as keywords, as `zoo.train` takes them (epochs=5)."""
    check_log(log, loggers=False)
    refuse_command_options("cross_validate", keys)
    folds_k = check_count(folds_k, "--folds (folds_k=)", 2)
    check_flag(compare_holdout, "compare_holdout")
    model = model_to_train(model, preset, config, "cv")  # best.toml names its model
    overrides = {**keys, **(overrides or {})}
    if dataset is not None:
        overrides["dataset"] = dataset
    cls, model_cfg, train_cfg = resolve_config(model, preset=preset, config=config, overrides=overrides)
    if out is not None:
        check_cv_out(Path(out))
    if reduce not in REDUCE:
        raise ConfigError(f"unknown reduction '{reduce}'", f"Use one of {', '.join(REDUCE)}.")
    device = pick_device(train_cfg.device)
    for note in cuda_only_notes(train_cfg, device):  # the folds' trainings say nothing (fit logs quietly)
        log(f"note: {note}")
    grey = grey_data(train_cfg, lambda cfg: training_data(cfg, device))
    data = with_binarization(grey, train_cfg.binarize)  # the standard split, as `zoo train` has it
    metric = metric or cls.monitor or "loss"
    key = metric_key(metric)  # as metrics.jsonl names it
    parts = folds(grey, folds_k, train_cfg.seed, train_cfg.binarize)  # refuses too few images before any training
    check_recorded(cls, model_cfg, train_cfg, data, metric)  # a misspelt --metric, before a fold's training
    if compare_holdout and "val" in data.reused:
        raise ConfigError(f"--compare-holdout: {data.caveat()}", "Leave out --compare-holdout, or add images.")
    if not has_own_test(data):
        log(f"no test figures: {data.caveat() or f'{data.name} has no test images'}")
    rows = []
    for i, fold in enumerate(parts):
        try:
            r = fit(cls, model_cfg, train_cfg, fold, metric=metric, reduce=reduce, test=True)
        except UnrecordedMetric:  # --metric names nothing the model records: no fold's doing
            raise
        except ConfigError as e:  # a limit on the training images (pseudo-inputs) is a fold's, not the set's
            raise ConfigError(f"fold {i + 1}/{folds_k}, which trains on {fold.train_x.shape[0]} of the "
                              f"{fold.train_x.shape[0] + fold.val_x.shape[0]} images: {e.message}", e.hint) from None
        except Interrupted as e:  # Ctrl-C, SIGTERM: the same stop, said for cv, which keeps nothing
            raise Interrupted(f"cross-validation interrupted in fold {i + 1}/{folds_k} ({e.message}); nothing was "
                              "written: zoo cv does not resume, run it again") from None
        rows.append(_row(str(i + 1), fold, r, key))
        log(f"fold {i + 1}/{folds_k}: {key} {r.value:.5g} (best epoch {r.best_epoch}), "
            f"{r.seconds:.1f} s")
    mean, std = mean_std([r["value"] for r in rows])
    result: dict[str, Any] = {
        "model": model, "dataset": data.name, "pixels": data.pixels(), "folds": folds_k, "metric": key,
        "reduce": reduce, "config": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
        "mean": mean, "std": std, "per_fold": rows,
    }
    tests = [r["test"][key[4:]] for r in rows if r["test"] and key.startswith("val_") and key[4:] in r["test"]]
    if tests:
        result["test_mean"], result["test_std"] = mean_std(tests)
    if compare_holdout:
        r = fit(cls, model_cfg, train_cfg, data, metric=metric, reduce=reduce, test=True)
        result["holdout"] = _row("holdout", data, r, key)
        log(f"holdout ({train_cfg.val_fraction:g} of the training set): {key} {r.value:.5g}")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out / "cv.json", result)
        _plot(result, out / "cv.png")
        result["written"] = [str(out / "cv.json"), str(out / "cv.png")]
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    key = result["metric"]  # the figure each fold is scored by, per epoch; a marker on each (one epoch is a point)
    fig, ax = subplots(figsize=(6.4, 4.2), dpi=100)
    for r in result["per_fold"]:
        pts = [(c["epoch"], c[key]) for c in r["curve"] if key in c]
        if pts:
            ax.plot(*zip(*pts), color="tab:blue", alpha=0.45, lw=1, marker="o", ms=3)
    if "holdout" in result:
        pts = [(c["epoch"], c[key]) for c in result["holdout"]["curve"] if key in c]
        if pts:
            ax.plot(*zip(*pts), color="tab:red", lw=2, marker="o", ms=3, label="holdout split")
    ax.plot([], [], color="tab:blue", marker="o", ms=3, label=f"{result['folds']} folds")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key} ({result['pixels']})")
    ax.set_title(f"{result['model']} on {result['dataset']}: {result['folds']}-fold CV "
                 f"{result['mean']:.4g} ± {result['std']:.2g}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)

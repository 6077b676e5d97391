"""`zoo search` (Optuna studies over a space file) and `zoo cv` (k-fold cross-validation).
Thin wrappers over zoo.search and zoo.search.cv; torch and optuna are imported only when a command runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from zoo.cli.app import (DATASET_HELP, DEVICE_HELP, IN_FOLDER, IN_PATH, OUT_FOLDER, SEED, TEXT, Count, cli,
                         note_preset_dataset, train_default, training_default)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


@cli.command()
@click.argument("model", required=False)
@click.option("--space", "space", help="A space file (TOML), or the name of an example space (--list-spaces).")
@click.option("--strategy", type=click.Choice(["tpe", "random", "grid"]), default=None,
              help="How trials are drawn: Optuna's TPE, random or grid sampler (default: a resumed study's, else the "
                   "space's, else tpe).")
@click.option("--sampler", "old_sampler", hidden=True, default=None)
@click.option("--trials", type=int, default=None,
              help="Trials in the study, over all workers (default: a resumed study's budget, else the space's).")
@click.option("--pruner", type=click.Choice(["auto", "median", "hyperband", "none"]), default=None,
              help="Pruner fed every epoch's objective metric (default: the space's, else auto: no pruning for a "
                   "search of at most 5 trials, or of epochs too few to prune; else Optuna's median pruner, "
                   "pruning only once max(5, trials/10) trials are complete, after a trial's first "
                   "max(2, epochs/3) epochs). median: Optuna's defaults. No pruner stops a trial at its last "
                   "epoch.")
@click.option("--study", default=None,
              help="Study name (default MODEL-SPACE); rerun with it to resume (with the data set, epochs, "
                   "objective and space it began with: another is refused).")
@click.option("--storage", default=None,
              help="Optuna storage URL shared by workers (default: a journal file in the study folder).")
@click.option("--workers", default=1, show_default=True, type=int, help="Local worker processes.")
@click.option("--cv", "cv", type=int, default=None,
              help="Score each trial by K-fold cross-validation (K 2 or more; 0: by the validation split, the "
                   "default).")
@click.option("--timeout", type=float, default=None, help="Start no new trial after S seconds.")
@click.option("--out", "-o", type=OUT_FOLDER, help="Study folder (default studies/STUDY).")
@click.option("--dataset", "-d", type=TEXT, default=None,
              help=f"mnist, fashion-mnist, kmnist, digits or folder:PATH. Default: the space's, else its "
                   f"preset's, else {train_default('dataset')}.")
@click.option("--set", "-s", "assignments", multiple=True, metavar="KEY=VALUE", help="Fix a config key in every trial.")
@click.option("--epochs", type=int, default=None, help="Epochs per trial.")
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
@click.option("--data-dir", type=IN_FOLDER, default=None, help="Look for data files here first.")
@click.option("--seed", type=SEED, default=None, help="Seed of the trials' draws (0 to 2**32-1).")
@click.option("--heartbeat", default=30, show_default=True, type=Count(1, 3600),
              help="Seconds between a trial's heartbeats; a trial silent for 2-3 of them is failed and retried.")
@click.option("--vectorize", default=1, show_default=True, type=Count(1, 4096),
              help="Ask K trials at once; those with the same shapes (differing in lr, weight decay, momentum, "
                   "seed, patience, dropout p, noise level, β) train together in one vmapped step.")
@click.option("--concurrent/--sequential", default=None,
              help="Train the different-shape groups of --vectorize at once, each in a thread with its own CUDA "
                   "stream (default: concurrent on CUDA, sequential elsewhere).")
@click.option("--log", "loggers", default=None, metavar="NAME[,NAME]",
              help="Also log the study to these loggers (tensorboard, mlflow, or a plugin's: zoo list shows them): "
                   "a parent with a child per trial.")
@click.option("--list-spaces", is_flag=True, help="List the example spaces zoo ships.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON (alone on stdout: the trials' lines go to stderr).")
def search(model, space, strategy, old_sampler, trials, pruner, study, storage, workers, cv, timeout, out, dataset,
           assignments, epochs, device, data_dir, seed, heartbeat, vectorize, concurrent, loggers, list_spaces,
           as_json):
    """Hyperparameter search over a space file with Optuna.

    \b
    zoo search convae --space report-001-mnist-optuna --dataset mnist
    zoo search convae --space my.toml --trials 50 --workers 4 --study s1
    zoo search convae --space my.toml --study s1 --storage postgresql://user@host/db
    zoo train convae --config studies/s1/best.toml     # retrain the best trial

    Outputs in the study folder: trials.csv, best.toml, history.png, importance.png, summary.json.
    """
    from zoo.runs.config import parse_assignments
    from zoo.errors import ConfigError
    from zoo.search.space import bundled_spaces, load_space

    if list_spaces:
        for name, path in sorted(bundled_spaces().items()):
            desc = load_space(path).search.get("description", "")
            click.echo(f"{name:<28} {desc}")
        return
    if old_sampler is not None:  # zoo 0.1's name; "sampler" now means a latent sampler (zoo generate)
        raise click.UsageError(f"--sampler is now --strategy (zoo 0.2): write --strategy {old_sampler}")
    if model is None:
        raise ConfigError("which model? e.g. zoo search convae --space space.toml",
                          "`zoo list` shows the installed models.")
    from zoo.search import run_search

    overrides = parse_assignments(assignments)
    overrides.update({k: v for k, v in {"dataset": dataset, "epochs": epochs, "device": device,
                                        "data_dir": data_dir, "loggers": loggers}.items() if v is not None})
    summary = run_search(model, space, study=study, out=out, storage=storage, strategy=strategy, pruner=pruner,
                         trials=trials, cv=cv, seed=seed, timeout=timeout, workers=workers, heartbeat=heartbeat,
                         vectorize=vectorize, concurrent=concurrent,
                         overrides=overrides, log=lambda m: click.echo(m, err=as_json))  # --json: stdout is JSON
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    # Nothing to retrain: a script's next step (zoo train --config best.toml) would fail.
    if not summary.get("best") and not summary["states"]["running"]:
        from zoo.errors import RunError

        written = summary.get("written") or []
        folder = f" {Path(written[-1]).parent}" if written else ""
        raise RunError("no trial of the search completed, so there is no best.toml",
                       "Each trial's line above says why. An invalid configuration is a value of the space or of "
                       "--set that the model refuses (the line names it): change it, then search again with "
                       f"another --out (the study folder{folder} keeps its settings and trials: delete it to "
                       "start it afresh).")


def _print_summary(s: dict) -> None:
    st = s["states"]
    click.echo(f"\nstudy {s['study']} ({s['model']}): {s['trials']} trials: {st['complete']} complete, "
               f"{st['pruned']} pruned, {st['fail']} failed"
               + (f", {st['running']} running" if st["running"] else "")
               + (f", {st['waiting']} queued" if st["waiting"] else "")
               + (f"  ({s['seconds']:.0f} s)" if s.get("seconds") is not None else ""))
    if s["pruned_reasons"]:
        click.echo("pruned: " + ", ".join(f"{n} by the pruner" if r == "pruner" else f"{n} {r}"
                                          for r, n in s["pruned_reasons"].items()))
    for note in s.get("notes", []):
        click.echo(f"note: {note}")
    best = s.get("best")
    if best:
        obj = s["objective"]
        measured = best.get(obj["result"])
        parts = f"{obj['metric']} {measured:.5g}" if measured is not None else ""
        if measured is not None and abs(best["value"] - measured) > 0:
            parts += f" + penalties {best['value'] - measured:.4g}"
        click.echo(f"best: trial {best['number']}, objective {best['value']:.5g}" + (f" ({parts})" if parts else ""))
        for k, v in best["values"].items():
            click.echo(f"  {k} = {_fmt(v)}")
        click.echo(f"retrain it: {s['retrain']}")
        if "measure" in s:
            click.echo(f"its objective is the mean over the folds; to measure it as the search did: {s['measure']}")
    click.echo("written: " + ", ".join(s["written"]))


@cli.command("search-worker", hidden=True)
@click.option("--label", default="", help="Prefix of this worker's lines.")
def search_worker(label):
    """A worker process of `zoo search --workers N` (settings come from the environment)."""
    from zoo.search import worker_main

    worker_main(label)


@cli.command()
@click.argument("model", required=False)
@click.option("--folds", "-k", default=5, show_default=True, type=int, help="Number of folds.")
@click.option("--compare-holdout", is_flag=True, help="Also train on the plain validation split, beside the folds.")
@click.option("--dataset", "-d", type=TEXT, help=DATASET_HELP)
@click.option("--preset", "-p", type=TEXT, help="A catalogued preset (`zoo info MODEL` lists them).")
@click.option("--config", "-c", "config_file", type=IN_PATH,  # a run folder: its config.json is named
              help="A TOML file of config keys, or a run's config.json (its model and config again).")
@click.option("--set", "-s", "assignments", multiple=True, metavar="KEY=VALUE", help="Set any config key.")
@click.option("--epochs", type=int, help=training_default("epochs", "Maximum epochs of each fold's training."))
@click.option("--batch-size", type=int, help=training_default("batch_size", "Training batch size."))
@click.option("--lr", type=float, help=training_default("lr", "Learning rate."))
@click.option("--patience", type=int, help=training_default("patience", "Early-stopping patience (0: off)."))
@click.option("--device", type=TEXT, help=DEVICE_HELP)
@click.option("--seed", type=SEED, help="Seed of training and of the folds' shuffle (0 to 2**32-1).")
@click.option("--data-dir", type=IN_FOLDER, help="Look for data files here first.")
@click.option("--metric", type=TEXT, default=None,
              help="What scores each fold: a validation metric the model records (mse, or val_mse; default: the "
                   "one its early stopping watches, such as loss).")
@click.option("--reduce", type=click.Choice(["best", "mean", "last"]), default="best", show_default=True,
              help="Each fold's score: the best, mean or last epoch's value of the metric.")
@click.option("--out", "-o", type=OUT_FOLDER, help="Write cv.json and cv.png here.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier cross-validation's cv.json and cv.png in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cv(model, folds, compare_holdout, dataset, preset, config_file, assignments, epochs, batch_size, lr, patience,
       device, seed, data_dir, metric, reduce, out, overwrite, as_json):
    """K-fold cross-validation of one configuration: mean ± sample standard deviation (n-1) of the validation loss,
    per fold. MODEL may be left out with a --config file that names it (a search's best.toml, a run's config.json).
    With --out, the folds finished are kept as they end: after a stop, the same command goes on from them."""
    from zoo.runs.config import parse_assignments
    from zoo.search.cv import cross_validate

    overrides = parse_assignments(assignments)
    overrides.update({k: v for k, v in {"dataset": dataset, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                                        "patience": patience, "device": device, "seed": seed,
                                        "data_dir": data_dir}.items() if v is not None})
    note_preset_dataset(preset, overrides.get("dataset"))
    _say_start(model, folds, preset, config_file, overrides)
    result = cross_validate(model, folds_k=folds, preset=preset, config=config_file, overrides=overrides,
                            compare_holdout=compare_holdout, metric=metric, reduce=reduce, out=out,
                            overwrite=overwrite, log=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items()}, indent=2, default=str))
        return
    show_cv(result)


def _say_start(model: str | None, folds: int, preset: str | None, config_file: str | None, overrides: dict) -> None:
    """A first line, as `zoo train` gives one: a fold's line comes only when it ends (minutes on MNIST). Said only
    where the configuration resolves: otherwise cross_validate says what is wrong with it."""
    from zoo.api import resolve_config
    from zoo.errors import ZooError
    from zoo.tasks.training import model_to_train

    try:
        model = model_to_train(model, preset, config_file, "cv")
        _, _, train = resolve_config(model, preset=preset, config=config_file, overrides=overrides)
    except ZooError:
        return
    epochs = f"{train.epochs} epoch{'s' * (train.epochs != 1)}"
    click.echo(f"{folds}-fold cross-validation of {model} on {train.dataset}: {folds} trainings of up to {epochs}, "
               "a line as each fold ends", err=True)


def show_cv(result: dict) -> None:
    """A cross-validation's results as a table: `zoo cv` prints them at its end, `zoo info FOLDER` from its cv.json."""
    metric = result["metric"]
    # An older zoo's cv.json lacks `pixels` and `std_is`: left out, rather than shown as a "?" that says nothing.
    pixels = f" ({result['pixels']})" if result.get("pixels") else ""
    click.echo(f"{result['model']} on {result['dataset']}{pixels}: {result['folds']}-fold "
               f"cross-validation, {metric} ({result.get('reduce', 'best')} epoch)")
    click.echo(f"  {'fold':<8} {'train':>6} {'val':>6} {'epochs':>6} {'epoch':>5} {metric:>12} {'test':>10} "
               f"{'seconds':>8}")
    rows = list(result["per_fold"]) + ([result["holdout"]] if "holdout" in result else [])
    key = metric[4:]
    for r in rows:  # a cv.json of an older zoo lacks some fields: "-"
        test = r["test"].get(key) if isinstance(r.get("test"), dict) else None
        shown = [f"{r.get(k, '-')}" for k in ("fold", "train_images", "val_images", "epochs")]
        epoch = r.get("test_epoch", r.get("best_epoch", "-"))
        test_shown = f"{test:.5g}" if isinstance(test, (int, float)) else "-"
        seconds = f"{r['seconds']:.1f}" if isinstance(r.get("seconds"), (int, float)) else "-"
        click.echo(f"  {shown[0]:<8} {shown[1]:>6} {shown[2]:>6} {shown[3]:>6} {epoch!s:>5} {r['value']:>12.5g} "
                   f"{test_shown:>10} {seconds:>8}")
    if result.get("test_weights"):  # cv.json of an older zoo has none
        click.echo(f"  epoch: {result['test_weights']}")
    std_is = f" ({result['std_is']})" if result.get("std_is") else ""
    click.echo(f"mean ± std over {result['folds']} folds{std_is}: {result['mean']:.5g} ± "
               f"{result['std']:.2g}"
               + (f"  (test {result['test_mean']:.5g} ± {result['test_std']:.2g})" if "test_mean" in result else ""))
    if "holdout" in result:
        h = result["holdout"]
        click.echo(f"holdout split: {h['value']:.5g} "
                   f"({'inside' if abs(h['value'] - result['mean']) <= result['std'] else 'outside'} one std of the "
                   "CV mean)")
    if result.get("written"):
        click.echo("written: " + ", ".join(result["written"]))

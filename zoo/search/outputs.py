"""A study's outputs: every trial as a CSV row, the best config as TOML, history and importance plots,
and the summary."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from zoo import registry
from zoo.analysis.plots import save_figure, subplots, tidy
from zoo.console import to_stdout
from zoo.errors import StorageError, storage_error
from zoo.runs import checkpoint as ckpt
from zoo.runs.command_folders import STUDY_BEST
from zoo.runs.config_files import to_toml
from zoo.interrupts import holding_interrupts
from zoo.search.liveness import LOST
from zoo.search.settings import STUDY_OUTPUTS, Settings
from zoo.search.space import Space
from zoo.search.study import describe_pruner, journal_path, open_study, redact


STAGE = ".outputs-"  # the staging folders of sets of outputs (`_staged`): one per writer
STALE_STAGE_SECONDS = 600  # a staging folder older than this was left by a search killed while writing


def _state(t) -> str:
    return t.state.name.lower()


def write_outputs(settings: Settings, space: Space, *, log: Callable[[str], None] = to_stdout,
                  seconds: float | None = None) -> dict[str, Any]:
    """trials.csv, best.toml, history.png, importance.png and summary.json in the study folder, made from
    one snapshot of the study's trials and put in place together (`_staged`): a Ctrl-C or a kill while
    they are made leaves the previous set whole, so the files never disagree about the best trial."""
    from optuna.trial import TrialState

    study, _, _ = open_study(settings, space)
    study_dir = Path(settings.study_dir)
    trials = study.get_trials(deepcopy=True)  # the one snapshot every output is made from
    with _staged(study_dir) as stage:
        made = [write_csv(trials, stage / "trials.csv", settings.result)]
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = min(complete, key=lambda t: t.value) if complete else None
        if best is not None and "config" in best.user_attrs:
            made.append(write_best(settings, best, stage / STUDY_BEST, total=len(trials),
                                   final=study_dir / STUDY_BEST))
        for name, plot in (("history.png", plot_history), ("importance.png", plot_importance)):
            try:
                if plot(settings, trials, stage / name):
                    made.append(stage / name)
            except OSError:  # a full disk: a StorageError (`_staged`), not a missing plot (which removes the old one)
                raise
            except Exception as e:  # noqa: BLE001 - a missing plot must not lose the study's results
                log(f"note: no {name} ({type(e).__name__}: {e})")
        summary = _summary(settings, space, trials, best, seconds)
        summary["written"] = [str(study_dir / p.name) for p in made] + [str(study_dir / "summary.json")]
        ckpt.write_json(stage / "summary.json", summary)
    return summary


@contextlib.contextmanager
def _staged(study_dir: Path) -> Iterator[Path]:
    """A staging folder in the study folder; on leaving it without an error, its files replace the study's
    outputs and outputs it does not hold (a plot not made this time) are removed, with Ctrl-C held back
    for those few renames. On an error (Ctrl-C included) the study's outputs are left as they were; one the
    system refused to write (a full disk) is a StorageError naming the output, not the staging folder."""
    now = time.time()
    for old in study_dir.glob(STAGE + "*"):  # left by a search killed while writing; never a live one's
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > STALE_STAGE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
    try:
        stage = Path(tempfile.mkdtemp(prefix=STAGE, dir=study_dir))  # its own: two resumes may write at once
    except OSError as e:
        raise _not_written(e, study_dir) from None
    try:
        yield stage
        with holding_interrupts():
            for name in STUDY_OUTPUTS[::-1]:  # summary.json last
                if (stage / name).is_file():
                    os.replace(stage / name, study_dir / name)
                elif (study_dir / name).is_file():
                    (study_dir / name).unlink()
    except BrokenPipeError:  # the output's reader gone (a note said to `| head`): not a write of the study's
        raise
    except OSError as e:
        raise _not_written(e, study_dir) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _not_written(e: OSError, study_dir: Path) -> StorageError:
    """An output the system refused to write, named where it would lie: the study folder's file, not its copy
    in zoo's staging folder (nor the staging folder itself)."""
    named = isinstance(e.filename, (str, bytes, os.PathLike))
    where = Path(os.fsdecode(e.filename)) if named else None
    if where is None or where.name.startswith(STAGE):
        e.filename = str(study_dir)
    elif where.parent.name.startswith(STAGE):
        e.filename = str(study_dir / where.name)
    e.filename2 = None
    return storage_error(e, "cannot write", option="--out",
                         kept="The study's trials are stored in its journal, and its outputs are as they were: once "
                              "that is fixed, the same command writes them (no trial runs again)")


def _summary(settings: Settings, space: Space, trials, best, seconds: float | None) -> dict[str, Any]:
    from optuna.trial import TrialState

    study_dir = Path(settings.study_dir)
    counts = {s: sum(_state(t) == s for t in trials) for s in ("complete", "pruned", "fail", "running", "waiting")}
    reasons: dict[str, int] = {}
    for t in trials:
        if t.state == TrialState.PRUNED:
            r = t.user_attrs.get("pruned_reason", "pruned")
            r = "invalid configuration" if r.startswith("invalid configuration") else \
                ("pruner" if r.startswith("pruned by") else r)
            reasons[r] = reasons.get(r, 0) + 1
    summary: dict[str, Any] = {
        "study": settings.study, "model": settings.model, "study_dir": str(study_dir),
        "storage": redact(settings.storage) if settings.storage else str(journal_path(settings)),
        "strategy": settings.strategy, "pruner": settings.pruner, "pruning": describe_pruner(settings, space),
        "cv": settings.cv, "budget": settings.trials,
        "trials": len(trials), "states": counts, "pruned_reasons": reasons,
        "objective": {"metric": settings.metric, "reduce": settings.reduce, "result": settings.result,
                      "time_penalty": settings.time_penalty, "latent_penalty": settings.latent_penalty},
        "seconds": round(seconds, 1) if seconds is not None else None, "notes": list(settings.notes),
        "best": None,  # no trial completed (each one's line says why): no best.toml either
    }
    if best is not None:
        summary["best"] = {"number": best.number, "value": best.value, settings.result: best.user_attrs.get("loss"),
                           "minutes": best.user_attrs.get("minutes"), "latent": best.user_attrs.get("latent"),
                           "values": best.user_attrs.get("values", best.params)}
        summary["retrain"] = f"zoo train {settings.model} --config {shlex.quote(str(study_dir / 'best.toml'))}"
        if settings.cv:  # a retraining on the validation split gives another number than the folds' mean
            summary["measure"] = cv_command(settings, study_dir / STUDY_BEST)
    return summary


def _cell(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return "" if v is None else v


def write_csv(trials, path: Path, result: str) -> Path:
    """One row per trial; `result` names the column of its metric reduced over the epochs (Settings.result).
    `value` (the objective) only of complete trials: Optuna's value of a pruned one is the one epoch it last
    reported (with --cv, of one fold), not comparable with theirs, and a vectorised group reports none."""
    keys: list[str] = []
    for t in trials:
        for k in [*t.user_attrs.get("values", {}), *t.user_attrs.get("helpers", {})]:
            if k not in keys:
                keys.append(k)
    head = ["number", "state", "value", result, f"{result}_std", "minutes", "latent", "epochs", "duration_s", "started",
            "worker", "retry_of", "note"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head + param_columns(head, keys))
    for t in trials:
        a = t.user_attrs
        vals = {**a.get("values", {}), **a.get("helpers", {})}
        if not vals and t.params:
            vals = dict(t.params)
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        worker = a.get("worker") or {}
        value = t.value if _state(t) == "complete" else None
        w.writerow([t.number, _state(t), _cell(value), _cell(a.get("loss")), _cell(a.get("loss_std")),
                    _cell(a.get("minutes")), _cell(a.get("latent")), _cell(a.get("epochs")),
                    _cell(round(dur, 3) if dur is not None else None),
                    t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
                    f"{worker.get('host', '')}:{worker.get('pid', '')}" if worker.get("trial") == t.number else "",
                    _cell(t.system_attrs.get("failed_trial")), _note(t, trials)]
                   + [_cell(vals.get(k)) for k in keys])
    ckpt.atomic_write(path, buf.getvalue())
    return path


def _note(t, trials) -> str:
    """Why a trial was pruned or failed: its reason, else for a failed one what failed it (`liveness.LOST`: a dead
    worker's, set before it is failed, and so kept only where it did fail), else which trial retried it (a trial
    Optuna's heartbeats failed on a database)."""
    a = t.user_attrs
    note = a.get("pruned_reason") or a.get("note", "")
    if note or _state(t) != "fail":
        return note
    retries = [r.number for r in trials if (r.system_attrs.get("retry_history") or [None])[-1] == t.number]
    return a.get(LOST) or (f"failed; retried as trial {retries[0]}" if retries else "failed")


def param_columns(head: list[str], keys: list[str]) -> list[str]:
    """The columns of the searched keys and helpers: their names, but `param_NAME` for one named like a column of
    zoo's own (a searched `epochs` beside the epochs trained, a helper `value`): a CSV reader keeps one column of a
    name, and read the searched value as the objective or the state."""
    taken, columns = set(head) | set(keys), []
    for k in keys:
        column = k
        while column in head or (column != k and column in taken):
            column = f"param_{column}"
        taken.add(column)
        columns.append(column)
    return columns


def cv_command(settings: Settings, config: Path) -> str:
    """The `zoo cv` command that measures the configuration in `config` as a --cv search scored its trials:
    the same folds, metric and reduction (it scored the model's monitored metric at its best epoch before)."""
    monitored = f"val_{registry.get_model_class(settings.model).monitor or 'loss'}"
    return (f"zoo cv {settings.model} --config {shlex.quote(str(config))} --folds {settings.cv}"
            + (f" --metric {settings.metric}" if settings.metric != monitored else "")
            + (f" --reduce {settings.reduce}" if settings.reduce != "best" else ""))


def write_best(settings: Settings, best, path: Path, total: int, final: Path | None = None) -> Path:
    """The best trial's config; `final`: where it will lie (named in its retrain line), if not at `path`."""
    config = {k: v for k, v in best.user_attrs["config"].items() if k != "device"}
    loss, penalty = best.user_attrs.get("loss"), best.user_attrs.get("penalty") or 0.0
    head = [f"# zoo search: the best trial of study '{settings.study}' (trial {best.number} of {total})",
            f"# objective {best.value:.6g}" + (f" = {settings.metric} {loss:.6g} + penalties {penalty:.4g}"
                                               if penalty and loss is not None else "")
            + (f" (the mean over {settings.cv} folds of the training set)" if settings.cv else ""),
            f"# searched: {json.dumps(best.user_attrs.get('values', {}))}",
            f"# retrain: zoo train {settings.model} --config {shlex.quote(str(final or path))}"
            + (f" (one training on the validation split, not the folds: {cv_command(settings, final or path)} "
               "measures it as the search did)" if settings.cv else "")]
    ckpt.atomic_write(path, "\n".join(head) + "\n" + to_toml({"model": settings.model, **config}))
    return path


def objective_label(settings: Settings) -> str:
    """What a study's objective is, in words for a plot's axis: the metric, over which epochs and folds,
    and the penalties (a bare "objective" said none of it)."""
    return (f"objective: {settings.metric} ({settings.reduce} epoch"
            + (f", mean over {settings.cv} folds" if settings.cv else "") + ")"
            + (" + penalties" if settings.time_penalty or settings.latent_penalty else ""))


def plot_history(settings: Settings, trials, path: Path) -> bool:
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    fig, ax = subplots(figsize=(6.4, 4.2), dpi=100)
    if complete:
        xs, ys = [t.number for t in complete], [t.value for t in complete]
        ax.scatter(xs, ys, s=18, color="tab:blue", label="complete", zorder=3)
        best, run = [], math.inf
        for y in ys:
            run = min(run, y)
            best.append(run)
        ax.step(xs, best, where="post", color="tab:red", label="best so far")
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None for t in pruned]
        pts = [(t.number, v) for t, v in zip(pruned, last) if v is not None and math.isfinite(v)]
        if pts:
            ax.scatter(*zip(*pts), s=14, marker="x", color="grey", label="pruned (last report)")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective_label(settings), fontsize=9)
    values = [t.value for t in complete]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_title(f"{settings.study} ({settings.model}): {len(complete)} complete, {len(pruned)} pruned"
                 + (f", {len(failed)} failed" if failed else ""), fontsize=10)
    if ax.get_legend_handles_labels()[0]:  # nothing to label when no trial completed or reported
        ax.legend(fontsize=8)
    tidy(fig)
    save_figure(fig, path)  # atomically, like every file zoo writes
    return True


def plot_importance(settings: Settings, trials, path: Path) -> bool:
    """fANOVA hyperparameter importances (Optuna) of the complete trials of `trials` (the snapshot, not
    the study as it is now), as a bar chart; False if too few trials."""
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(complete) < 2:
        return False
    study = optuna.create_study(direction="minimize")  # in memory: the snapshot's trials only
    study.add_trials(complete)
    importances = None
    for make in (lambda: optuna.importance.FanovaImportanceEvaluator(seed=0),
                 lambda: optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)):
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=make())
            break
        except Exception:  # noqa: BLE001 - try the next evaluator
            continue
    if not importances:
        return False

    names = list(importances)[::-1]
    fig, ax = subplots(figsize=(6.4, max(2.4, 0.9 + 0.32 * len(names))), dpi=100)
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title(f"{settings.study} ({settings.model}): hyperparameter importance to {settings.metric} "
                 f"({len(complete)} trials)", fontsize=10)
    tidy(fig)
    save_figure(fig, path)  # atomically, like every file zoo writes
    return True


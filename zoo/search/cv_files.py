"""What a cross-validation keeps in its --out folder: cv.json and cv.png at its end, and meanwhile the folds it
has finished (folds.json), from which the same command goes on after a stop (Ctrl-C, a kill, a crash)."""

from __future__ import annotations

import contextlib
import json
from os import PathLike
from pathlib import Path
from typing import Any, Iterator

from zoo.analysis.plots import save_figure, subplots, tidy
from zoo.errors import ConfigError, Interrupted, RunError, storage_error
from zoo.interrupts import holding_interrupts
from zoo.runs import checkpoint as ckpt
from zoo.runs.command_folders import CV_FOLDS, CV_RESULTS, STUDY_SPACE
from zoo.runs.lock import lock_run

RESULTS, FOLDS = CV_RESULTS, CV_FOLDS


def check_cv_out(out: Path, overwrite: bool = False) -> None:
    """`--out` of a cross-validation: a new folder or one it wrote before? Never a run's folder, nor over an
    earlier cross-validation's cv.json (of another model, perhaps), which it replaced without a word, unless
    `overwrite` asks it to."""
    if (out / ckpt.CONFIG).is_file():
        raise ConfigError(f"--out {out} is a run folder: a cross-validation goes into a folder of its own",
                          "Choose another --out.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if (out / STUDY_SPACE).is_file():  # a search's study folder: its outputs are rewritten from its trials
        raise ConfigError(f"--out {out} is a search's study folder: a cross-validation goes into a folder of its own",
                          "Choose another --out.")
    held = [n for n in RESULTS if (out / n).exists()]
    if held and not overwrite:
        raise ConfigError(f"--out {out} holds an earlier cross-validation ({', '.join(held)})",
                          "Choose another --out, move those files away first, or replace them with --overwrite "
                          "(overwrite=True in Python).")


@contextlib.contextmanager
def claimed(out: Path | None, overwrite: bool = False) -> Iterator[None]:
    """`out` taken for this cross-validation from its start: made, its writer lock held (a second one into the same
    folder is refused up front: each wrote its cv.json at its end over the other's) and checked again under the
    lock; the folders made here are removed again when it ends without writing them."""
    if out is None:
        yield
        return
    check_cv_out(out, overwrite)  # before anything is made
    made = [p for p in (out, *out.parents) if not p.exists() and not p.is_symlink()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = lock_run(out)
    except (OSError, RunError) as e:
        _remove_empty(made)
        if isinstance(e, RunError):  # another process writes it: say it for cv
            raise RunError(e.message, "One cross-validation writes a folder at a time: wait for it to end, or "
                                      "choose another --out.") from None
        raise storage_error(e, "cannot make the cross-validation folder", path=out, option="--out") from None
    try:
        check_cv_out(out, overwrite)  # one may have ended into it between the first look and the lock
        yield
    finally:
        lock.release()
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # the deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty (the results are in it), or gone
            return


def kept_folds(out: Path | None, what: dict[str, Any], overwrite: bool) -> list[dict[str, Any]]:
    """The folds a stopped cross-validation of the same `what` (model, config, data, folds, metric) finished into
    `out` (folds.json), to go on from; none without `out`. Folds of another configuration are refused, not
    silently dropped, unless `overwrite`."""
    path = out / FOLDS if out is not None else None
    if path is None or not path.is_file():
        return []
    try:
        kept = ckpt.read_json(path)
    except RunError:  # not JSON: damaged
        kept = None
    rows = kept.get("per_fold") if isinstance(kept, dict) else None
    whole = isinstance(rows, list) and all(fold_row(r) for r in rows)
    if whole and _same(kept.get("what"), what):
        return rows
    if overwrite:
        return []
    said = (f"of another configuration or data: {_differences(kept.get('what'), what)}" if whole
            else "that is damaged, or not one zoo cv wrote")
    raise ConfigError(f"--out {out} holds the folds of a stopped cross-validation {said} ({FOLDS})",
                      ("Run that one again to finish it, choose" if whole else "Choose") + " another --out, or drop "
                      "its folds with --overwrite (overwrite=True in Python).")


def fold_row(row: Any) -> bool:
    """Whether a fold's row holds what is read of it: its name, its score, its test figures and its curve."""
    return (isinstance(row, dict) and isinstance(row.get("fold"), str) and isinstance(row.get("value"), (int, float))
            and not isinstance(row.get("value"), bool) and isinstance(row.get("test"), (dict, type(None)))
            and isinstance(row.get("curve"), list) and all(isinstance(c, dict) and "epoch" in c for c in row["curve"]))


def keep_folds(out: Path | None, what: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """folds.json after each fold (whole, or the one before: an atomic write), so a stop loses one fold at most."""
    if out is not None:
        try:
            ckpt.write_json(out / FOLDS, {"what": what, "per_fold": rows})
        except OSError as e:
            raise storage_error(e, "cannot keep the cross-validation's finished folds", option="--out") from None


def _differences(kept: Any, what: dict[str, Any]) -> str:
    """What differs between the kept folds' description and this cross-validation's, as `zoo search` says it:
    `metric (val_loss in the folds, val_mse now)`; the images by name only."""
    kept = json.loads(json.dumps(kept)) if isinstance(kept, dict) else {}
    now = json.loads(json.dumps(what, default=str))
    said = []
    for k in sorted(set(kept) | set(now)):
        was, is_ = kept.get(k), now.get(k)
        if isinstance(was, dict) and isinstance(is_, dict):
            said += [f"{n} ({was.get(n)!r} in the folds, {is_.get(n)!r} now)" for n in sorted(set(was) | set(is_))
                     if was.get(n) != is_.get(n)]
        elif was != is_:
            said.append("the images" if k == "images" else f"{k} ({was!r} in the folds, {is_!r} now)")
    return ", ".join(said) or "how it was recorded"


def _same(a: Any, b: dict[str, Any]) -> bool:
    """Whether two descriptions are equal as JSON holds them (a tuple read back is a list)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True, default=str)


def read_cv(folder: str | Path) -> dict[str, Any]:
    """The results a cross-validation wrote into `folder` (its cv.json), checked for what is shown of them
    (`zoo info FOLDER`); a RunError says a file that is not one zoo cv wrote."""
    if not isinstance(folder, (str, PathLike)):
        raise ConfigError(f"read_cv takes the folder a zoo cv wrote into (--out), not {folder!r:.60}")
    if Path(folder).name == "cv.json" and Path(folder).is_file():  # the file itself, as zoo.load takes config.json
        folder = Path(folder).parent
    path = Path(folder) / "cv.json"
    if not path.is_file():
        raise RunError(f"{folder} holds no cv.json: it is not the folder of a finished zoo cv",
                       "Give the --out of a zoo cv that ended (a stopped one holds folds.json: run it again).")
    try:
        result = ckpt.read_json(path)
    except RunError:  # not JSON: its hint would speak of a run folder
        result = None
    rows = result.get("per_fold") if isinstance(result, dict) else None
    fields = {"model": str, "dataset": str, "metric": str, "folds": int, "mean": (int, float), "std": (int, float)}
    if not (isinstance(rows, list) and rows and all(isinstance(result.get(k), t) for k, t in fields.items())
            and all(fold_row(r) for r in rows) and ("holdout" not in result or fold_row(result["holdout"]))):
        raise RunError(f"{path} is not the results of a zoo cv (or is damaged)",
                       "Run the cross-validation again (zoo cv ... --out FOLDER --overwrite).")
    return result


def write_results(result: dict[str, Any], out: Path) -> list[str]:
    """cv.png, then cv.json (which marks the folder as a cross-validation's), with Ctrl-C held back: a stop then
    leaves both whole, never one of them alone to block the rerun; a failure removes what was written."""
    paths = [out / "cv.json", out / "cv.png"]
    earlier = {p for p in paths if p.exists()}  # an --overwrite's: left as they were where this write fails
    done = False
    try:
        with holding_interrupts():
            try:
                plot_curves(result, paths[1])
                ckpt.write_json(paths[0], result)
                done = True
                (out / FOLDS).unlink(missing_ok=True)  # done: cv.json holds them now
            except BaseException:
                for path in paths:
                    if path not in earlier:
                        path.unlink(missing_ok=True)
                raise
    except KeyboardInterrupt:  # held until the files were whole (or removed)
        kept = f"{paths[0]} and {paths[1]} are written" if done else "nothing was written"
        raise Interrupted(f"cross-validation interrupted at its end; {kept}" + (
            "" if done else f": its folds are kept ({out / FOLDS}), and the same command writes them")) from None
    except OSError as e:
        raise storage_error(e, "cannot write the cross-validation's results", option="--out") from None
    return [str(p) for p in paths]


def plot_curves(result: dict[str, Any], path: Path) -> None:
    """cv.png: each fold's validation curve of the metric it is scored by (and the holdout's)."""
    key = result["metric"]  # the figure each fold is scored by, per epoch; a marker on each (one epoch is a point)
    fig, ax = subplots(figsize=(6.4, 4.2), dpi=100)
    from matplotlib.ticker import MaxNLocator  # after subplots, which imports matplotlib whatever $MPLBACKEND says
    for r in result["per_fold"]:
        pts = [(c["epoch"], c[key]) for c in r["curve"] if key in c]
        if pts:
            ax.plot(*zip(*pts), color="tab:blue", alpha=0.45, lw=1, marker="o", ms=3)
    if "holdout" in result:
        pts = [(c["epoch"], c[key]) for c in result["holdout"]["curve"] if key in c]
        if pts:
            ax.plot(*zip(*pts), color="tab:red", lw=2, marker="o", ms=3, label="holdout split")
    ax.plot([], [], color="tab:blue", marker="o", ms=3, label=f"{result['folds']} folds")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 1.5
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key} ({result['pixels']})")
    ax.set_title(f"{result['model']} on {result['dataset']}: {result['folds']}-fold CV "
                 f"{result['mean']:.4g} ± {result['std']:.2g} (sample std)", fontsize=10)
    ax.legend()
    tidy(fig)
    save_figure(fig, path)

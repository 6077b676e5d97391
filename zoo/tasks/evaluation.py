"""Test metrics of a run (eval.json) and a picture of its reconstructions."""

from __future__ import annotations

import csv
import dataclasses
import difflib
import inspect
import io
import math
import numbers
from pathlib import Path
from typing import Any

import torch

from zoo.analysis import metrics, plots
from zoo.console import to_stderr
from zoo.data.datasets import class_name
from zoo.errors import CapabilityError, ConfigError, RunError, ZooError, storage_error
from zoo.model import ZooModel
from zoo.runs import checkpoint as ckpt
from zoo.runs import eval_images
from zoo.runs import files as runfiles
from zoo.runs.config import check_count, check_flag
from zoo.runs.eval_progress import EvalProgress, evaluation_key, progress_name
from zoo.runs.loading import load
from zoo.runs.lock import results_lock
from zoo.runs.modelcard import card_folder, write_card
from zoo.runs.plugin_calls import blamed, metric_values, report_of
from zoo.runs.training_state import say_if_untrained
from zoo.runs.run import Run, check_split, evaluated, other_images
from zoo.runs.write_checks import check_writable
from zoo.tasks.kept_evaluations import fuller_part_kept, other_images_kept, say_shipped, whole_test_kept
from zoo.tracking import Logger, RunView, eval_loggers, logger_names
from zoo.training import regularize
from zoo.training.batching import growing_spans, to_batch

EVAL_SEED = 0  # the random draws of an evaluation (see evaluate)
# eval.json's record of how its draws were made: an evaluation made before (none recorded) drew from one stream,
# and the same command now gives figures within their standard errors of it, not the same digits (the card says)
DRAWS = "seeded per batch"


def check_metric_options(model: ZooModel, options: dict) -> dict:
    """The options of `zoo eval` (e.g. --iwae-k) as plain values (numpy's numbers as Python's); one is
    refused for a model whose `metrics` does not take it, rather than silently measuring without it."""
    if not isinstance(options, dict):
        raise ConfigError(f"options are a dict of metric settings, not {type(options).__name__}",
                          "For example {'iwae_k': 1000}.")
    # the settings `metrics` takes by name: not self and the batch before them, nor its **options catch-all
    named = list(inspect.signature(type(model).metrics).parameters.values())[2:]
    taken = {p.name for p in named if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = [k for k in options if k not in taken]
    if unknown:  # named both ways: the option key (Python) and the flag (`zoo eval`)
        key = unknown[0]
        flag = "--iwae-k" if key == "iwae_k" else f"--metric-option {key}=VALUE"
        close = difflib.get_close_matches(str(key), sorted(taken), n=1)
        hint = (f"Did you mean '{close[0]}'?" if close else
                f"Its metrics take: {', '.join(sorted(taken))} (options= in Python; on the command line "
                "--metric-option KEY=VALUE, or --iwae-k K for iwae_k)." if taken else
                "Leave it out: such options apply to models whose metrics take them, e.g. a likelihood bound.")
        raise ConfigError(f"option '{key}' ({flag}) does not apply to model '{model.name}': its metrics take no "
                          f"'{key}'", hint)
    plain = {}
    for k, v in options.items():  # recorded in eval.json and in the key of its saved progress: JSON values
        if isinstance(v, numbers.Number) and not isinstance(v, (bool, complex)):
            v = int(v) if isinstance(v, numbers.Integral) else float(v)
        elif v is not None and not isinstance(v, (bool, str)):
            raise ConfigError(f"option {k} is a number or text, not {v!r:.60}")
        plain[k] = v
    return plain


def _say_impossible_bounds(run, per: dict[str, torch.Tensor]) -> None:
    """Warn of an IWAE bound no correct model gives (a plugin's bound computed wrongly): above the model's own
    −ELBO by more than the noise over 30 images or more (the bound only tightens with K: −ELBO ≥ IWAE-K on
    average)."""
    for key, t in per.items():
        if key.startswith("nll_iwae_") and "neg_elbo_nats" in per and len(t) >= 30:
            gap = t - per["neg_elbo_nats"]
            if float(gap.mean()) > 3 * float(gap.std()) / math.sqrt(len(gap)) + 1e-3:
                to_stderr(f"warning: model '{run.name}' gives {key} {float(t.mean()):.4g} above its neg_elbo_nats "
                          f"{float(per['neg_elbo_nats'].mean()):.4g}, beyond the noise: the IWAE bound is never "
                          "looser than the ELBO on average, so one of the two is computed wrongly")


def _check_finite(run, per: dict[str, torch.Tensor]) -> None:
    """Refuse figures that are no numbers (NaN, infinite) before anything is written: JSON has no NaN, and a
    mean over them says nothing."""
    broken = {k: int((~torch.isfinite(t)).sum()) for k, t in per.items() if not bool(torch.isfinite(t).all())}
    if broken:
        which = ", ".join(f"{k} ({count} of {len(per[k])} images)" for k, count in broken.items())
        raise RunError(f"model '{run.name}' gave figures that are not finite numbers (NaN or infinite): {which}; "
                       "nothing was written",
                       "Its weights may hold NaN (a training that diverged), or its plugin's `metrics` divides by "
                       "zero: train it again, or tell the plugin's author.")


def _no_metrics(run: Run, source) -> CapabilityError:
    return CapabilityError(f"model '{run.name}' has no per-image test metrics",
                           f"Measure its samples instead: zoo eval {source} --fid (zoo.sample_quality in Python)")


LONG_BOUND = 5_000_000  # decoded images past which an IWAE bound is said to take long before it starts


@evaluated
@torch.no_grad()
def evaluate(source: str | Path | Run, *, split: str = "test", data_dir: str | None = None,
             device: str | None = None, save: bool = True, options: dict | None = None,
             limit: int | None = None, progress: bool | None = None,
             per_image: str | Path | None = None, loggers: str | list[str] | None = None) -> dict[str, Any]:
    """Test metrics of a run (reconstruction MSE, BCE, PSNR for autoencoders), written to eval.json: each
    metric's mean over the images, and its standard error (`standard_errors`: the standard deviation over
    the images over √N). Each image's metrics go to eval-images.safetensors, for `zoo compare` to set runs
    measured on the same images side by side, image by image. `options` pass model-specific settings to
    its `metrics` (e.g. {"iwae_k": 1000}: a VAE's IWAE bound, off by default for its cost). `per_image`: a
    .csv file to write every image's metrics to (index in the split, label, class, then one column per
    metric: e.g. −log p(x) as an outlier score). An evaluation that runs longer than a few seconds shows a
    progress bar on stderr; `progress` None: when stderr is a terminal. `loggers` ("mlflow", "tensorboard"): also
    log the figures there, set up as the run trained (its own MLflow run, its TensorBoard folder)."""
    check_flag(save, "save"), check_flag(progress, "progress", none=True)
    if limit is not None:  # never 0 or a negative number taken as "all" or "all but the last few"
        limit = check_count(limit, "--limit (limit=)", 1, 10_000_000)
    run = load(source, device=device)
    model = run.model
    options = check_metric_options(model, options or {})  # first: --iwae-k on a GAN is an option it does not take
    if not model.has_test_metrics():
        raise _no_metrics(run, run.source)
    say_if_untrained(run.folder, "these are")
    if per_image is not None:
        per_image = per_image_output(per_image, run)
    if save:  # what it writes at the end, checked before the work
        runfiles.check_replaceable(run.output_dir, (ckpt.EVAL, eval_images.IMAGES_FILE, ckpt.CARD))
    logging = _eval_loggers(run, loggers, save, limit)
    # Which weights are measured, as they were loaded: readers of eval.json ignore it once model.safetensors
    # holds other weights (a resumed run trained further), see ckpt.read_eval. Results on a module changed
    # since (fine-tuned through run.model), or on a file replaced since, would be recorded as the file's.
    if save:
        run.check_saveable()
    measured = run.file_digest or ckpt.weights_digest(run.folder / ckpt.WEIGHTS)
    data = run.dataset(data_dir)
    x, y = data.measured(check_split(split))  # binary pixels for a dynamically binarised run's training split too
    whole = x.shape[0]
    if limit:  # the first `limit` images of the split (costly metrics such as a k=1000 IWAE bound)
        x, y = x[:limit], y[:limit]
    part = x.shape[0] < whole or split != "test"
    keep = save and part and whole_test_kept(run, data, x.shape[0], split)
    if save and not part and not keep:  # said before hours of a bound, not after: its figures would not be written
        keep = other_images_kept(run, {ckpt.WEIGHTS_DIGEST: measured, "split": split,
                                       eval_images.IMAGES_DIGEST: eval_images.images_digest(x, y)})
    differ = other_images(data, run.record, (split,))
    if differ:  # another --data-dir's files, a folder that gained images (never written over an earlier eval)
        to_stderr(f"note: {differ}: not the images {run.source} was trained and tested on, so these are not its "
                  "test figures" + ("; an eval.json of them, if one is written, says so (zoo info, zoo compare and "
                                    "its card show it)" if save else ""))
    k = (options or {}).get("iwae_k")
    samples = k * x.shape[0] if isinstance(k, int) else 0  # a k that is no count is refused by the model
    if samples > LONG_BOUND:  # said up front: without a terminal there is no progress bar to watch
        to_stderr(f"note: the bound decodes {samples:,} images ({x.shape[0]:,} images x k={options['iwae_k']:,}); "
                  "on a CPU that is minutes to hours (--limit N measures the first N images)")
        if not part:
            say_shipped(run)
    n = x.shape[0]
    spans = list(growing_spans(n))
    # An evaluation that stops (Ctrl-C, out of memory) keeps its progress and the same command goes on from it.
    key = evaluation_key(measured, split, options or {}, run.device, x, y)
    if save:
        runfiles.check_replaceable(run.output_dir, (progress_name(key),))
    saved = EvalProgress(run.output_dir if save else None, key, measured)
    # Metrics that draw random numbers (a DAE's corruption, a VAE's sampled ELBO) draw the same ones on
    # every evaluation: a fixed seed for each batch (its first image's place), in a forked random state that
    # leaves the caller's untouched. Per batch, not one stream: an IWAE bound asked for beside the ELBO drew
    # from the stream the next batches' ELBO draws from, and changed its figure.
    devices = [run.device] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), metrics.progress_bar(n, f"eval {split}", progress) as bar:
        done, sums, values = saved.resume({stop for _, stop in spans}, n)
        bar.n = bar.last_print_n = bar.initial = done  # measured before it stopped: shown, not in its rate or ETA
        try:
            for start, stop in spans:
                if stop <= done:  # measured before the evaluation stopped
                    continue
                torch.manual_seed(EVAL_SEED + start)
                with blamed(model, "metrics"):
                    got = model.metrics(to_batch(x[start:stop], y[start:stop]), **(options or {}))
                for k, v in metric_values(model, got, stop - start):
                    # The sums, though the values hold them, are added batch by batch as before the values
                    # were kept: every published mean reproduces to its last digit.
                    sums[k] = sums.get(k, 0.0) + float(v.double().sum())
                    values.setdefault(k, []).append(v.detach().double().cpu().reshape(-1))
                bar.update(stop - start)
                saved.reached(stop, sums, values)
        except BaseException:
            saved.interrupted(n)
            raise
    if not sums:
        raise _no_metrics(run, run.source)
    result = {"model": run.record["model"], "dataset": data.name, "split": split, "images": n,
              "pixels": data.pixels(), "classes": list(data.classes),
              "metrics": {k: v / max(n, 1) for k, v in sums.items()}, ckpt.WEIGHTS_DIGEST: measured,
              eval_images.IMAGES_DIGEST: eval_images.images_digest(x, y), "limit": n if n < whole else None,
              "draws": DRAWS}
    per = {k: torch.cat(values[k]) for k in sums}  # in the metrics' order (a resumed one's file sorts them)
    _check_finite(run, per)
    _say_impossible_bounds(run, per)
    if n > 1:
        result["standard_errors"] = {k: float(t.std()) / math.sqrt(n) for k, t in per.items()}
    if differ:  # kept in eval.json, so that info, compare and the card say whose images these figures are of
        result["other_images"] = differ
    if model.metrics_note:
        result["metrics_note"] = model.metrics_note
    if split in data.reused:  # a tiny folder: this "test" figure is measured on training images
        result["caveat"] = data.caveat()
    if run.can("sample_class"):  # a conditional model's figures: named as any VAE's, of p(x | y)
        result["given"] = "each image's class: the likelihood figures are of p(x | y)"
    if regularize.prunes(run.record.get("train", {})):
        result["sparsity"] = regularize.sparsity(model)  # zeros per group of the pruned weights
    keep = keep or (save and (fuller_part_kept(run, result) if part else other_images_kept(run, result)))
    with blamed(model, "evaluation_report"):  # its files too
        report = report_of(model, model.evaluation_report(x, y, run, run.output_dir if save and not keep else None))
    if report:
        result["report"] = report
    if per_image is not None:
        _write_per_image(per_image, per, y, data.classes, data.files.get(split, ())[:n])
    if keep:  # the progress of this part is no longer needed; the whole split's eval.json stays
        saved.finish()
    elif save:
        _save(run, result, per, saved)
    if per_image is not None:
        result.setdefault("written", []).append(str(per_image))
    _log_evaluation(run, logging, result, kept_aside=bool(keep))
    return result


def _eval_loggers(run: Run, loggers: Any, save: bool, limit: int | None) -> list[Logger]:
    """The loggers `loggers` names, made with the run's training settings, each destination checked before the
    work. They log the figures of a whole split, as eval.json records them: refused with save=False, and for a
    --limit look (its figures, logged as test_KEY, would stand beside the whole test split's as if they were)."""
    if not logger_names(loggers):
        return []
    if not save:
        raise ConfigError("loggers record the evaluation eval.json keeps, and save=False keeps none",
                          "Leave save on to log it, or leave loggers out.")
    if limit is not None:
        raise ConfigError(f"--log records the figures of a whole split, and --limit {limit} measures a part of it",
                          "Leave --limit out to log them, or --log out for a quick look.")
    settings = run.train_config
    if run.output_dir != run.folder:  # published weights: the store it names is its publisher's, not the user's
        settings = dataclasses.replace(settings, mlflow_uri="", tensorboard_dir="")
    made = eval_loggers(settings, loggers, to_stderr)
    for logger in made:
        logger.prepare(run.output_dir)
    return made


def _log_evaluation(run: Run, loggers: list[Logger], result: dict[str, Any], kept_aside: bool = False) -> None:
    """Each figure to each logger as `zoo compare` names it (test_KEY, its standard error test_KEY_se), at the
    run's last epoch; a logger's failure is said, never raised (eval.json holds the figures). An evaluation
    `kept_aside` (eval.json keeps a fuller one of these weights: a --split val after a test one) is logged all the
    same, without eval.json: its figures are of the run's weights and its own images, and eval_val_* never stand
    for the test's. Figures of other images, or of weights trained on meanwhile, are not logged."""
    if not loggers:
        return
    prefix = "test_" if result["split"] == "test" else f"eval_{result['split']}_"
    figures = {prefix + k: float(v) for k, v in result["metrics"].items()}
    figures |= {f"{prefix}{k}_se": float(v) for k, v in result.get("standard_errors", {}).items()}
    files = [Path(p) for p in result.get("written", []) if Path(p).name == ckpt.EVAL]
    own = kept_aside and not result.get("other_images") and not run.weights_changed()
    if not files and not own:  # a tracker would hold them alone, as the run's figures, at an epoch not theirs
        to_stderr("note: these figures are not logged either: eval.json does not hold them")
        return
    history = run.training_history()
    view = RunView(run.output_dir, run.record, history, resumed=True)
    for logger in loggers:
        logger.guarded("logging the evaluation", logger.log_eval, view, figures,
                       history[-1]["epoch"] if history else 0, files,
                       kept=f"{ckpt.EVAL} holds every figure" if files else "the figures above are all there is")


def _save(run: Run, result: dict[str, Any], per: dict[str, torch.Tensor], saved: EvalProgress) -> None:
    """eval.json, each image's metrics (for `zoo compare`'s pairs) and the card, under the folder's results
    lock (two evaluations ending together merge in turn). Not over a model.safetensors that holds other weights
    than were measured (trained on while this evaluation ran): said instead. A write that fails says the
    figures first: hours of a bound are not lost with it."""
    changed = run.weights_changed()
    if changed:
        saved.finish()  # of weights the file no longer holds: it could never go on
        to_stderr(f"note: {changed}: this evaluation's figures, of the weights it loaded, are not written")
        return
    written = run.output_dir / ckpt.EVAL
    try:
        with results_lock(run.output_dir):
            record, per = _with_earlier_metrics(run, result, per)
            # The figures first: a write of the per-image values that fails, or a kill between the two, leaves
            # eval.json whole, without a per-image file: the earlier evaluation's goes first, so that one that
            # disagrees with eval.json says eval.json was edited since (eval_images.current_eval).
            (run.output_dir / eval_images.IMAGES_FILE).unlink(missing_ok=True)
            ckpt.write_json(written, record)
            try:
                eval_images.write(run.output_dir, per, record)
            except (ZooError, OSError) as e:  # eval.json holds the figures: said, not a failed evaluation
                why = e.message if isinstance(e, ZooError) else e.strerror or e
                to_stderr(f"note: {written} holds the figures, and each image's values could not be written to "
                          f"{run.output_dir / eval_images.IMAGES_FILE} ({why}): zoo compare cannot pair them")
            if run.output_dir == run.folder:
                write_card(card_folder(run.folder, run.source))
    except (ZooError, OSError) as e:
        errors = result.get("standard_errors", {})
        to_stderr("the evaluation measured, and could not save: " + ", ".join(
            f"{k} {v:.6g}" + (f" ± {errors[k]:.2g}" if k in errors else "") for k, v in result["metrics"].items()))
        if isinstance(e, OSError):
            raise storage_error(e, "cannot save the evaluation", path=written,
                                option="a copy of the run in a folder you own") from None
        raise
    saved.finish()
    result["written"] = [str(written)]


def _with_earlier_metrics(run: Run, result: dict[str, Any], per: dict[str, torch.Tensor]):
    """The eval.json and per-image values to write: `result`'s, plus the metrics the eval.json about to be
    replaced measured on the same weights and the same images and this evaluation did not (a bound at
    another K: hours of a K = 5,000 one), with their standard errors and each image's values (said). The
    result returned to the caller stays what this evaluation measured."""
    kept, _ = eval_images.current_eval(run.output_dir, weights=run.folder / ckpt.WEIGHTS)
    if (kept is None or kept.get(ckpt.WEIGHTS_DIGEST) != result[ckpt.WEIGHTS_DIGEST]
            or kept.get(eval_images.IMAGES_DIGEST) != result[eval_images.IMAGES_DIGEST]
            or kept.get("split", "test") != result["split"]):
        return result, per
    values, _ = eval_images.read(run.output_dir, kept)
    carried = [k for k in kept.get("metrics", {}) if k not in result["metrics"]]
    if not carried:
        return result, per
    errors = kept.get("standard_errors") if isinstance(kept.get("standard_errors"), dict) else {}
    record = {**result, "metrics": {**result["metrics"], **{k: kept["metrics"][k] for k in carried}}}
    if "standard_errors" in result:
        record["standard_errors"] = {**result["standard_errors"], **{k: errors[k] for k in carried if k in errors}}
    lost = [k for k in carried if k not in values]  # their per-image file was lost (damaged, or a write failed)
    to_stderr(f"note: kept {', '.join(carried)} from the earlier evaluation of the same weights and images in "
              f"{run.output_dir / ckpt.EVAL} (this one did not measure {'it' if len(carried) == 1 else 'them'})"
              + (f"; {', '.join(lost)} without {'its' if len(lost) == 1 else 'their'} values image by image, "
                 f"which {eval_images.IMAGES_FILE} no longer holds" if lost else ""))
    return record, {**per, **{k: values[k] for k in carried if k in values}}


def per_image_output(path: str | Path, run: Run) -> Path:
    """Where `zoo eval --per-image` writes: checked before any work like every output (check_output),
    refused unless it ends in .csv, the format written, or where no file can be written."""
    out = runfiles.check_output(path, run.folder, "--per-image")
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--per-image {path}: zoo writes the per-image metrics as CSV",
                          "Give a name ending in .csv.")
    check_writable(out, "--per-image")
    return out


def _write_per_image(path: Path, per: dict[str, torch.Tensor], y: torch.Tensor, classes, files=()) -> None:
    """One row per image: its index in the split, for a folder's images its file, its label and class name,
    then each metric."""
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["index", *(["file"] if files else []), "label", "class", *per])
    columns = [t.tolist() for t in per.values()]
    for i, label in enumerate(y.tolist()):
        file = [files[i]] if files else []
        w.writerow([i, *file, label, class_name(classes, label), *(repr(c[i]) for c in columns)])
    ckpt.atomic_write(path, text.getvalue())


@evaluated
@torch.no_grad()
def reconstruct(source: str | Path | Run, *, n: int = 16, out: str | Path | None = None, split: str = "test",
                data_dir: str | None = None, device: str | None = None) -> Path:
    """A picture of `n` images of the split beside their reconstructions."""
    run = load(source, device=device)
    run.require("reconstruct")
    n = check_count(n, "--n (n=)", 1, 256)
    # Its own name by default: RUN/reconstructions.png is training's picture of the best epoch, which the card shows
    out = runfiles.picture_output(out, own=run.folder) or run.output_dir / f"reconstructions-{check_split(split)}.png"
    say_if_untrained(run.folder, "these reconstructions are of")
    xb = pictured(run, split, data_dir, n)
    return plots.image_rows([("original", xb), ("reconstruction", run.reconstruct(xb))], out,
                            title=f"{run.name}: {split} images and reconstructions", weights=run.outputs_stamp())


def pictured(run: Run, split: str, data_dir: str | None, n: int) -> torch.Tensor:
    """The first `n` images of `split` as floats in [0, 1], for a picture (zoo reconstruct, zoo denoise), with
    the notes that images other than the run's (another --data-dir) and fewer than asked are."""
    data = run.dataset(data_dir)
    x, _ = data.split(check_split(split))
    differ = other_images(data, run.record, (split,))
    if differ:  # as zoo eval and zoo latent say it
        to_stderr(f"note: {differ}: not the images {run.source} was trained and tested on")
    if x.shape[0] < n:  # a picture of fewer than asked is said, not left for the user to count
        to_stderr(f"note: the {split} split holds {x.shape[0]} image{'s' * (x.shape[0] != 1)}: all of them shown, "
                  f"not {n}")
    return x[:n].float() / 255.0

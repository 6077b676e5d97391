"""`zoo compare RUN...`: runs side by side, read from their config.json and metrics.jsonl (never their
weights). One row per run: its model, the config keys whose values differ between the runs (the keys
equal in all of them are only counted), and its final metrics: the best epoch's row of metrics.jsonl
(the last row where none is marked best), the epochs trained and the seconds they took. Test metrics
come from eval.json when it measured the run's current weights, or for published weights from their
model card (see evaluated); sorted by one, runs measured on the same images are paired (see pair).

A run is a folder, a glob of folders (expanded here: `runs/vae-*`), a catalogued name or a hub location
(resolved by zoo.runs.loading, as every command resolves them)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.analysis import plots
from zoo.errors import ConfigError, RunError, storage_error
from zoo.runs import checkpoint as ckpt
from zoo.runs import published
from zoo.runs import files as runfiles
from zoo.runs.eval_images import Paired
from zoo.runs.config import TrainConfig, check_flag, default_of, fields_of, flat_config
from zoo.runs.comparable import another_measure, better_when_higher, given_class, loss_caveat, model_class, pair
from zoo.runs.compare_sources import expand
from zoo.runs.loading import catalogued_name, read_run
from zoo.runs.info import how_ended, unbuildable
from zoo.runs.metrics_log import is_metric
from zoo.runs.run import Run
from zoo.runs.published import number
from zoo.runs.evaluated import read_evaluated
from zoo.training.engine import TrainResult

# Columns of a metrics.jsonl row that are not a measured metric of the epoch.
DEFAULT_METRIC = "val_loss"


@dataclass
class Compared:
    """One run of a comparison: what it is and how its training ended."""

    name: str                                   # as the user gave it (a glob's match: the path)
    folder: Path
    model: str
    config: dict[str, Any]                      # every config key, flat: model hyperparameters and training
    metrics: dict[str, float] = field(default_factory=dict)       # the best epoch's row (train_*, val_*)
    test_metrics: dict[str, float] = field(default_factory=dict)  # eval.json, the model card or the catalogue
    test_errors: dict[str, float] = field(default_factory=dict)   # their standard errors over the images (eval.json)
    test_values: dict[str, Any] = field(default_factory=dict)     # each image's test metrics (eval_images)
    test_images: str | None = None                                # which images those are (their digest)
    paired: Paired | None = None                                  # the sort metric against the reference run's
    best_epoch: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)   # metrics.jsonl's rows
    notes: list[str] = field(default_factory=list)

    def value(self, metric: str) -> float | None:
        if metric in self.metrics:
            return self.metrics[metric]
        if metric.startswith("test_"):
            return self.test_metrics.get(metric.removeprefix("test_"))
        return None

    def error(self, metric: str) -> float | None:
        """A test metric's standard error over the images, where eval.json gives one."""
        return self.test_errors.get(metric.removeprefix("test_")) if metric.startswith("test_") else None

    def shown(self, metric: str, with_error: bool = False) -> str:
        """A metric's cell: its value, and its standard error if asked and known."""
        value, error = self.value(metric), self.error(metric) if with_error else None
        return "" if value is None else f"{value:.5g}" + ("" if error is None else f" ± {error:.2g}")

    def known(self) -> set[str]:
        return set(self.metrics) | {f"test_{k}" for k in self.test_metrics}


@dataclass
class Comparison:
    """Runs in the order of `metric` (those without it last); the config keys that differ between them,
    those equal in all of them and those only some of them have (see differing_keys); `plot`: the PNG of
    their curves, if one was asked for."""

    runs: list[Compared] = field(repr=False)  # each with its test values image by image: c.table() shows them
    metric: str
    descending: bool
    differing: list[str]
    equal: list[str] = field(repr=False)  # often most of the keys: c.table() counts them
    partial: list[str] = field(default_factory=list)
    plot: Path | None = None
    reference: Compared | None = field(default=None, repr=False)  # the run the others' paired differences are from
    caveat: str | None = None  # why the sort metric is not one measure across the runs (see loss_caveat)
    given: list[Compared] = field(default_factory=list, repr=False)  # runs of p(x | y), ranked after p(x)

    def __repr__(self) -> str:
        """The runs in their order with their sort value, the sort and the keys that differ (not the ~50 equal
        ones): what a notebook shows of it; c.table() is the whole comparison."""
        runs = ", ".join(f"{r.name!r}: {r.shown(self.metric) or None}" for r in self.runs)  # as the table has it
        extra = "".join(f", {k}={v!r}" for k, v in (("plot", self.plot), ("caveat", self.caveat)) if v is not None)
        return (f"Comparison(metric={self.metric!r}, descending={self.descending}, runs={{{runs}}}, "
                f"differing={self.differing!r}{extra})")

    def metric_columns(self) -> list[str]:
        """The metrics a table shows: the sort metric, the validation metrics, then the test metrics."""
        known = set().union(*(r.known() for r in self.runs)) if self.runs else set()
        rest = sorted(k for k in known if k.startswith("val_")) + sorted(k for k in known if k.startswith("test_"))
        return ([self.metric] if self.metric in known else []) + [k for k in rest if k != self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {"sort": self.metric, "descending": self.descending, "differing_keys": self.differing,
                "equal_keys": self.equal, "partial_keys": self.partial, "plot": str(self.plot) if self.plot else None,
                "paired_reference": self.reference.name if self.reference else None, "caveat": self.caveat,
                "runs": [{"name": r.name, "folder": str(r.folder), "model": r.model,
                          "config": {k: r.config.get(k) for k in self.differing},
                          "best_epoch": r.best_epoch, "epochs": r.epochs, "seconds": r.seconds,
                          "sort_value": r.value(self.metric), "metrics": r.metrics,
                          "test_metrics": r.test_metrics, "test_standard_errors": r.test_errors,
                          "paired": r.paired.to_dict() if r.paired else None, "notes": r.notes} for r in self.runs]}

    def to_csv(self) -> str:
        """A header, then a row per run: name, folder, model, the differing keys (config.KEY), the best
        epoch, the epochs trained, their seconds and every metric (train, validation, test); an empty cell
        where a run has none."""
        metrics = self.metric_columns()
        metrics += sorted(set().union(*(r.metrics for r in self.runs)) - set(metrics)) if self.runs else []
        errors = [m for m in metrics if any(r.error(m) is not None for r in self.runs)]
        paired = ["paired_difference", "paired_standard_error"] if self.reference else []
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(["name", "folder", "model", *(f"config.{k}" for k in self.differing), "best_epoch", "epochs",
                      "seconds", *metrics, *(f"{m}_se" for m in errors), *paired])
        for r in self.runs:
            out.writerow([r.name, r.folder, r.model, *(_cell(r.config, k, compact=True) for k in self.differing),
                          _blank(r.best_epoch), _blank(r.epochs), _blank(r.seconds),
                          *(_blank(r.value(m)) for m in metrics),
                          *(_blank(r.error(m)) for m in errors),
                          *([_blank(r.paired and r.paired.difference), _blank(r.paired and r.paired.standard_error)]
                            if paired else [])])
        return buf.getvalue()

    def table(self) -> list[str]:
        """The comparison as aligned text lines: a heading, a row per run, then notes."""
        metrics = self.metric_columns()
        cells = [[r.shown(m, with_error=m == self.metric) for m in metrics] for r in self.runs]
        if self.reference:  # the paired differences, right after the sort metric's column
            metrics.insert(1, "paired Δ")
            for r, row in zip(self.runs, cells):
                row.insert(1, "reference" if r is self.reference else _difference(r.paired))
        head = ["run", "model", *self.differing, "best_epoch", "trained", "seconds", *metrics]
        body = [[r.name, r.model, *(_cell(r.config, k) for k in self.differing), _blank(r.best_epoch),
                 _blank(r.epochs), "" if r.seconds is None else f"{r.seconds:.1f}", *row]
                for r, row in zip(self.runs, cells)]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        numeric = set(range(len(head) - len(metrics) - 3, len(head)))
        fmt = lambda row: "  ".join(c.rjust(w) if i in numeric else c.ljust(w)  # noqa: E731
                                    for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        order = "descending" if self.descending else "ascending"
        partial = f", {len(self.partial)} only some runs have" if self.partial else ""
        lines = [f"{len(self.runs)} run{'s' * (len(self.runs) != 1)}, {self._order(order)}; {len(self.equal)} "
                 f"config keys equal in all runs{partial}" + ("" if self.differing else ", none differs")]
        if self.caveat:
            lines.append(f"note: {self.caveat}")
        if any(r.error(self.metric) is not None for r in self.runs):
            lines.append(f"{self.metric} ± its standard error over the test images: how far it would move on "
                         "other images")
        if self.reference:
            lines.append(f"paired Δ: {self.metric} minus {self.reference.name}'s, image by image over the same "
                         f"{next(r.paired.images for r in self.runs if r.paired):,} test images, ± its standard error")
        lines += ["", fmt(head), *map(fmt, body)]
        notes = [f"  {r.name}: {note}" for r in self.runs for note in r.notes]
        return lines + (["", "notes:", *notes] if notes else [])


    def _order(self, order: str) -> str:
        """How the rows are ordered: by the metric, or (where no run has the default one) as given, naming a
        metric they could be sorted by (a likelihood bound first)."""
        if any(r.value(self.metric) is not None for r in self.runs):
            given = "; class-conditional runs, of p(x | y), after the others" if self.given else ""
            return f"sorted by {self.metric} ({order}{given}; runs without it last)"
        every = set.intersection(*(r.known() for r in self.runs)) if self.runs else set()
        known = sorted(every) or sorted(set().union(*(r.known() for r in self.runs)))  # those every run has, first
        # a likelihood bound first, then any test figure; else the training loss (a GAN's train_d_fake, first by
        # name, says nothing of its samples), said to be one
        likely = [k for k in known if k.startswith("test_nll")] or [k for k in known if k.startswith("test_")] \
            or [k for k in known if k == "train_loss"] or known
        # not a training figure the table would then say is no one measure across them (a GAN's losses of another
        # `loss`); a test figure of other images is still suggested, its caveat said beside it
        one = [k for k in likely if k.startswith("test_") or loss_caveat(self.runs, k, self.differing) is None]
        hint = (f"--sort {one[0]} sorts them" + ("" if every else ", those without it last")
                + ("" if one[0].startswith("test_") else " by a training figure; `zoo eval` measures test ones"))\
            if one else ("they have no metric to sort by" if not likely else
                         "no figure of theirs is one measure across them: "
                         + str(loss_caveat(self.runs, likely[0], self.differing)))
        return f"in the order given (none has {self.metric}: {hint})"


def _cell(config: dict[str, Any], key: str, compact: bool = False) -> str:
    if key not in config:
        return "" if compact else "-"
    value = config[key]
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _blank(value) -> str:
    return "" if value is None else str(value)


def _difference(p: Paired | None) -> str:
    return "" if p is None else f"{p.difference:+.4g} ± {p.standard_error:.2g}"


def _as_built(run: dict[str, Any]) -> dict[str, Any]:
    """A run's config keys as its model is built from them: a key its config.json lacks (an older zoo's) at the
    default its model takes, so a setting that tells two runs apart is shown (hvae's pixel_layers 4 against 0)."""
    cls = model_class(run["model"])
    parts = (("config", cls.Config), ("train", TrainConfig)) if cls else ()  # not installed here: as recorded
    return flat_config({**run, **{part: {**{f.name: default_of(f) for f in fields_of(c)}, **(run.get(part) or {})}
                                  for part, c in parts}})


def read_compared(name: str, folder: Path) -> Compared:
    """A run's summary from its config.json, metrics.jsonl, eval.json and model card (no weights)."""
    run = read_run(folder)
    row = Compared(name=name, folder=folder, model=run["model"], config=_as_built(run))
    refused = unbuildable(run, folder) if model_class(run["model"]) else None
    if refused:  # its keys are shown as they are, but no command that builds the model takes it
        row.notes.append(refused.replace(f"{folder}/", ""))
    path = folder / ckpt.METRICS
    if path.exists():
        try:
            rows, dropped = ckpt.read_metrics(path)
        except OSError as e:
            rows, dropped = [], 0
            row.notes.append(f"{ckpt.METRICS} cannot be read ({e.strerror or e})")
        except RunError as e:  # not a regular file (a FIFO, a folder)
            rows, dropped = None, 0
            row.notes.append(e.message.replace(f"{folder}/", "") + ": skipped")
        if dropped:
            row.notes.append(f"{dropped} damaged line{'s' * (dropped != 1)} of {ckpt.METRICS} skipped")
        if rows is not None:
            _summarise(row, rows)
            ended = how_ended(folder, rows, run["train"].get("epochs"))
            if ended in ("interrupted", "training"):  # not a finished training: said, as zoo info says it
                row.notes.append(f"trained {row.epochs or 0} of {run['train'].get('epochs')} epochs: "
                                 + ("being trained now" if ended == "training" else "interrupted (zoo train "
                                    "--resume continues it)"))
    else:
        row.notes.append(f"no {ckpt.METRICS} (published weights carry no training log)")
    tested = read_evaluated(folder, name)
    row.test_metrics, row.test_errors, row.test_values = tested.metrics, tested.errors, tested.values
    row.test_images = tested.images
    row.notes += tested.notes + _quoted(name, tested)
    if not row.metrics and not row.history:
        card = published.card_training(folder / ckpt.CARD)
        if card:
            row.metrics, row.best_epoch, row.epochs = card
            row.notes.append("training metrics from its model card")
    return row


def _quoted(name: str, tested) -> list[str]:
    """A note naming the test metrics of a row that are its catalogue entry's figures (typed into a catalogue
    file, and not tied to the weights by their sha256), not measured: eval.json's come with standard errors."""
    named = catalogued_name(name) if "/" not in name else None
    quoted = [k for k, v in registry.catalogued_metrics(named).items()
              if tested.metrics.get(k) == v and k not in tested.errors]
    if not quoted:
        return []
    # zoo eval --fid measures the samples' figures (classifier_*, class_accuracy); a plain zoo eval the rest
    sampled = [k for k in quoted if k.startswith("classifier_") or k == "class_accuracy"]
    commands = [f"zoo eval {name}"] * (len(sampled) < len(quoted)) + [f"zoo eval {name} --fid"] * bool(sampled)
    how = (f"{commands[0]} measures {'them' if len(quoted) > 1 else 'it'}" if len(commands) == 1 else
           f"zoo eval {name} measures {', '.join(k for k in quoted if k not in sampled)}, and zoo eval {name} --fid "
           f"{', '.join(sampled)}")
    return [f"test {', '.join(quoted)} quoted by the catalogue ({registry.catalog_file('weights', named).said()}), "
            f"not measured here: {how}"]


def _summarise(row: Compared, rows: list[dict[str, Any]]) -> None:
    row.history = rows
    if not rows:
        row.notes.append(f"{ckpt.METRICS} holds no epoch")
        return
    final = ckpt.best_row(rows)
    if final is None:  # its only epochs diverged: model.safetensors holds the weights it started with
        row.notes.append(f"its training diverged at epoch {rows[0]['epoch']}: it holds the weights it started with")
        row.best_epoch, row.epochs = 0, rows[-1]["epoch"]
        return
    row.best_epoch, row.epochs = final["epoch"], rows[-1]["epoch"]
    row.metrics = {k: v for k, v in final.items() if is_metric(k) and number(v)}
    row.seconds = round(sum(r.get("seconds", 0) for r in rows if number(r.get("seconds"))), 2)


# ------------------------------------------------------------------------------------------ comparing

def default_metric(runs: list[Compared]) -> str:
    """The runs' models' monitored metric, on the validation split where they have one (val_loss)."""
    for r in runs:
        cls = model_class(r.model)
        monitor = cls.monitor if cls else None
        if monitor:
            for name in (f"val_{monitor}", f"train_{monitor}"):
                if any(name in x.metrics for x in runs):
                    return name
            return f"val_{monitor}"
    return DEFAULT_METRIC


def pick_metric(runs: list[Compared], metric: str | None) -> str:
    """The metric to sort by: the one asked for (or its validation value: loss is val_loss), which some
    run must have; by default the models' monitored one."""
    if not metric:
        return default_metric(runs)
    known = set().union(*(r.known() for r in runs))
    for name in (metric, f"val_{metric}"):
        if name in known:
            return name
    raise ConfigError(f"--sort {metric}: no run has this metric",
                      f"The runs have: {', '.join(sorted(known))}." if known else
                      "None of the runs has any metric (no metrics.jsonl, eval.json or model card metrics).")


def differing_keys(runs: list[Compared]) -> tuple[list[str], list[str], list[str]]:
    """The config keys whose values differ between the runs that have them; those equal in all runs; and
    those only some runs have (another model's hyperparameters, a key newer zoo versions write), with one
    value wherever they are."""
    keys = sorted(set().union(*(r.config for r in runs)))
    values = {k: {json.dumps(r.config[k], sort_keys=True) for r in runs if k in r.config} for k in keys}
    differ = [k for k in keys if len(values[k]) > 1]
    partial = [k for k in keys if k not in differ and any(k not in r.config for r in runs)]
    return differ, [k for k in keys if k not in differ and k not in partial], partial


def compare(sources: list[str | Path | Run | TrainResult], metric: str | None = None, *,
            descending: bool | None = None, plot: str | Path | None = None) -> Comparison:
    """Compare runs: folders, globs of folders, catalogued names, hub locations (hf://, file://).

    Reads config.json and metrics.jsonl (skipping damaged lines), never the weights. Sorted by `metric`
    (default: the models' monitored metric, val_loss), best first unless `descending` says the order (True:
    largest first): ascending, but for a metric better when higher (accuracy, PSNR); a run without it comes last.
    `plot`: a PNG to draw the runs' curves of that metric into, one line per run."""
    if isinstance(sources, (str, Path, Run, TrainResult)):  # one run, not the characters of its name
        sources = [sources]
    try:
        sources = list(sources)
    except TypeError:
        raise ConfigError(f"compare takes a list of runs, not {type(sources).__name__}",
                          "Give run folders, catalogued names, hub locations or zoo.load(...) runs.") from None
    check_flag(descending, "descending", none=True)  # "False" is no False: it sorted the other way, or failed
    if metric is not None and not isinstance(metric, str):
        raise ConfigError(f"metric= names one metric, not {metric!r:.60}", "For example metric=\"val_loss\".")
    runs = [read_compared(name, folder) for name, folder in expand(sources)]
    chosen = pick_metric(runs, metric)
    descending = better_when_higher(runs, chosen) if descending is None else descending
    given = given_class(runs, chosen)  # a cvae's −log p(x | y) ranks after the others' p(x), not among them
    have = sorted((r for r in runs if r.value(chosen) is not None), key=lambda r: r.value(chosen), reverse=descending)
    have = [r for r in have if r not in given] + [r for r in have if r in given]  # whichever the order
    ordered = have + [r for r in runs if r.value(chosen) is None]
    result = Comparison(ordered, chosen, descending, *differing_keys(runs), given=given)
    # Whether the figures shown are one measure: decided over the runs that have one (a GAN without a
    # likelihood, a run of another data set without the figure, say nothing of the others' pairing)
    differ, _, partial = differing_keys(have)  # a key only some have (a DAE's noise beside a ConvAE) changes a test
    keys = differ + partial if chosen.startswith("test_") else differ
    result.caveat = loss_caveat(have, chosen, keys)
    if not another_measure(have, chosen, keys):  # no image-by-image difference of two measures; runs of
        result.reference = pair([r for r in ordered if r not in given], chosen)  # other images pair apart
    if plot is not None:
        result.plot = plot_curves(ordered, chosen, plot)
    return result


def plot_curves(runs: list[Compared], metric: str, path: str | Path) -> Path:
    """One PNG of every run's `metric` against the epoch, a labelled line per run, its best epoch marked."""
    out = runfiles.picture_output(path, flag="--plot")  # compare reads runs but owns none of them
    curves = [(r, [(x["epoch"], x[metric]) for x in r.history if number(x.get(metric))]) for r in runs]
    curves = [(r, points) for r, points in curves if points]
    if not curves:
        with_curves = sorted({k for r in runs for x in r.history for k in x if is_metric(k)})
        raise ConfigError(f"--plot: no run has a {metric} curve in its {ckpt.METRICS}",
                          f"Sort by one that runs logged to plot it: {', '.join(with_curves)}." if with_curves else
                          f"None of the runs has a {ckpt.METRICS} (published weights carry no training log).")
    fig = plots.epoch_curves([(f"{r.name} ({r.model})", points, r.best_epoch) for r, points in curves], metric)
    try:
        plots.save_png(fig, out)
    except OSError as e:
        raise storage_error(e, f"--plot {out}: cannot write", path=out, option="--plot") from None
    return out

"""`zoo` commands. Each one parses options, calls the public API and prints; a user's mistake ends in
one clear message and a non-zero exit code. Nothing here imports torch until a command runs."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import click

from zoo.cli.app import (DATA_DIR_HELP, DATASET_HELP, DEVICE_HELP, SPLIT_HELP, Count, IN_FOLDER, IN_PATH, OUT_FILE,
                         OUT_FOLDER, SEED, TEXT, cli, config_overrides, echo_json, note_preset_dataset, os_error, say,
                         stop_like_ctrl_c, training_default)

@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--pretrained", is_flag=True, help="The catalogued pretrained weights instead.")
def list_cmd(as_json, pretrained):
    """Every installed architecture plugin (then the noise models, latent samplers, training callbacks and
    loggers plugins provide): name, package, description."""
    if pretrained:

        return hub.list_pretrained(as_json)
    import zoo

    listing = zoo.list_plugins()
    if as_json:
        echo_json(listing)
        return
    sections = [("", listing["models"]), ("noise models (--set noise=NAME:VALUES)", listing["noise_models"]),
                ("latent samplers (zoo generate --sampler NAME)", listing["samplers"]),
                ("training callbacks (--set train_callbacks=NAME:VALUES; zoo's own: by their keys)",
                 listing["callbacks"]),
                ("loggers (zoo train --log NAME[,NAME]; metrics.jsonl is always written)", listing["loggers"])]
    shown = lambda r: ":".join([r["name"], *r.get("params", [])])  # noqa: E731  (gaussian:sigma)
    every = [r for _, section in sections for r in section]
    width = max([len(shown(r)) for r in every] + [4])
    pw = max([len(r["package"]) for r in every] + [7])
    click.echo(f"{'name':<{width}}  {'package':<{pw}}  description")
    for heading, section in sections:
        if heading:
            click.echo(f"\n{heading}")
        for r in section:
            click.echo(f"{shown(r):<{width}}  {r['package']:<{pw}}  {r['description']}")
    for f in listing["failed"]:
        what = "loaded, but zoo refused a part of it" if f["partial"] else "failed to load"
        click.secho(f"plugin '{f['entry_point']}' from package {f['package']} {what}: {f['error']}",
                    err=True, fg="yellow")
    for r in listing["models"]:
        if r["clash"]:
            click.secho(f"note: {r['clash']}", err=True, fg="yellow")
    from zoo import registry
    from zoo.errors import ConfigError

    try:  # a catalogue that every other command refuses: said here too, not a clean list beside it
        registry.read_catalog()
    except ConfigError as e:
        click.secho(f"a catalogue failed: {e.message}" + (f" ({e.hint})" if e.hint else ""), err=True, fg="yellow")


@cli.command()
@click.argument("model", type=TEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model, as_json):
    """MODEL's hyperparameters (name, type, default, valid range) and presets. Also anything a run is
    accepted as: a catalogued pretrained name, a run folder, a hub location (hf://ORG/NAME, file:///PATH);
    and a folder hub's entries (file:///PATH of the folder pushed into); a preset's values; a zoo cv folder's
    results."""
    from zoo import registry
    from zoo.api import model_info

    if model not in registry.list_models():
        if (Path(model) / "cv.json").is_file() and not (Path(model) / "config.json").exists():  # a zoo cv's --out
            from zoo import read_cv

            result = read_cv(model)
            return echo_json(result) if as_json else search.show_cv(result)
        if _names_a_run(model):  # a folder here wins over catalogued weights of its name, as zoo.load has it
            if model in registry.weights():
                click.secho(f"note: {model} is the run folder here; the catalogued weights of that name: zoo info "
                            f"{model} from another folder, or zoo pretrained {model}", err=True, fg="yellow")
            return hub.show_run(model, as_json)
        if model in registry.weights():
            hub.show_pretrained(model, as_json)
            if model in registry.presets() and not as_json:  # convae-mnist: its weights, and the config they had
                _show_preset(model, also=True)
            return
        if model in registry.presets():
            return _show_preset(model, as_json=as_json)

    data = model_info(model)
    if as_json:
        echo_json(data)
        return
    click.echo(f"{data['name']}: {data['description']}")
    click.echo(f"package: {data['package']} {data['version']}    can: {', '.join(data['capabilities'])}")
    if data["clash"]:
        click.secho(f"note: {data['clash']}", err=True, fg="yellow")
    if data["vectorized_keys"]:
        dropout = "; dropout only between rates above 0 (a rate of 0 builds no dropout layer)" \
            if "dropout" in data["vectorized_keys"] else ""
        click.echo(f"search trials that differ only in {', '.join(data['vectorized_keys'])} (and lr, weight decay, "
                   f"momentum, seed, patience) train together with --vectorize{dropout}")
    for title, rows in (("model hyperparameters", data["params"]), ("training settings", data["train_params"])):
        click.echo(f"\n{title} (--set key=value):")
        w = max(len(r["name"]) for r in rows)
        for r in rows:
            default = json.dumps(r["default"]) if not isinstance(r["default"], str) else r["default"] or '""'
            rng = f"  [{r['range']}]" if r["range"] else ""
            click.echo(f"  {r['name']:<{w}}  {r['type']:<9}  default {default}{rng}\n  {'':<{w}}  {r['help']}")
    click.echo("\npresets (--preset NAME):")
    if not data["presets"] and not data["presets_that_fit"]:
        click.echo("  none")
    for name, p in data["presets"].items():
        click.echo(f"  {name}: {p.get('description', '')}")
        if p.get("source"):
            click.echo(f"    source: {p['source']}")
    for name, p in data["presets_that_fit"].items():
        needs = f"; {p['needs'][:1].lower()}{p['needs'][1:].rstrip('.')}" if p.get("needs") else ""
        click.echo(f"  {name} ({p.get('model')}'s; its keys fit {data['name']}{needs}): {p.get('description', '')}")
    click.echo("\npretrained weights (zoo info NAME, zoo.load(\"NAME\")):")
    for name, description in data["weights"].items() or [("none", "")]:
        click.echo(f"  {name}" + (f": {description}" if description else ""))


def _show_preset(name: str, as_json: bool = False, also: bool = False) -> None:
    """A preset's model, description, source, values and the file that catalogues it (`zoo info PRESET`)."""
    from zoo import registry

    preset, file = registry.presets()[name], registry.catalog_file("presets", name)
    if as_json:
        return echo_json({"name": name, **preset, "catalogue": file.said()})
    click.echo(f"{'also ' if also else ''}{name}: a preset of model {preset['model']} (zoo train --preset {name})"
               + (f" - {preset['description']}" if preset.get("description") and not also else ""))
    if preset.get("source") and not also:
        click.echo(f"source: {preset['source']}")
    click.echo("values: " + (", ".join(f"{k}={json.dumps(v)}" for k, v in preset["config"].items()) or "none"))
    if not file.bundled:
        click.echo(f"catalogued in: {file.said()}")


def _names_a_run(text: str) -> bool:
    """True for what is not a model name but a place: a hub location or an existing path."""
    from zoo.hub import is_hub_source

    return is_hub_source(text) or "/" in text or Path(text).exists()


@cli.command()
@click.argument("model", type=TEXT, required=False)
@click.option("--dataset", "-d", type=TEXT, help=DATASET_HELP)
@click.option("--preset", "-p", type=TEXT,
              help="A catalogued preset (`zoo info MODEL` lists them; `zoo info NAME` shows one).")
@click.option("--config", "-c", "config_file", type=IN_PATH,  # a run folder: its config.json is named
              help="A TOML file of config keys, or a run's config.json (its model and config again).")
@click.option("--set", "-s", "assignments", multiple=True, metavar="KEY=VALUE", help="Set any config key.")
@click.option("--out", "-o", type=OUT_FOLDER, help="Run folder (default runs/MODEL-DATA-TIME).")
@click.option("--resume", type=IN_FOLDER, help="Continue the run in this folder (a run folder, not a model).")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out (its weights, metrics and "
              "pictures); without it such a folder is refused.")
@click.option("--epochs", type=int, help=training_default("epochs", "Maximum epochs."))
@click.option("--batch-size", type=int, help=training_default("batch_size", "Training batch size."))
@click.option("--lr", type=float, help=training_default("lr", "Learning rate."))
@click.option("--patience", type=int, help=training_default("patience", "Early-stopping patience (0: off)."))
@click.option("--device", type=TEXT, help=DEVICE_HELP)
@click.option("--seed", type=SEED, help=training_default("seed", "Random seed of the initial weights and the "
                                                                "shuffling."))
@click.option("--data-dir", type=IN_FOLDER, help="Look for data files here first.")
@click.option("--bf16", is_flag=True, default=None, help="bfloat16 autocast on CUDA.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@click.option("--log", "loggers", type=TEXT, metavar="NAME[,NAME]",
              help="Also log to these loggers: tensorboard, mlflow, or a plugin's (zoo list shows them); "
                   "metrics.jsonl is always written.")
def train(model, dataset, preset, config_file, assignments, out, resume, overwrite, epochs, batch_size, lr, patience,
          device, seed, data_dir, bf16, progress, loggers):
    """Train MODEL; or continue a run with --resume RUN."""
    from zoo.api import train as api_train

    _refuse_a_model_as_run(resume)
    overrides = config_overrides("train", assignments, [api_train], {
        "dataset": dataset, "epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience,
        "device": device, "seed": seed, "data_dir": data_dir, "bf16": bf16, "loggers": loggers})
    note_preset_dataset(None if resume else preset, overrides.get("dataset"))  # a resume refuses a preset
    started = time.monotonic()
    result = api_train(model, preset=preset, config=config_file, out=out, resume=resume, progress=progress,
                       overwrite=overwrite, **overrides)
    took = time.monotonic() - started  # the whole command's, data loading and pictures included
    took = f"took {took:.1f} s" if took < 60 else f"took {took / 60:.1f} min"
    if result.best_value is None:
        click.echo(f"{result.stopped}: last epoch ({result.best_epoch}) kept; run in {result.run_dir}; {took}")
    else:
        # with no validation split (val_fraction 0) the training figure is the one watched
        split = "validation" if any(k.startswith("val_") for row in result.history[-1:] for k in row) else "training"
        click.echo(f"{result.stopped}: best epoch {result.best_epoch} ({split} {result.model.monitor or 'loss'} "
                   f"{result.best_value:.5g}); run in {result.run_dir}; {took}")


def _refuse_a_model_as_run(resume: str | None) -> None:
    """`zoo train --resume convae`: a model's name where a run folder goes (none of that name here)."""
    from zoo import registry
    from zoo.errors import ConfigError

    if resume is not None and not Path(resume).exists() and resume in registry.list_models():
        raise ConfigError(f"--resume takes a run folder; {resume} is a model",
                          f"`zoo train {resume} ...` trains a new run of it; `zoo train --resume RUN` continues the "
                          "run in folder RUN.")


# The options of each of `zoo eval`'s three evaluations beyond those they share (data, device, --json,
# --progress): one given to another evaluation would be silently ignored, so it is refused.
EVAL_MODES = {"--noise-sweep": ("split", "noise", "baseline"),
              "--fid": ("features", "fid_n", "fid_seeds", "sampler", "inception"),
              "": ("split", "iwae_k", "metric_options", "limit", "per_image", "loggers")}


def _check_eval_mode(ctx: click.Context, noise_sweep: bool, fid: bool) -> None:
    if noise_sweep and fid:
        raise click.UsageError("--noise-sweep and --fid are two evaluations: run them as two commands")
    mode = "--noise-sweep" if noise_sweep else "--fid" if fid else ""
    given = [p for p in ctx.command.params if p.name in {n for names in EVAL_MODES.values() for n in names}
             and ctx.get_parameter_source(p.name) != click.core.ParameterSource.DEFAULT]
    for p in given:
        if p.name in EVAL_MODES[mode]:
            continue
        flag, owners = p.opts[0], [m for m, names in EVAL_MODES.items() if p.name in names]
        if not mode:
            raise click.UsageError(f"{flag} applies with {' or '.join(owners)} only: add it, or leave {flag} out")
        what = " or ".join(m or "the test metrics (zoo eval RUN without --fid or --noise-sweep)" for m in owners)
        raise click.UsageError(f"{flag} does nothing with {mode}: it is an option of {what}. Leave {flag} out, or "
                               "run that evaluation as its own command.")


def _metric_options(items) -> dict:
    """--metric-option KEY=VALUE pairs as the keywords a model's metrics take: whole numbers, numbers, true/false,
    else the text (zoo.evaluate's `options`; the model's signature refuses a key it does not take)."""
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")  # chunk-images as the option is written, chunk_images as the keyword
        if not sep or not key.isidentifier():
            raise click.UsageError(f"--metric-option takes KEY=VALUE, e.g. samples=3, not {item!r:.60}")
        text = text.strip()
        value = {"true": True, "false": False}.get(text.lower(), text)
        for kind in (int, float):
            try:
                value = kind(text) if isinstance(value, str) else value
            except ValueError:
                continue
        options[key] = value
    return options


def _print_metrics(result: dict) -> None:
    given = f"; given {result['given']}" if result.get("given") else ""  # a conditional model's p(x | y)
    click.echo(f"{result['model']} on {result['dataset']} ({result['split']}, {result['images']} images, "
               f"{result.get('pixels', 'grey levels')}){given}")
    errors = result.get("standard_errors", {})
    width = max(map(len, result["metrics"]), default=0)
    for k, v in result["metrics"].items():
        click.echo(f"  {k:<{width}}  {v:<10.6g}" + (f"  ± {errors[k]:.2g}" if k in errors else ""))
    if errors:
        click.echo("  (± the standard error of the mean over the images)")
    if result.get("metrics_note"):
        click.echo(f"  ({result['metrics_note']})")
    if result.get("caveat"):
        click.secho(f"note: {result['caveat']}", err=True, fg="yellow")
    if result.get("sparsity"):
        click.echo("weight sparsity (pruning reaches the encoder's and decoder's layers, not the other layers):")
        for group, v in result["sparsity"].items():
            click.echo(f"  {group.replace('_', ' '):<15} {v['sparsity']:7.2%}  "
                       f"({v['zeros']:,} of {v['weights']:,} weights)")


@cli.command("eval")
@click.argument("run", type=TEXT)
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]),
              help=SPLIT_HELP)
@click.option("--data-dir", type=IN_FOLDER, help="Where the data set's files are (for a run trained on a folder of "
              "images: where that folder is now).")
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--noise-sweep", is_flag=True, help="Test MSE at 1x-5x the training noise and other noise kinds.")
@click.option("--noise", type=TEXT, default=None,
              help="Noise to sweep (default: the one the run was trained with).")
@click.option("--baseline", type=TEXT, default=None,
              help="With --noise-sweep: a run to compare, fed the same noisy images.")
@click.option("--iwae-k", type=Count(1, 100_000), default=None, metavar="K",
              help="VAE: also estimate -log p(x) with K importance samples (the IWAE bound; K decoder passes "
                   "per image: minutes on a CPU for K=1000). Default: off.")
@click.option("--metric-option", "metric_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the model's own metrics (a plugin's `metrics(batch, KEY=...)`), e.g. samples=3; "
                   "a number, true/false or text. Repeatable.")
@click.option("--fid", is_flag=True, help="Classifier-feature FID and KID of samples against the test set.")
@click.option("--features", type=TEXT, default=None,
              help="With --fid: the feature network, a classifier run trained on the same data set "
                   "(default: the catalogued features-DATASET).")
@click.option("--fid-n", default=10_000, show_default=True, type=Count(100, 1_000_000),
              help="With --fid: how many samples and test images.")
@click.option("--fid-seeds", default=1, show_default=True, type=Count(1, 100), metavar="N",
              help="With --fid: measure N seeds (N times as long) and give each FID and their median (one FID "
                   "moves by a fifth of its value between seeds).")
@click.option("--sampler", type=TEXT, default=None,
              help="With --fid: draw the codes from this latent sampler instead of the model's own prior (any "
                   "autoencoder or VAE; one shipped with bundled weights is read, else fitted on the training codes).")
@click.option("--inception", type=TEXT, default=None, metavar="PATH|auto",
              help="With --fid (implied): also Inception FID, KID and IS of the same samples (torch-fidelity), "
                   "comparable with published figures. PATH: the weights file "
                   "weights-inception-2015-12-05-6726825d.pth or its folder; auto: torch hub's cache "
                   "($TORCH_HOME/hub/checkpoints). Never downloaded.")
@click.option("--limit", type=Count(1, 10_000_000), default=None,
              help="Only the first N images of the split (for costly metrics).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr for an evaluation that runs longer than a few seconds "
                   "(default: when on a terminal).")
@click.option("--per-image", type=OUT_FILE, default=None, metavar="FILE.csv",
              help="Also write every image's metrics to this CSV (index in the split, a folder's image file, label, "
                   "class, one column per metric): e.g. -log p(x) or the reconstruction error as an outlier score.")
@click.option("--log", "loggers", type=TEXT, default=None, metavar="NAME[,NAME]",
              help="Also log the figures to these loggers (tensorboard, mlflow, or a plugin's: zoo list shows them): "
                   "beside the run's training, in its own MLflow run where it trained with --log mlflow.")
@click.pass_context
def eval_cmd(ctx, run, split, data_dir, device, as_json, noise_sweep, noise, baseline, iwae_k, metric_options, fid,
             features, fid_n, fid_seeds, sampler, inception, limit, progress, per_image, loggers):
    """Test metrics of RUN (MSE, BCE, PSNR for autoencoders), each a mean over the images with its standard
    error; also written to RUN/eval.json. An autoencoder's are those of its reconstructions clipped to [0, 1],
    the images they stand for: without a sigmoid output its training's val_mse counts values outside.

    An evaluation stopped midway (Ctrl-C) keeps what it measured: the same command goes on from there.
    --fid writes RUN/quality.json (quality-SAMPLER.json) once every seed is measured: stopped, it keeps
    the earlier one and starts over."""
    from zoo.api import evaluate
    from zoo.api import noise_sweep as api_sweep

    _check_eval_mode(ctx, noise_sweep, fid or inception)
    if noise_sweep:
        result = api_sweep(run, baseline=baseline, noise=noise, split=split, data_dir=data_dir, device=device)
        if as_json:
            echo_json(result)
            return
        trained = result["trained_noise"]
        how = (f"trained with {trained}" if trained == result["noise"] else
               f"trained with {trained or 'no noise'}; sweeping {result['noise']}")
        click.echo(f"noise sweep of {run} ({how}), {result['images']} "
                   f"{split} images: test MSE against the clean images")
        click.echo(f"  {'noise':<22} {'noisy input':>12} {'model':>10} {'baseline':>10}")
        for r in result["rows"]:
            base = f"{r['baseline_mse']:>10.4f}" if r["baseline_mse"] is not None else f"{'-':>10}"
            click.echo(f"  {r['noise']:<22} {r['noisy_mse']:>12.4f} {r['model_mse']:>10.4f} {base}")
        click.echo(f"written to {' and '.join(result.get('written', []))}")
        return
    if fid or inception:
        from zoo.api import sample_quality

        result = sample_quality(run, features=features, n=fid_n, sampler=sampler, data_dir=data_dir, device=device,
                                progress=progress, inception=inception, seeds=fid_seeds)
        if as_json:
            echo_json(result)
            return
        accuracy = result.get("feature_network_test_accuracy")
        click.echo(f"{result['note']}; feature network {result['feature_network']}"
                   + (f" (test accuracy {accuracy:.1%} on these {result['images']:,} test images)"
                      if accuracy is not None else "")
                   + f", {result['images']} images")
        click.echo(f"  pixels: {result['pixels']}")
        for warning in result.get("warning", "").splitlines():  # one line each: weak features, alike samples
            click.echo(f"warning: {warning}", err=True)
        for label, key in (("samples vs test", "samples_vs_test"), ("test vs train (floor)", "floor_test_vs_train")):
            r = result[key]
            click.echo(f"  {label:<22} FID {r['fid']:9.3f}   KID {r['kid']:.4g} ± {r['kid_std']:.2g}   "
                       f"precision {r['precision']:.3f}   recall {r['recall']:.3f}")
        if "class_accuracy" in result:
            acc = result["class_accuracy"]
            worst = min(acc["per_class"], key=acc["per_class"].get)
            click.echo(f"  class accuracy of the samples {acc['mean']:.1%} (the feature network's; lowest: "
                       f"{worst} {acc['per_class'][worst]:.1%})")
        if "over_seeds" in result:
            over = result["over_seeds"]
            click.echo(f"  FID of seeds {over['seeds'][0]}-{over['seeds'][-1]}: "
                       + ", ".join(f"{f:.3f}" for f in over["fid"]) + f"; median {over['median_fid']:.3f} "
                       "(the figures above: the first seed's)")
        r = result["samples_vs_test"]
        click.echo(f"  (KID: mean ± std over {r['kid_subsets']} random subsets of {r['kid_subset_size']} images; "
                   f"precision and recall: {r['pr_neighbours']}-NN manifolds, Kynkäänniemi et al. 2019)")
        if "inception" in result:
            inc = result["inception"]
            click.echo(f"{inc['note']}; {inc['feature_extractor']} weights {inc['weights']}, {inc['images']} images")
            for label, key in (("samples vs test", "samples_vs_test"),
                               ("test vs train (floor)", "floor_test_vs_train")):
                r = inc[key]
                click.echo(f"  {label:<22} FID {r['fid']:9.3f}   KID {r['kid']:.4g} ± {r['kid_std']:.2g}   "
                           f"IS {r['is']:.3f} ± {r['is_std']:.2g}")
            click.echo(f"  (IS: of the first set of each pair, mean ± std over {r['is_splits']} splits; "
                       f"{inc['library']})")
        if result.get("kept"):
            click.echo(f"note: {result['kept']}", err=True)
        else:
            click.echo(f"written to {' and '.join(result.get('written', []))}")
        return
    options = _metric_options(metric_options)
    if iwae_k and "iwae_k" in options:  # one of the two would be dropped without a word
        raise click.UsageError("--iwae-k and --metric-option iwae_k=... both give the bound's K: give one")
    options.update({"iwae_k": iwae_k} if iwae_k else {})
    result = evaluate(run, split=split, data_dir=data_dir, device=device, options=options, limit=limit,
                      progress=progress, per_image=per_image, loggers=loggers)
    if as_json:
        echo_json(result)
    else:
        _print_metrics(result)
        if "report" in result and "per_class_accuracy" in result["report"]:
            _print_classification(result)
        elif result.get("report"):  # a plugin's whole-split results: named, and where to read them
            click.echo(f"the model's report ({', '.join(map(str, result['report']))}): eval.json's \"report\", "
                       "or --json")
        if result.get("written"):  # nothing where a whole test split's eval.json was kept
            click.echo(f"written to {' and '.join(result['written'])}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--n", default=16, show_default=True, type=Count(1, 256), help="How many images.")
@click.option("--out", "-o", type=OUT_FILE,
              help="PNG to write (default RUN/reconstructions-SPLIT.png: RUN/reconstructions.png is training's).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]),
              help=SPLIT_HELP)
@click.option("--data-dir", type=IN_FOLDER, help=DATA_DIR_HELP)
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
def reconstruct(run, n, out, split, data_dir, device):
    """Originals beside their reconstructions, as a PNG."""
    from zoo.api import reconstruct as api_reconstruct

    path = api_reconstruct(run, n=n, out=out, split=split, data_dir=data_dir, device=device)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--noise", type=TEXT, default=None,
              help="Corruption to add, e.g. gaussian:0.6 (default: the training noise; with --input, none: your "
                   "images are denoised as they are).")
@click.option("--n", default=16, show_default=True, type=Count(1, 1024),
              help="How many images the picture shows (with --input, every image is denoised and written).")
@click.option("--out", "-o", type=OUT_FILE,
              help="PNG to write (default RUN/denoised.png; RUN/denoised-NOISE[-SPLIT].png for a --noise other "
                   "than the model's training noise or another --split: RUN/denoised-salt-pepper_0.2-train.png; "
                   "with --input DIR, RUN/denoised-DIR.png, or "
                   "RUN/denoised-DIR-DIGEST.png where that holds another folder's outputs); with --input, "
                   "each denoised image goes beside it, under its input's name, into NAME_files/ for NAME.png "
                   "(RUN/denoised-DIR_files/).")
@click.option("--input", "input_path", type=IN_PATH,
              help="Denoise your own image file, or folder of images, instead.")
@click.option("--seed", default=0, show_default=True, type=SEED,
              help="Random seed of the noise added (the same seed, the same noisy images).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]),
              help=SPLIT_HELP)
@click.option("--data-dir", type=IN_FOLDER, help=DATA_DIR_HELP)
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
def denoise(run, noise, n, out, input_path, seed, split, data_dir, device):
    """Rows of clean, noisy and denoised images (or your own images, denoised, each also written as a PNG)."""
    from zoo.api import denoise as api_denoise

    path = api_denoise(run, noise=noise, n=n, out=out, input=input_path, seed=seed, split=split,
                       data_dir=data_dir, device=device, log=click.echo)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--n", default=None, type=Count(1, 100_000), help="How many samples (default 64).")
@click.option("--seed", default=0, show_default=True, type=SEED,
              help="Random seed of the samples drawn (the same seed, the same images).")
@click.option("--out", "-o", type=OUT_FILE,
              help="A .png grid (default RUN/samples.png, or RUN/samples-prior.png for a GAN, whose training wrote "
                   "samples.png; with --sampler S RUN/samples-S.png, with --class C RUN/samples-class-C.png, with "
                   "--per-class RUN/samples-per-class.png) or a .safetensors file of the images.")
@click.option("--sampler", type=TEXT, default=None,
              help="Draw the codes from a latent sampler (any autoencoder or VAE): gaussian, gmm, maf, two-stage, "
                   "standard-normal or a plugin's (zoo list shows them); fitted on the training codes once and "
                   "kept, or read where bundled weights ship it.")
@click.option("--class", "class_label", type=TEXT, default=None,
              help="A conditional model: samples of this class (index or name). An autoencoder: decoded around "
                   "the mean code of this class.")
@click.option("--per-class", type=Count(1, 2_500), default=None,
              help="A conditional model: K samples of every class, a row per class (instead of --n).")
@click.option("--spread", default=0.0, show_default=True, type=float,
              help="With --class: spread around the class mean, as a fraction of the class's own spread.")
@click.option("--noise-scale", "old_noise_scale", hidden=True, default=None)
@click.option("--data-dir", type=IN_FOLDER, help="Where the data set's files are (for --sampler's fit or --class; "
              "for a run trained on a folder of images, where that folder is now).")
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
def generate(run, n, seed, out, sampler, class_label, per_class, spread, old_noise_scale, data_dir, device):
    """Sample new images from a generative model (or from an autoencoder, with a latent sampler)."""
    from zoo.api import generate as api_generate

    if old_noise_scale is not None:  # zoo 0.1's name; "noise" now means only a denoiser's corruption
        raise click.UsageError(f"--noise-scale is now --spread (zoo 0.2): write --spread {old_noise_scale}")
    path = api_generate(run, n=n, seed=seed, out=out, device=device, sampler=sampler, class_label=class_label,
                        spread=spread, per_class=per_class, data_dir=data_dir)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("run", type=TEXT)
@click.option("--hidden", type=TEXT, default="60", show_default=True,
              help="Hidden layer sizes of the head, e.g. 60 or 128,64.")
@click.option("--freeze", default="all", show_default=True, type=click.Choice(["all", "none"]),
              help="Keep the encoder fixed (all) or train it too (none).")
@click.option("--unfreeze-last", default=0, show_default=True, type=Count(0, 100),
              help="With --freeze all: train the encoder's last K weight layers anyway.")
@click.option("--features", default="latent", show_default=True, type=click.Choice(["latent", "conv"]),
              help="The head reads the latent code or the flattened conv features.")
@click.option("--dataset", "-d", type=TEXT, default=None, help="Labelled data (default: the run's data set).")
@click.option("--out", "-o", type=OUT_FOLDER, help="Run folder for the classifier.")
@click.option("--model", "transfer_model", type=TEXT, default=None,
              help="Which installed model to train on the encoder, when more than one can (default: the one).")
@click.option("--epochs", type=int, help="Maximum epochs of the head's training (default: its model's: `zoo info "
              "classifier`, or the --model's).")
@click.option("--set", "-s", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Any other config key (not the encoder's: those are the source run's).")
@click.option("--data-dir", type=IN_FOLDER, help="Where the data set's files are (default: where RUN found them, "
              "for its own data set).")
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (never RUN itself).")
@click.option("--device", type=TEXT, default=None, help=DEVICE_HELP)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@click.option("--log", "loggers", type=TEXT, default=None, metavar="NAME[,NAME]",
              help="Also log the head's training and its test accuracy to these loggers: tensorboard, mlflow, or a "
                   "plugin's (zoo list shows them).")
def finetune(run, hidden, freeze, unfreeze_last, features, dataset, out, transfer_model, epochs, assignments, data_dir,
             overwrite, device, progress, loggers):
    """Train a classifier head on the encoder of RUN (frozen by default), then report test accuracy."""
    from zoo.api import evaluate
    from zoo.api import finetune as api_finetune
    from zoo.api import train as api_train
    overrides = config_overrides("finetune", assignments, [api_finetune, api_train],  # finetune passes them on
                                  {"dataset": dataset, "epochs": epochs, "device": device, "data_dir": data_dir,
                                   "loggers": loggers})
    result = api_finetune(run, hidden=hidden, freeze=freeze, unfreeze_last=unfreeze_last, features=features,
                          out=out, model=transfer_model, progress=progress, overwrite=overwrite, **overrides)
    # the head's test accuracy goes where its training was logged (--log, or --set loggers=...), in the same runs
    from zoo.api import load
    from zoo.console import to_stderr
    from zoo.tracking import logging_evaluations
    head = load(result.run_dir)  # through the public API, as a user would: the loggers the head trained with
    able, unable = logging_evaluations(head.train_config.loggers)
    if unable:  # the head trained and is saved: its accuracy is still measured and printed
        to_stderr(f"note: {', '.join(unable)} logs no evaluations: the head's test accuracy is not logged there")
    report = evaluate(head, loggers=able or None)
    _print_classification(report)


def _print_classification(result: dict) -> None:
    rep = result.get("report", {})
    click.echo(f"{result['split']} accuracy {result['metrics']['accuracy']:.2%} on {result['images']} "
               f"{result['dataset']} images")
    if rep:
        p = rep["parameters"]
        trained = (f"; training time {rep['train_seconds']:.1f} s over {rep['epochs']} "
                   f"epoch{'' if rep['epochs'] == 1 else 's'}" if rep.get("epochs") else "")  # published: unknown
        click.echo(f"parameters: {p['trainable']:,} trainable of {p['total']:,}{trained}")
        names = result.get("classes") or [str(i) for i in range(len(rep["per_class_accuracy"]))]
        # a class with no image in the split has no accuracy measured (null): said so, never as 0%
        click.echo("per-class accuracy: " + ", ".join(f"{name}: {'n/a (no test images)' if a is None else f'{a:.1%}'}"
                                                      for name, a in zip(names, rep["per_class_accuracy"])))
        if rep.get("confusion_png") and result.get("written"):
            click.echo(f"confusion matrix: {Path(result['written'][0]).parent / rep['confusion_png']}")


# The other command modules add their commands to `cli` when imported (they import torch only inside
# their commands, so `zoo --help` stays fast).
from zoo.cli import analysis, compare, hub, search  # noqa: E402,F401


def main() -> None:
    from zoo.console import forgive_stderr

    stop_like_ctrl_c()
    forgive_stderr()
    try:
        cli(prog_name="zoo")
    except OSError as e:  # while click reads the command line, before ZooGroup.invoke: zoo --version > /dev/full
        error = os_error(e)
        say(error)
        sys.exit(error.exit_code)
    finally:  # the command is done (its files written, its message said): a stop while Python shuts down was an
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
            if sig is not None:  # "Exception ignored in atexit callback" traceback, or 130 without a word
                signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    main()

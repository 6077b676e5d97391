"""README.md model cards for run folders: YAML metadata for hubs, then what it is and how to use it."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path
from urllib.parse import unquote

from zoo import registry
from zoo.analysis import plots
from zoo.console import to_stderr
from zoo.errors import ZooError
from zoo.runs import checkpoint as ckpt
from zoo.runs.files import sampler_names


def _yaml_list(items) -> str:
    return "".join(f"\n  - {json.dumps(str(i))}" for i in items)


def _model_class(model: str) -> type | None:
    """The run's model class, from its plugin (None when the plugin is not installed here)."""
    try:
        return registry.get_model_class(model)
    except ZooError:  # an unknown or broken plugin: the card still renders, with the general lines
        return None


def _usage(address: str, cls: type | None, samplers=(), dataset: str = "") -> tuple[str, list[str]]:
    """The card's load line and the commands that apply to the model (all of them when unknown), with
    one `zoo generate --sampler` line per latent sampler that goes with the weights."""
    can = set(cls.capabilities()) if cls is not None else {"encode", "reconstruct", "sample"}
    evaluates = cls.has_test_metrics() if cls is not None else True
    shell = shlex.quote(address)
    methods = [m for m, c in (("run.encode(x)", "encode"), ("run.reconstruct(x)", "reconstruct"),
                              ("run.sample(n)", "sample"), ("run.sample_class(labels)", "sample_class"),
                              ("run.classify(x)", "classify")) if c in can]
    python_line = f"run = zoo.load({json.dumps(address)})  # run.model: the torch module" + \
        (f"; {', '.join(methods)}" if methods else "")
    # pictures named after the model: following two cards' lines in one folder keeps both models' pictures
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", address.rstrip("/").rsplit("/", 1)[-1].split("@")[0]).strip("-.") or "model"
    commands = []
    if evaluates:
        commands.append(f"zoo eval {shell}")
    if "reconstruct" in can:
        commands.append(f"zoo reconstruct {shell} --n 16 --out {stem}-recon.png")
    if "sample" in can:
        commands.append(f"zoo generate {shell} --n 64 --out {stem}-samples.png")
        if registry.feature_network_name(dataset) in registry.weights():  # one measures its FID
            commands.append(f"zoo eval {shell} --fid")
    commands += [f"zoo generate {shell} --sampler {s} --n 64 --out {stem}-samples-{s}.png" for s in samplers]
    if "sample_class" in can:
        commands.append(f"zoo generate {shell} --per-class 8 --out {stem}-per-class.png")
    return python_line, commands


def _task(cls: type | None) -> str:
    """The Hugging Face task its figures are filed under."""
    if cls is not None and cls.can("classify"):
        return "image-classification"
    if cls is not None and cls.can("sample_class"):
        return "class-conditional-image-generation"
    if cls is not None and not cls.can("reconstruct") and cls.can("sample"):
        return "unconditional-image-generation"
    return "image-reconstruction"


def render_card(run: dict, eval_result: dict | None, images: list[str], address: str, samplers=(),
                catalogued: dict | None = None) -> str:
    """The card of a run reached at `address` (a folder, a catalogued name or a hub location): its
    load lines use the address as it is, so they work as written. `samplers`: the names of the latent
    samplers fitted on its training codes that go with the weights (sampler-NAME.safetensors). `catalogued`:
    the figures the catalogue quotes for catalogued weights, shown where eval.json does not hold them (an FID)."""
    run_name = address.rstrip("/").rsplit("/", 1)[-1]
    if address.startswith("file:"):  # file:///hub/my%20entry: "my entry" (a folder's own name stays as it is)
        run_name = unquote(run_name)
    model, data = run["model"], run.get("data", {})
    dataset = data.get("name", run.get("train", {}).get("dataset", "?"))
    metrics = (eval_result or {}).get("metrics", {})
    others = {k: v for k, v in (catalogued or {}).items() if k not in metrics and isinstance(v, (int, float))}
    cls = _model_class(model)
    # a conditional model's likelihood figures are of p(x | y)
    given = "; given each image's class: p(x | y)" if cls is not None and cls.can("sample_class") and \
        cls.has_test_metrics() else ""
    lines = ["---", "library_name: zoo", "license: mit",
             f"tags:{_yaml_list(['zoo', model, 'image', 'unsupervised'])}",
             f"datasets:{_yaml_list([dataset])}"]
    if metrics or others:
        lines.append("model-index:")
        lines.append(f"  - name: {json.dumps(run_name)}")
        lines.append("    results:")
        lines.append(f"      - task: {{type: {_task(cls)}}}")
        limit = (eval_result or {}).get("limit")  # a look at the first N images: the datasets library's slice
        split = f"{(eval_result or {}).get('split', 'test')}" + (f"[:{limit}]" if isinstance(limit, int) else "")
        lines.append(f"        dataset: {{name: {json.dumps(dataset)}, type: {json.dumps(dataset)}, "
                     f"split: {json.dumps(split)}}}")
        lines.append("        metrics:")
        for k, v in {**metrics, **others}.items():
            lines.append(f"          - {{type: {k}, value: {v:.6g}}}")
    lines.append("---")
    lines += ["", f"# {run_name}: `{model}` trained on {dataset}", "",
              f"A zoo `{model}` model ({run.get('plugin', {}).get('package', 'zoo')} "
              f"{run.get('plugin', {}).get('version', '')}), trained with zoo {run.get('zoo_version', '')} "
              f"on {dataset} images of shape {tuple(data.get('shape', ()))}.", ""]
    if metrics:
        split = str(eval_result.get("split", "test"))  # a quick look at the train split is not called a test
        heading = {"val": "Validation"}.get(split, split.capitalize())
        pixels = eval_result.get("pixels")  # binarised or grey: a Bernoulli -log p(x) means nothing without it
        pixels = f", {pixels}" if isinstance(pixels, str) else ""
        lines += [f"## {heading} metrics ({eval_result.get('images')} {split} images{pixels}{given})", "",
                  "| metric | value | standard error |", "| --- | --- | --- |"]
        errors = eval_result.get("standard_errors")  # the spread over the images over √N (older evals: none; a
        errors = {k: v for k, v in errors.items() if type(v) in (int, float) and math.isfinite(v)} \
            if isinstance(errors, dict) else {}  # null: none)
        lines += [f"| {k} | {v:.5g} | {f'{errors[k]:.2g}' if k in errors else '—'} |" for k, v in metrics.items()]
        lines.append("")
        if isinstance(eval_result.get("metrics_note"), str):
            lines += [f"Note: {eval_result['metrics_note']}.", ""]
        if isinstance(eval_result.get("other_images"), str):  # another --data-dir's files under the set's name
            lines += [f"Measured on other images than it was trained and tested on: {eval_result['other_images']}.",
                      ""]
        ks = [k[len("nll_iwae_k"):].split("_")[0] for k in metrics if k.startswith("nll_iwae_k")]
        if ks:  # the −ELBO (and a VampPrior's KL) come from the first bound's draws
            lines += [f"The Monte-Carlo figures are those of one stream of draws: `zoo eval {shlex.quote(address)} "
                      f"--iwae-k {ks[0]}` gives them again" + (f" (`--iwae-k {ks[1]}` its K = {ks[1]} bound)"
                                                              if len(ks) > 1 else "")
                      + "; without `--iwae-k` the −ELBO is another draw (within its standard error).", ""]
    if others:
        binarize = run.get("train", {}).get("binarize", "none")
        pixels = f", binarised ({binarize})" if binarize not in ("none", "", None) else ""
        lines += [f"## Catalogued figures (test split{pixels}{given})", "", "| metric | value |", "| --- | --- |",
                  *[f"| {k} | {v:.5g} |" for k, v in others.items()], "",
                  "(quoted by the catalogue entry of these weights, zoo's registry.toml or a plugin's or a user's "
                  "catalogue file, for the test split when they were catalogued; not measured for this card"
                  + (f"; `classifier_` figures by `zoo eval {shlex.quote(address)} --fid`"
                     if any(k.startswith("classifier_") for k in others) else "") + ")", ""]
    python_line, commands = _usage(address, cls, samplers, dataset)
    package = run.get("plugin", {}).get("package") or "zoo"
    needs = ([f"The model comes from the plugin package `{package}`: install it beside zoo first "
              f"(`pip install {package}`).", ""] if package != "zoo" else [])
    lines += ["## Use it", "", *needs, "```python", "import zoo", python_line, "```", "", "```", *commands, "```", "",
              "## Training configuration", "",
              *([f"Started from the preset `{run['preset']}` (`zoo info {run['preset']}`); the values it trained "
                 "with:", ""] if isinstance(run.get("preset"), str) else []), "```json",
              json.dumps({"config": run.get("config"), "train": run.get("train")}, indent=2), "```", ""]
    for img in images:
        lines += [f"![{img}]({img})", ""]
    return "\n".join(lines)


PICTURES = ("reconstructions.png", "samples.png", "loss.png")  # a run's pictures a card shows and a push publishes
MODEL_PICTURES = PICTURES[:2]  # ... of the model's outputs: of the weights they were made with
# zoo generate's grids drawn otherwise than from the model's prior (--sampler gmm: samples-gmm.png, --class 3:
# samples-class-3.png): pictures of the model's outputs too, each in its own file
OTHER_SAMPLES = re.compile(r"samples-[A-Za-z0-9_.-]+\.png")


def is_picture(name: str) -> bool:
    """A run's picture that a card shows and a push publishes."""
    return name in PICTURES or bool(OTHER_SAMPLES.fullmatch(name))


def current_pictures(run_dir: Path, log=None) -> list[str]:
    """The run's pictures (PICTURES, then zoo generate's other grids) but those of the model's outputs
    made with other weights than model.safetensors holds now (drawn before the run was trained further):
    each such one said to `log`."""
    current, pictures = None, []
    others = sorted(p.name for p in Path(run_dir).glob("samples-*.png") if OTHER_SAMPLES.fullmatch(p.name))
    for name in (*PICTURES, *others):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        of_model = name in MODEL_PICTURES or name in others
        stamp = plots.weights_stamp(path) if of_model else None  # none: a picture of an older zoo
        if stamp is not None:
            current = current or ckpt.weights_digest(Path(run_dir) / ckpt.WEIGHTS)
            if stamp != current:
                if log:
                    log(f"note: {name} shows other weights than model.safetensors holds (made before the run was "
                        "trained further): it is left out; make it again (zoo generate / zoo reconstruct)")
                continue
        pictures.append(name)
    return pictures


def write_card(run_dir: Path, log=to_stderr) -> Path:
    """README.md of a run folder, from its config.json, its current eval.json (a stale one is left out,
    with a note to `log`) and its pictures."""
    run_dir = Path(run_dir)
    run = ckpt.read_json(run_dir / ckpt.CONFIG)
    eval_result, note = ckpt.read_eval(run_dir)  # only test metrics of the weights the card describes
    if note:
        log(f"note: {note}")
    images = current_pictures(run_dir)
    path = run_dir / ckpt.CARD
    # The run as the user reached it (runs/ae, /data/runs/ae): the load line works from where they work.
    ckpt.atomic_write(path, render_card(run, eval_result, images, str(run_dir), sampler_names(run_dir)))
    return path

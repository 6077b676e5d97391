"""README.md model cards for run folders: YAML metadata for hubs, then what it is and how to use it, then
the user's own notes: the text below the card's notes line (NOTES_LINE), carried into every card zoo writes
of the run (zoo eval, zoo push). The line records a digest of the card above it, so that a hand edit there,
which the next card replaces, is said rather than dropped without a word."""

from __future__ import annotations

import hashlib
import json
import os
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
from zoo.runs import eval_images
from zoo.runs.files import sampler_names
from zoo.runs.metrics_log import best_row
from zoo.runs.training_state import recorded_trainer


def _yaml_list(items) -> str:
    return "".join(f"\n  - {json.dumps(str(i))}" for i in items)


def _model_class(model: str) -> type | None:
    """The run's model class, from its plugin (None when the plugin is not installed here)."""
    try:
        return registry.get_model_class(model)
    except ZooError:  # an unknown or broken plugin: the card still renders, with the general lines
        return None


NOTES_LINE = ("<!-- zoo card {digest}: write your own notes below this line; zoo keeps them in every card it writes "
              "(zoo eval, zoo push) and writes the card above anew -->")
_NOTES_RE = re.compile(r"^<!-- zoo card ([0-9a-f]{12}): .*-->$", re.MULTILINE)


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:12]  # as the card is written


def with_notes(card: str, notes: str = "") -> str:
    """`card`, then its notes line (with the digest of the card above it), then the user's `notes`."""
    above = card.rstrip("\n") + "\n\n"
    return above + NOTES_LINE.format(digest=_text_digest(above)) + "\n" + notes


def read_notes(path: Path) -> tuple[str, str | None]:
    """The user's notes in the card at `path` (the text below its notes line), and what to say where a push or
    the next card drops text of the user's: an edit above the line, or a card without the line (an older zoo's,
    or a file of the user's). ("", None) without a card."""
    try:
        text = Path(path).read_bytes().decode("utf-8", "replace")
    except OSError:  # none (or unreadable: the card is zoo's to write anew)
        return "", None
    found = _NOTES_RE.search(text)
    if found is None:
        return "", (f"{path} has no notes line (an older zoo wrote it, or it is a file of yours): the card zoo writes "
                    "replaces it, and text of yours in it is not kept; write your notes below the new card's notes "
                    "line, which zoo keeps")
    notes = text[found.end() + 1:]
    if _text_digest(text[:found.start()]) != found.group(1):
        return notes, (f"{path} was edited above its notes line: zoo writes that part anew and does not keep "
                       "the edit; write your text below the notes line, which zoo keeps")
    return notes, None


def shell_address(address: str) -> str:
    """`address` quoted for a shell command line; a local path that begins with '-' as ./-x, else a
    command would take it for an option (zoo eval -x)."""
    return shlex.quote(f"./{address}" if address.startswith("-") else address)


def card_address(run_dir: Path) -> str:
    """A run folder as its card names it: as the user reached it (runs/ae, /data/runs/ae), so that its lines work
    from where they work; but a path through '..', or '.' (zoo train --resume . inside the folder), is right from
    one folder alone and says nothing of the run: the folder's own name then."""
    parts = Path(run_dir).parts
    if not parts or ".." in parts:
        return Path(os.path.abspath(run_dir)).name or str(run_dir)
    return str(run_dir)


def kept_training(run_dir: Path, rows: list[dict], dropped: int = 0) -> tuple[dict | None, int, int, str | None]:
    """The kept epoch's row of metrics.jsonl (best_row; None where the log lacks it), that epoch and the epochs
    trained, and why the log is partial. Where the run's checkpoint records other counters than the log shows (a
    damaged line was skipped: the kept epoch's, or the last), the checkpoint's: no other epoch is called the one
    whose weights model.safetensors holds. `dropped`: the damaged lines read_metrics skipped."""
    row = best_row(rows)
    best, epochs = (row["epoch"] if row else 0), (rows[-1]["epoch"] if rows else 0)
    trainer = recorded_trainer(run_dir)
    lost = f"{dropped} damaged line{'s' * (dropped != 1)} of metrics.jsonl skipped" if dropped else None
    # a diverged epoch's line is logged, and its epoch not counted by the checkpoint (its weights were not kept)
    finished = max((r["epoch"] for r in rows if not r.get("diverged")), default=0)
    if trainer is None or not isinstance(trainer.get("best_epoch"), int) or (trainer["best_epoch"], trainer["epoch"]) \
            == (best, finished):
        return row, best, epochs, lost
    best, epochs = trainer["best_epoch"], trainer["epoch"]
    row = next((r for r in rows if r.get("epoch") == best and not r.get("diverged")), None)
    disagree = "its lines disagree with the run's checkpoint"
    why = (f"metrics.jsonl is partial ({lost or disagree}): the "
           f"checkpoint records {epochs} epochs trained, epoch {best}'s weights kept"
           + ("; that epoch's line is not in the log" if row is None else ""))
    return row, best, epochs, why


def _usage(address: str, cls: type | None, samplers=(), dataset: str = "") -> tuple[str, list[str]]:
    """The card's load line and the commands that apply to the model (all of them when unknown), with
    one `zoo generate --sampler` line per latent sampler that goes with the weights."""
    can = set(cls.capabilities()) if cls is not None else {"encode", "reconstruct", "sample"}
    evaluates = cls.has_test_metrics() if cls is not None else True
    shell = shell_address(address)
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
                catalogued: dict | None = None, quality: dict | None = None) -> str:
    """The card of a run reached at `address` (a folder, a catalogued name or a hub location): its
    load lines use the address as it is, so they work as written. `samplers`: the names of the latent
    samplers fitted on its training codes that go with the weights (sampler-NAME.safetensors). `catalogued`:
    the figures the catalogue quotes for catalogued weights, shown where eval.json does not hold them (an FID).
    `quality`: the run's quality.json of these weights (current_quality), its sample figures quoted."""
    run_name = address.rstrip("/").rsplit("/", 1)[-1]
    if address.startswith("hf://"):  # hf://org/ae@dev (a push to a branch: its lines load that branch): "ae"
        run_name = run_name.split("@")[0]
    if address.startswith("file:"):  # file:///hub/my%20entry: "my entry" (a folder's own name stays as it is)
        run_name = unquote(run_name)
    model, data = run["model"], run.get("data", {})
    dataset = data.get("name", run.get("train", {}).get("dataset", "?"))
    metrics = (eval_result or {}).get("metrics", {})
    limit = (eval_result or {}).get("limit")  # a look at the first N images: the datasets library's slice
    # quality.json's figures are of the whole test split: filed beside test metrics only, never of other images
    sampled = quality_figures(quality) if (eval_result or {}).get("split", "test") == "test" and \
        not isinstance(limit, int) and not (quality or {}).get("other_images") else {}
    sampled = {k: v for k, v in sampled.items() if k not in metrics}
    others = {k: v for k, v in (catalogued or {}).items()
              if k not in metrics and k not in sampled and isinstance(v, (int, float))}
    # model-index is read by hubs and tools as the model's results on its data set's split: figures measured on other
    # images (eval --data-dir of a changed folder) are said in the prose only, as quality.json's are
    filed = {} if (eval_result or {}).get("other_images") else metrics
    cls = _model_class(model)
    # a conditional model's likelihood figures are of p(x | y)
    given = "; given each image's class: p(x | y)" if cls is not None and cls.can("sample_class") and \
        cls.has_test_metrics() else ""
    lines = ["---", "library_name: zoo", "license: mit",
             f"tags:{_yaml_list(['zoo', model, 'image', 'unsupervised'])}",
             f"datasets:{_yaml_list([dataset])}"]
    if filed or sampled or others:
        lines.append("model-index:")
        lines.append(f"  - name: {json.dumps(run_name)}")
        lines.append("    results:")
        lines.append(f"      - task: {{type: {_task(cls)}}}")
        split = f"{(eval_result or {}).get('split', 'test')}" + (f"[:{limit}]" if isinstance(limit, int) else "") \
            if filed else "test"  # the quality and catalogued figures are of the whole test split
        lines.append(f"        dataset: {{name: {json.dumps(dataset)}, type: {json.dumps(dataset)}, "
                     f"split: {json.dumps(split)}}}")
        lines.append("        metrics:")
        for k, v in {**filed, **sampled, **others}.items():
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
        if ks:  # each batch draws from a seed of its own, the bound's draws after the ELBO's
            again = f"`zoo eval {shell_address(address)} --iwae-k {ks[0]}` gives them again" + (
                f" (`--iwae-k {ks[1]}` its K = {ks[1]} bound)" if len(ks) > 1 else "")
            lines += ([f"The Monte-Carlo figures are of fixed draws (a seed for each batch): {again}; the −ELBO is "
                       "the same with or without `--iwae-k`.", ""] if eval_result.get("draws") else
                      [f"The Monte-Carlo figures were drawn by an earlier zoo, from one stream: "
                       f"`zoo eval {shell_address(address)} --iwae-k {ks[0]}` now draws each batch from a seed of "
                       "its own and gives figures within their standard errors of these, not the same digits.", ""])
    if others:
        binarize = run.get("train", {}).get("binarize", "none")
        pixels = f", binarised ({binarize})" if binarize not in ("none", "", None) else ""
        lines += [f"## Catalogued figures (test split{pixels}{given})", "", "| metric | value |", "| --- | --- |",
                  *[f"| {k} | {v:.5g} |" for k, v in others.items()], "",
                  "(quoted by the catalogue entry of these weights, zoo's registry.toml or a plugin's or a user's "
                  "catalogue file, for the test split when they were catalogued; not measured for this card"
                  + (f"; `classifier_` figures by `zoo eval {shell_address(address)} --fid`"
                     if any(k.startswith("classifier_") for k in others) else "") + ")", ""]
    lines += _quality_lines(quality, address, dataset)
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


QUALITY = "quality.json"  # zoo eval --fid's figures of the model's samples (of its prior's: quality-SAMPLER.json not)


def current_quality(run_dir: Path) -> dict | None:
    """The run's quality.json where it measured the weights model.safetensors holds (None: none, unreadable, an
    older zoo's without the weights' digest, or of earlier weights)."""
    try:
        quality = ckpt.read_json(Path(run_dir) / QUALITY)
        current = ckpt.weights_digest(Path(run_dir) / ckpt.WEIGHTS)
    except (ZooError, OSError):
        return None
    if not isinstance(quality, dict) or not isinstance(quality.get("samples_vs_test"), dict) \
            or quality.get(ckpt.WEIGHTS_DIGEST) != current:
        return None
    return quality


QUALITY_FIGURES = {"fid": "classifier_fid", "kid": "classifier_kid", "precision": "classifier_precision",
                   "recall": "classifier_recall"}  # quality.json's samples_vs_test figures, as the catalogue names them
FID_N = 10_000  # zoo eval --fid-n's default: a card's command names another count


def quality_figures(quality: dict | None) -> dict[str, float]:
    """quality.json's figures as the catalogue names them: classifier_fid, _kid, _precision, _recall (the first
    seed's) and a conditional model's class_accuracy of its samples; finite numbers only."""
    if not isinstance(quality, dict) or not isinstance(quality.get("samples_vs_test"), dict):
        return {}
    pair = quality["samples_vs_test"]
    figures = {name: pair.get(k) for k, name in QUALITY_FIGURES.items()}
    accuracy = quality.get("class_accuracy")
    figures["class_accuracy"] = accuracy.get("mean") if isinstance(accuracy, dict) else None
    return {k: v for k, v in figures.items() if type(v) in (int, float) and math.isfinite(v)}


def quality_command(quality: dict, address: str, dataset: str) -> str:
    """The `zoo eval ADDRESS --fid` that measures quality.json's figures again: with the feature network, the
    count and the seeds it was measured with where they are not the defaults (another network or count gives
    figures that do not compare, and a data set with no catalogued network refuses the command without one)."""
    command = f"zoo eval {shell_address(address)} --fid"
    network = quality.get("feature_network")
    if isinstance(network, str) and network != registry.feature_network_name(dataset):
        command += f" --features {shell_address(network)}"
    if type(quality.get("images")) is int and quality["images"] != FID_N:
        command += f" --fid-n {quality['images']}"
    seeds = (quality.get("over_seeds") or {}).get("seeds") if isinstance(quality.get("over_seeds"), dict) else None
    if isinstance(seeds, list) and len(seeds) > 1:
        command += f" --fid-seeds {len(seeds)}"
    return command


def _quality_lines(quality: dict | None, address: str, dataset: str) -> list[str]:
    """The card's section of quality.json's figures of the samples against the test images."""
    figures = quality_figures(quality)
    if not figures:
        return []
    rows = [f"| {k} | {v:.5g} |" for k, v in figures.items()]
    other = " (of other images than it was trained on)" if quality.get("other_images") else ""
    network = quality.get("feature_network")
    theirs = " (a run folder of its publisher's: pass your copy of it)" \
        if isinstance(network, str) and network.startswith("./") else ""
    return [f"## Sample quality ({quality.get('images')} samples against the test images{other})", "",
            "| metric | value |", "| --- | --- |", *rows, "",
            f"(measured by `{quality_command(quality, address, dataset)}`, on the features of the network "
            f"{network}{theirs}: they compare only with figures of the same network and count; "
            f"{QUALITY} holds them all)", ""]


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


def card_folder(folder: Path, source: str) -> Path:
    """Where a command that loaded a run from `source` writes its card: the folder as the user typed it (as `zoo
    train` names it, so the card's lines do not flip between that and the absolute path), where `source` is that
    folder's path; else the resolved `folder`."""
    if "://" not in source and Path(source).absolute() == Path(folder).absolute():
        return Path(source)
    return Path(folder)


def write_card(run_dir: Path, log=to_stderr) -> Path:
    """README.md of a run folder, from its config.json, its current eval.json (a stale one is left out,
    with a note to `log`) and its pictures, with the user's notes of the card it replaces (read_notes; a hand
    edit it does not keep is said to `log`)."""
    run_dir = Path(run_dir)
    run = ckpt.read_json(run_dir / ckpt.CONFIG)
    eval_result, note = eval_images.current_eval(run_dir)  # only test metrics of the weights the card describes
    if note:
        log(f"note: {note}")
    images = current_pictures(run_dir)
    path = run_dir / ckpt.CARD
    notes, dropped = read_notes(path)
    if dropped and path.is_file():
        log(f"note: {dropped}")
    card = render_card(run, eval_result, images, card_address(run_dir), sampler_names(run_dir),
                       quality=current_quality(run_dir))
    # a card is UTF-8 text: a folder name that is not (Latin-1 bytes) is spelled with backslash escapes in it
    ckpt.atomic_write(path, with_notes(card, notes), errors="backslashreplace")
    return path

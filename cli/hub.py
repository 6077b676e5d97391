"""`zoo push`, `zoo pull` and `zoo pretrained`: sharing runs through the Hugging Face Hub or a folder hub,
and the catalogued pretrained weights (zoo's registry.toml, plugins', $ZOO_CATALOG's). Nothing here imports
torch or huggingface-hub until a command runs."""

from __future__ import annotations

import json
import shlex

import click

from zoo.cli.app import cli
from zoo.console import with_article


def _err(msg: str) -> None:
    click.echo(msg, err=True)


@cli.command()
@click.argument("run")
@click.argument("destination")
@click.option("--private", is_flag=True,
              help="Create the Hugging Face repository as private (an existing public one is refused).")
@click.option("--revision", default=None, help="Branch to commit to on the Hugging Face Hub (default main).")
@click.option("--message", "-m", default=None, help="Commit message.")
def push(run, destination, private, revision, message):
    """Publish RUN to DESTINATION: hf://ORG/NAME or a folder hub file:///PATH.

    \b
    The repository gets config.json, model.safetensors, a README.md model card (metadata, metrics, how to
    load it, the training configuration) and the run's pictures. On the Hugging Face Hub the repository
    is created if needed (HF_TOKEN or `hf auth login` authorises it); the printed location is pinned to
    the new commit. A folder hub is created, or replaced as a whole, atomically, only if an earlier push
    made it: zoo never replaces another run or other files, the run itself, or a cache. A damaged run
    (config.json, or weights that fail their recorded checksum) is refused before anything is written.

    \b
    zoo push runs/vae16 hf://my-org/zoo-vae-mnist --private
    zoo push runs/vae16 file:///team/hub/vae-mnist
    """
    from zoo.hub import push as hub_push

    result = hub_push(run, destination, private=private, revision=revision, message=message, log=_err)
    branch = result.branch
    where = (f" (branch {branch}, commit {result.commit})" if result.commit and branch not in (None, "main") else
             f" (commit {result.commit})" if result.commit else "")
    _err(f"pushed {run} to {destination}{where}: {', '.join(result.files)}")
    if result.url:
        _err(f"commit: {result.url}")
    _err(f"load it with: zoo.load(\"{result.location}\")")
    click.echo(result.location)


@cli.command()
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pull(source, as_json):
    """Fetch SOURCE into the cache, verify it, and print the folder it is in.

    SOURCE is a catalogued name (`zoo pretrained`), hf://ORG/NAME[@REVISION] or file:///PATH. Only
    safetensors are fetched; every file is checked against the hub's checksum and a catalogued name also
    against its catalogued sha256. Once pulled, it loads offline (HF_HUB_OFFLINE=1).

    Each file has a size cap, checked before it is fetched: 1 MiB for config.json and the card, 16 MiB
    for metrics.jsonl and eval.json, 20 MiB a picture, and the weights the config describes plus 1 MiB
    (ZOO_HUB_MAX_BYTES=N overrides them all).
    An optional file over its cap, or a link in a folder hub, is skipped with a note; a model file is refused.
    """
    from zoo.hub import pull as hub_pull

    result = hub_pull(source, log=_err)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    how = {"bundled": "bundled with zoo", "local": "in the folder its catalogue entry names",
           "cached": "already in the cache", "fetched": "fetched"}[result["how"]]
    commit = f", commit {result['commit']}" if result.get("commit") else ""
    verified, unverified = result.get("verified", sorted(result["files"])), result.get("unverified", [])
    said = ([f"verified {', '.join(verified)}"] if verified else []) + \
        ([f"not verified: {', '.join(unverified)}"] if unverified else [])
    _err(f"{source}: {how}{commit}; {'; '.join(said)}")
    click.echo(result["folder"])


def list_pretrained(as_json: bool = False, model: str | None = None) -> None:
    """The catalogued pretrained weights: name, model, data set, where they are, measured metrics.
    (`zoo list --pretrained` calls this.)"""
    from zoo.hub import catalogue

    rows = catalogue(model)
    if as_json:
        click.echo(json.dumps({"pretrained": rows}, indent=2))
        return
    if not rows:
        click.echo("no pretrained weights are catalogued" + (f" for model '{model}'" if model else "")
                   + " (catalogue files' [weights.NAME] tables: docs/model-zoo.md)")
        return
    table = [(r["name"], r["model"] or "?", r["dataset"] or "?", r["available"],
              ", ".join(f"{k} {v:#.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["metrics"].items())
              or "-") for r in rows]
    heads = ("name", "model", "dataset", "where", "metrics")
    widths = [max(len(str(row[i])) for row in [heads, *table]) for i in range(4)]
    for row in [heads, *table]:
        click.echo("  ".join(f"{str(row[i]):<{widths[i]}}" for i in range(4)) + "  " + row[4])


def show_pretrained(name: str, as_json: bool = False) -> None:
    """Everything catalogued about pretrained weights NAME. (`zoo info NAME` calls this for a catalogued name.)"""
    from zoo.hub import catalogue_info

    data = catalogue_info(name)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{data['name']}: pretrained {data['model']} on {data['dataset']}"
               + (f" - {data['description']}" if data["description"] else ""))
    where = {"bundled": f"bundled with zoo ({data['bundled']})", "local": f"{data['bundled']}",
             "cached": f"in the cache ({data['cached']})", "hub": f"on the hub, not fetched yet (`zoo pull {name}`)",
             "missing": f"missing: not in {data['bundled'] or 'a folder'} (its entry's path), nor on a hub"
             }[data["available"]]
    click.echo(f"where: {where}")
    if data["available"] != "bundled":
        click.echo(f"catalogued in: {data['catalogue']}")
    if data["hub"]:
        click.echo(f"hub: {data['hub']}")
    if data["sha256"]:
        click.echo(f"sha256 (model.safetensors): {data['sha256']}")
    if data["command"]:
        click.echo(f"trained with: {data['command']}")
    click.echo("measured metrics:" if data["metrics"] else "measured metrics: none recorded")
    for k, v in data["metrics"].items():
        click.echo(f"  {k:<10} {v:.6g}" if isinstance(v, (int, float)) else f"  {k:<10} {v}")
    for k, v in data["extra"].items():
        if k == "default":  # the catalogue's flag: the weights a bare model name loads
            if v is True:
                click.echo(f"the default {data['model']} weights: a bare `{data['model']}` names them "
                           f"(zoo eval {data['model']}, zoo.load(\"{data['model']}\"))")
            continue
        shipped = f", shipped with the weights: zoo generate {name} --sampler {v}" if k == "sampler" else ""
        click.echo(f"{k}: {v}{shipped}")
    click.echo(f"load it: zoo.load(\"{name}\"), or `zoo <command> {name}` wherever a run folder is accepted")


@cli.command()
@click.argument("name", required=False)
@click.option("--model", default=None, help="Only the weights of this architecture.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pretrained(name, model, as_json):
    """The catalogued pretrained weights (zoo's, plugins', $ZOO_CATALOG's), with the metrics their catalogue quotes;
    or all about NAME."""
    if name:
        from zoo import registry

        if name in registry.list_models() and name not in registry.weights():  # a model's name: its weights
            raise click.UsageError(f"'{name}' is a model, not weights: zoo pretrained --model {name} lists its "
                                   "catalogued weights")
        if model is not None and registry.weights().get(name, {}).get("model") not in (None, model):
            raise click.UsageError(f"'{name}' are weights of model '{registry.weights()[name]['model']}', not "
                                   f"'{model}': give NAME or --model, not both")
        show_pretrained(name, as_json)
    else:
        list_pretrained(as_json, model)


def show_run(source: str, as_json: bool = False) -> None:
    """What a run is (`zoo info RUN` for a folder or a hub location), or what a folder hub holds
    (`zoo info file:///PATH` of a folder that holds pushed entries rather than one run)."""
    from pathlib import Path

    from zoo.hub import list_folder_hub, parse

    if source.startswith("file://") and not (parse(source).path / "config.json").exists():
        entries = list_folder_hub(parse(source).path)
        if as_json:
            click.echo(json.dumps({"entries": entries}, indent=2))
            return
        if not entries:
            click.echo(f"{source} holds no pushed runs (`zoo push RUN {source.rstrip('/')}/NAME` adds one)")
        for e in entries:
            click.echo(f"{e['location']}  {e['model']} on {e['dataset']}")
        return
    from zoo.runs.info import run_info

    data = run_info(Path(source) if not source.startswith(("hf://", "file://")) else source)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    plugin = data["plugin"]
    click.echo(f"{source}: {with_article(data['model'])} run ({plugin.get('package', '?')} "
               f"{plugin.get('version', '')}) on {data['dataset']}, images {tuple(data['shape'] or ())}")
    t = data["training"]
    line = (f"training: {t['epochs']} of {t['of']} epochs" if t["epochs"] is not None else
            f"training: {t['of']} epochs configured; no training log (metrics.jsonl) with these weights")
    resume = f"zoo train --resume {shlex.quote(source)}"
    line += {"training": " (training now)", "diverged": " (diverged: its best weights are kept)",
             "early_stopping": " (stopped early)", "completed": " (completed)",
             "interrupted": f" (interrupted; `{resume}` continues it)"}.get(t.get("ended"), "")
    if "best_epoch" in t:
        figures = ", ".join(f"{k} {v:.5g}" for k, v in t["best"].items())
        line += (f", best epoch {t['best_epoch']}" if t.get("kept") != "last" else
                 f", last epoch {t['best_epoch']} kept") + (f" ({figures})" if figures else "")
    if "seconds" in t:
        line += f", {t['seconds']:.0f} s"
    click.echo(line)
    if data["classes"]:
        click.echo(f"classes: {', '.join(map(str, data['classes']))}")
    if data.get("test_metrics"):
        m = dict(data["test_metrics"])
        split, images, pixels = m.pop("split"), m.pop("images"), m.pop("pixels", None)
        other, given = m.pop("other_images", None), m.pop("given", None)
        errors = data.get("test_standard_errors") or {}
        given = f"; given each image's class: {given}" if given else ""  # a cvae's p(x | y), as its card says
        click.echo(f"{split} metrics ({images} images{f', {pixels}' if pixels else ''}{given}"
                   f"{f'; other images than it was trained on: {other}' if other else ''}): "
                   + ", ".join(f"{k} {v:.5g}" + (f" ± {errors[k]:.2g}" if k in errors else "") for k, v in m.items()))
    if data.get("sample_quality"):  # zoo eval --fid's figures of these weights' samples
        q = dict(data["sample_quality"])
        images, network, other = q.pop("images"), q.pop("feature_network"), q.pop("other_images", None)
        click.echo(f"sample quality ({images} samples against the test images, feature network {network}"
                   f"{f'; other images than it was trained on: {other}' if other else ''}): "
                   + ", ".join(f"{k} {v:.5g}" for k, v in q.items()))
    if data["changed"] is None:  # the plugin is not installed: its defaults are unknown
        click.echo(f"model '{data['model']}' is not installed here, so its defaults are unknown; config as trained: "
                   + ", ".join(f"{k}={json.dumps(v)}" for k, v in data["config"].items()))
    else:
        click.echo("config (as trained, where not the default): "
                   + (", ".join(f"{k}={json.dumps(v)}" for k, v in data["changed"].items()) or "all defaults"))
        cuda_only = [k for k in ("bf16", "cuda_graph") if data["changed"].get(k)]
        if data["devices"] and cuda_only and not any(d.startswith("cuda") for d in data["devices"]):
            click.echo(f"  ({' and '.join(cuda_only)} act{'s' * (len(cuda_only) == 1)} on CUDA only: it trained as "
                       f"without {'them' if len(cuda_only) > 1 else 'it'})")
    if data.get("preset"):
        click.echo(f"preset: {data['preset']} (its values are in the config above)")
    for line in data.get("provenance", []):
        click.echo(line)
    if data["devices"]:  # an older zoo's run records none
        click.echo(f"trained on: {', '.join(data['devices'])}")
    click.echo("files: " + ", ".join(f"{n} ({s:,} B)" for n, s in data["files"].items()))
    if data["not_regular"]:
        click.echo(f"not regular files (zoo will not read them): {', '.join(data['not_regular'])}")
    if data["missing"]:
        click.echo(f"load it: not as it is; put back its {' and '.join(data['missing'])} first")
    elif data.get("unbuildable"):  # said as a note above
        click.echo("load it: not as it is (the note above says why)")
    elif data["installed"]:
        click.echo(f"load it: {data['load']}")
    elif data["plugin_failure"]:
        click.echo(f"load it: not until package {plugin.get('package')} loads: it is installed but failed "
                   f"({data['plugin_failure']}); fix or reinstall it (`zoo list` says why), then {data['load']}")
    else:
        click.echo(f"load it: install the package that provides '{data['model']}' first "
                   f"(pip install {plugin.get('package', '?')}), then {data['load']}")

"""README.md model cards for run folders: YAML metadata for hubs, then what it is and how to use it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from zoo.runs import checkpoint as ckpt


def _yaml_list(items) -> str:
    return "".join(f"\n  - {json.dumps(str(i))}" for i in items)


def render_card(run: dict, eval_result: dict | None, images: list[str], address: str) -> str:
    """The card of a run reached at `address` (a folder, a catalogued name or a hub location): its
    load lines use the address as it is, so they work as written."""
    run_name = address.rstrip("/").rsplit("/", 1)[-1]
    model, data = run["model"], run.get("data", {})
    dataset = data.get("name", run.get("train", {}).get("dataset", "?"))
    metrics = (eval_result or {}).get("metrics", {})
    lines = ["---", "library_name: zoo", "license: mit",
             f"tags:{_yaml_list(['zoo', model, 'image', 'unsupervised'])}",
             f"datasets:{_yaml_list([dataset])}"]
    if metrics:
        lines.append("model-index:")
        lines.append(f"  - name: {json.dumps(run_name)}")
        lines.append("    results:")
        lines.append("      - task: {type: image-reconstruction}")
        lines.append(f"        dataset: {{name: {json.dumps(dataset)}, type: {json.dumps(dataset)}, "
                     f"split: {eval_result.get('split', 'test')}}}")
        lines.append("        metrics:")
        for k, v in metrics.items():
            lines.append(f"          - {{type: {k}, value: {v:.6g}}}")
    lines.append("---")
    lines += ["", f"# {run_name}: `{model}` trained on {dataset}", "",
              f"A zoo `{model}` model ({run.get('plugin', {}).get('package', 'zoo')} "
              f"{run.get('plugin', {}).get('version', '')}), trained with zoo {run.get('zoo_version', '')} "
              f"on {dataset} images of shape {tuple(data.get('shape', ()))}.", ""]
    if metrics:
        lines += [f"## Test metrics ({eval_result.get('images')} {eval_result.get('split')} images)", "",
                  "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {v:.5g} |" for k, v in metrics.items()]
        lines.append("")
    shell = shlex.quote(address)
    lines += ["## Use it", "", "```python", "import zoo", f"run = zoo.load({json.dumps(address)})  # run.model: the torch module; run.encode(x), run.sample(n)", "```", "",
              "```", f"zoo eval {shell}", f"zoo reconstruct {shell} --n 16 --out recon.png", "```", "",
              "## Training configuration", "", "```json",
              json.dumps({"config": run.get("config"), "train": run.get("train")}, indent=2), "```", ""]
    for img in images:
        lines += [f"![{img}]({img})", ""]
    return "\n".join(lines)


def write_card(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    run = ckpt.read_json(run_dir / ckpt.CONFIG)
    eval_path = run_dir / ckpt.EVAL
    eval_result = ckpt.read_json(eval_path) if eval_path.exists() else None
    images = [p for p in ("reconstructions.png", "samples.png", "loss.png") if (run_dir / p).exists()]
    path = run_dir / ckpt.CARD
    # The run as the user reached it (runs/ae, /data/runs/ae): the load line works from where they work.
    ckpt.atomic_write(path, render_card(run, eval_result, images, str(run_dir)))
    return path

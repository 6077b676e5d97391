"""Add a trained run to zoo's catalogue: copy what loading needs into the bundled folder hub
(zoo/weights/NAME: config.json, model.safetensors, README.md), measure it with `zoo eval` now
(or, with --reuse-eval, take the run's eval.json when it measured these weights on the whole test
split) and ship that eval.json with its images' values (eval-images.safetensors, what `zoo compare`
pairs runs by), and write its [weights.NAME] entry into registry.toml (sha256, metrics, command). With --sampler S, the
latent sampler S fitted on the run's training codes (RUN/sampler-S.safetensors, fitted there if missing)
is shipped beside the weights and the entry names it: `zoo generate NAME --sampler S` then needs no
training images, and `zoo generate NAME` points to it (ship the sampler that scored the lowest FID on the
run's codes, for a model with a prior only one that beat the prior's).

    python benchmarks/catalogue.py gan-mnist /tmp/bench/runs/gan-mnist --default \\
        --command "zoo train gan --dataset mnist --set g_channels=32 --set d_channels=32 --epochs 8"

The folder has a run's layout, so `zoo push zoo/weights/NAME hf://org/NAME` publishes it unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

import zoo
from zoo import registry
from zoo.analysis.latent_samplers import fitted_sampler, sampler_path
from zoo.errors import ZooError
from zoo.runs import checkpoint as ckpt
from zoo.runs import eval_images
from zoo.runs.modelcard import render_card

ROOT = Path(__file__).resolve().parents[1]
# The run's pictures stay behind: git ignores *.png, so a card that showed them would point at missing files
# in every clone and wheel (tests/test_bundled_cards.py).
KEEP = ("config.json", "model.safetensors", "README.md")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return f"{v:.6g}" if isinstance(v, float) else str(v)
    return json.dumps(str(v))


def measured_metrics(run: Path, iwae_k: int) -> dict:
    """Test metrics measured now (zoo eval, writing RUN/eval.json); none for a GAN."""
    try:
        return zoo.evaluate(run, options={"iwae_k": iwae_k} if iwae_k else {})["metrics"]
    except ZooError:  # a GAN has no per-image metrics
        return {}


def reused_metrics(run: Path, net, iwae_k: int) -> dict:
    """RUN/eval.json's metrics, only if it measured these weights on every test image (and the bound at K)."""
    result, why = ckpt.read_eval(run)
    if result is None:
        raise SystemExit(f"--reuse-eval: {why or f'{run} has no eval.json'}; run zoo eval {run} first")
    test_images = net.dataset().split("test")[0].shape[0]
    if result.get("split") != "test" or result.get("images") != test_images:
        raise SystemExit(f"--reuse-eval: {run}/eval.json measured {result.get('images')} {result.get('split')} "
                         f"images, not the whole test split ({test_images}); run zoo eval {run} without --limit")
    if iwae_k and f"nll_iwae_k{iwae_k}_nats" not in result["metrics"]:
        raise SystemExit(f"--reuse-eval: {run}/eval.json holds no bound at K={iwae_k}; "
                         f"run zoo eval {run} --iwae-k {iwae_k}")
    return result["metrics"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("run")
    ap.add_argument("--command", required=True, help="the exact command that trained the run")
    ap.add_argument("--description", default="")
    ap.add_argument("--default", action="store_true", help="what `zoo generate MODEL` loads by the model's name")
    ap.add_argument("--iwae-k", type=int, default=0, help="VAE: importance samples for the catalogued -log p(x)")
    ap.add_argument("--reuse-eval", action="store_true",
                    help="take RUN/eval.json instead of measuring again (a K=1000 bound is a quarter hour on a CPU)")
    ap.add_argument("--sampler", default="", help="ship this latent sampler, fitted on RUN's training codes")
    args = ap.parse_args()

    run = Path(args.run)
    net = zoo.load(run)
    metrics = reused_metrics(run, net, args.iwae_k) if args.reuse_eval else measured_metrics(run, args.iwae_k)
    quality = run / "quality.json"
    if quality.exists():  # zoo eval RUN --fid: FID never without precision and recall
        measured = json.loads(quality.read_text())
        q = measured["samples_vs_test"]
        metrics.update({"classifier_fid": q["fid"], "classifier_kid": q["kid"], "classifier_precision": q["precision"],
                        "classifier_recall": q["recall"]})
        if "class_accuracy" in measured:
            metrics["class_accuracy"] = measured["class_accuracy"]["mean"]
    target = ROOT / "zoo" / "weights" / args.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in KEEP:
        if (run / name).exists():
            shutil.copy2(run / name, target / name)
    if args.sampler:
        fitted_sampler(net, args.sampler)  # RUN's own file, or fitted on its training codes and saved there
        shutil.copy2(sampler_path(run, args.sampler), target / sampler_path(run, args.sampler).name)
    # The card again, addressed by the catalogued name (the run's own names its folder, wherever it was).
    eval_result = ckpt.read_eval(run)[0]  # what measured these weights (never a stale eval.json)
    if eval_result is not None and eval_images.read(run, eval_result)[0]:
        # Shipped with its images' values: `zoo compare` pairs the bundled model with a user's runs at once.
        for name in (ckpt.EVAL, eval_images.IMAGES_FILE):
            shutil.copy2(run / name, target / name)
    shipped = [args.sampler] if args.sampler else []
    card = render_card(net.record, eval_result, [], args.name, shipped, catalogued=metrics)
    (target / "README.md").write_text(card)
    digest = hashlib.sha256((target / "model.safetensors").read_bytes()).hexdigest()
    cfg = net.record
    lines = [f"[weights.{args.name}]", f'model = "{cfg["model"]}"', f'dataset = "{cfg["train"]["dataset"]}"',
             f"description = {json.dumps(args.description or cfg['model'] + ' trained on ' + cfg['train']['dataset'])}",
             f'path = "weights/{args.name}"', f'sha256 = "{digest}"', f"command = {json.dumps(args.command)}"]
    if args.sampler:
        lines.append(f"sampler = {json.dumps(args.sampler)}")
    if args.default:
        lines.append("default = true")
    if metrics:
        lines.append(f"[weights.{args.name}.metrics]")
        lines += [f"{k} = {toml_value(v)}" for k, v in metrics.items()]
    entry = "\n".join(lines) + "\n"
    text = (ROOT / "zoo" / "registry.toml").read_text()
    text = re.sub(rf"\n\[weights\.{re.escape(args.name)}\][^\[]*(\[weights\.{re.escape(args.name)}\.metrics\][^\[]*)?",
                  "\n", text)
    (ROOT / "zoo" / "registry.toml").write_text(text.rstrip("\n") + "\n\n" + entry)
    registry._registry = None
    print(entry)
    print(f"bundled {args.name} in {target} ({sum(p.stat().st_size for p in target.iterdir()) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

"""Ship with a bundled model a bound measured after it was catalogued: the −log p(x) at another K that
`zoo eval NAME --iwae-k K` wrote into ./zoo-outputs/NAME/ over the same weights and the same test images
goes into zoo/weights/NAME's eval.json and eval-images.safetensors (each image's value, so that `zoo
compare` pairs the bundled models at that K at once), its card and its catalogue metrics. The shipped
metrics stay as they are; only bounds they lack are added.

    python benchmarks/ship_bound.py piwae-mnist /work/runs/k5000/zoo-outputs/piwae-mnist
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from catalogue import ROOT, toml_value

import zoo
from zoo import registry
from zoo.runs import checkpoint as ckpt
from zoo.runs import eval_images
from zoo.runs.modelcard import render_card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="a bundled model (zoo/weights/NAME)")
    ap.add_argument("outputs", type=Path, help="the folder `zoo eval NAME --iwae-k K` wrote (zoo-outputs/NAME)")
    args = ap.parse_args()
    bundled = ROOT / "zoo" / "weights" / args.name
    shipped, why = ckpt.read_eval(bundled)
    if shipped is None:
        raise SystemExit(f"{bundled} ships no evaluation ({why}): bundle it with benchmarks/catalogue.py first")
    new, why = ckpt.read_eval(args.outputs, weights=bundled / ckpt.WEIGHTS)
    if new is None:
        raise SystemExit(f"{args.outputs}: no evaluation of these weights ({why or 'no eval.json'})")
    if new.get("split", "test") != "test" or new.get("limit") is not None or \
            new.get(eval_images.IMAGES_DIGEST) != shipped.get(eval_images.IMAGES_DIGEST):
        raise SystemExit(f"{args.outputs}/eval.json measured other images than the shipped evaluation")
    added = sorted(k for k in new["metrics"] if k.startswith("nll_iwae_k") and k not in shipped["metrics"])
    if not added:
        raise SystemExit(f"{args.outputs}/eval.json holds no bound that {bundled}/eval.json lacks")
    values, why = eval_images.read(bundled, shipped)
    new_values, new_why = eval_images.read(args.outputs, new)
    if not values or not all(k in new_values for k in added):
        raise SystemExit(f"each image's values are missing: {why or new_why}")

    merged = {**shipped, "metrics": {**shipped["metrics"], **{k: new["metrics"][k] for k in added}},
              "standard_errors": {**shipped["standard_errors"], **{k: new["standard_errors"][k] for k in added}}}
    eval_images.write(bundled, {**values, **{k: new_values[k] for k in added}}, merged)  # eval.json's after it
    ckpt.write_json(bundled / ckpt.EVAL, merged)

    run = zoo.load(args.name)
    entry = registry.weights()[args.name]
    samplers = [entry["sampler"]] if entry.get("sampler") else []
    (bundled / "README.md").write_text(render_card(run.record, merged, [], args.name, samplers))
    path = ROOT / "zoo" / "registry.toml"
    text = path.read_text()
    section = re.search(rf"\[weights\.{re.escape(args.name)}\.metrics\]\n(?:[^\[\n][^\n]*\n)*", text)
    lines = "".join(f"{k} = {toml_value(merged['metrics'][k])}\n" for k in added)
    path.write_text(text[:section.end()] + lines + text[section.end():])
    for k in added:
        print(f"{args.name}: {k} = {merged['metrics'][k]:.4f} ± {merged['standard_errors'][k]:.4f} shipped")


if __name__ == "__main__":
    main()

"""The issue-15 rule (each likelihood model's training within 2× of the plain VAE's at the same number of
decoder passes per image) measured on whole epochs through the engine, as a user trains: dynamically
binarised MNIST, the `vae-mnist` net at latent 32, each model trained for a few epochs in turn. Prints,
for each model, the median wall seconds of its epochs after the first (the first records the CUDA graph
and warms caches), the plain VAE's times the model's decoder passes per image, and their ratio.
likelihood_step.py times single eager steps on one CPU thread; this one is for a GPU, `cuda_graph` on.

    python benchmarks/likelihood_epoch.py --models vampprior,hvae-vampprior --set device=cuda --set cuda_graph=true
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from likelihood_step import MODELS
from model_zoo import COMMON, settings

import zoo
from zoo.errors import ZooError


def epoch_seconds(plugin: str, options: dict, epochs: int, out: Path) -> float:
    """Median seconds of the epochs after the first of `plugin` trained with the rows' common settings and
    `options` (a bad one ends the script with zoo's message)."""
    try:
        result = zoo.train(plugin, preset=COMMON["preset"], dataset=COMMON["dataset"], epochs=epochs, out=out,
                           progress=False, log=lambda message: None, **options)
    except ZooError as e:
        sys.exit(f"{plugin}: {e}")
    return statistics.median(r["seconds"] for r in result.history[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="iwae-k50,piwae-8x8,vampprior,hvae-vampprior",
                    help=f"comma-separated, of: {', '.join(MODELS)}")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of each model (the first is not timed)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a training setting for every model (device=cuda, cuda_graph=true, ...)")
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be at least 2: the first epoch is not timed")
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        ap.error(f"unknown model {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    extra = settings({}, args.set)  # the rows' common settings and each --set
    tmp = Path(tempfile.mkdtemp())
    vae_s: dict[bool, float] = {}  # the VAE's epoch, with and without batch norm (each model's own net)
    for key in args.models.split(","):
        plugin, own, passes = MODELS[key]
        norm = own.get("batch_norm", True)
        if norm not in vae_s:
            vae_s[norm] = epoch_seconds("vae", {**extra, "batch_norm": norm}, args.epochs, tmp / f"vae-{norm}")
        model_s = epoch_seconds(plugin, {**extra, **own}, args.epochs, tmp / key)
        vae = passes * vae_s[norm]
        print(json.dumps({"model": key, "decoder_passes_per_image": passes, "vae_epoch_s": round(vae_s[norm], 3),
                          "vae_at_same_passes_s": round(vae, 3), "model_epoch_s": round(model_s, 3),
                          "ratio": round(model_s / vae, 2), "epochs": args.epochs, "sets": args.set}), flush=True)


if __name__ == "__main__":
    main()

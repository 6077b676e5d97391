"""The training cost of the likelihood models against the plain VAE at the same number of decoder passes
per image (the issue-15 rule: within 2×). One training step (forward, backward, Adam) of each model on a
batch of dynamically binarised MNIST-sized images, on one thread, the models taken in turn round after
round so that a busy machine slows all of them alike. The VAE's figure is P of its steps on the same batch
size, where P is the other model's decoder passes per image (an IWAE-K makes K): the VAE trained on P
times the images. Prints the median seconds per step and the ratio.

    OMP_NUM_THREADS=1 python benchmarks/likelihood_step.py [--rounds 7] [--batch 128] [--models iwae-k5,piwae,...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import zoo
from zoo.model import Batch

# name: (plugin, settings, decoder passes per image). The `vae-mnist` preset's conv net, latent 32.
MODELS = {
    "iwae-k5": ("iwae", {"k": 5}, 5),
    "iwae-k50": ("iwae", {"k": 50}, 50),
    "miwae-8x8": ("iwae", {"bound": "miwae", "m": 8, "k": 8}, 64),
    "piwae-8x8": ("iwae", {"bound": "piwae", "m": 8, "k": 8}, 64),
    "vampprior": ("vampprior", {"batch_norm": False}, 1),
    "vampprior-d32": ("vampprior", {"batch_norm": False, "prior_draws": 32}, 1),
    "vampprior-d64": ("vampprior", {"batch_norm": False, "prior_draws": 64}, 1),
    "vampprior-d128": ("vampprior", {"batch_norm": False, "prior_draws": 128}, 1),
    "hvae": ("hvae", {"batch_norm": False}, 1),
    "hvae-vampprior": ("hvae", {"batch_norm": False, "prior": "vampprior"}, 1),
    "hvae-vampprior-d32": ("hvae", {"batch_norm": False, "prior": "vampprior", "prior_draws": 32}, 1),
}
NET = {"channels": [16, 32, 64], "hidden": [256], "latent_dim": 32, "batch_norm": True}


def stepper(name: str, settings: dict, images: int):
    torch.manual_seed(0)
    model = zoo.create(name, **{**NET, **settings}).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.bernoulli(torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    batch = Batch(x, torch.zeros(images, dtype=torch.long))

    def step() -> float:
        start = time.perf_counter()
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    step()  # first-call costs are not what is timed
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--models", default="iwae-k5,piwae-8x8,vampprior")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for key in args.models.split(","):
        plugin, settings, passes = MODELS[key]
        if plugin not in zoo.list_models():
            print(json.dumps({"model": key, "skipped": f"plugin {plugin} is not installed"}))
            continue
        if plugin == "vampprior" or settings.get("prior") == "vampprior" or not settings.get("batch_norm", True):
            vae_settings = {"batch_norm": False}  # the same net, without batch norm, as the model's
        else:
            vae_settings = {}
        steps = {"vae": stepper("vae", vae_settings, args.batch), key: stepper(plugin, settings, args.batch)}
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.rounds):
            for k, step in steps.items():
                times[k].append(step())
        vae, model = passes * statistics.median(times["vae"]), statistics.median(times[key])
        print(json.dumps({"model": key, "decoder_passes_per_image": passes, "batch": args.batch,
                          "vae_steps": passes, "vae_s": round(vae, 4),
                          "model_s": round(model, 4), "ratio": round(model / vae, 2)}))


if __name__ == "__main__":
    main()

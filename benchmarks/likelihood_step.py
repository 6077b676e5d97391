"""The training cost of the likelihood models against the plain VAE at the same number of decoder passes
per image (the issue-15 rule: within 2×). One training step (forward, backward, Adam) of each model on a
batch of dynamically binarised MNIST-sized images, on one thread, the models taken in turn round after
round so that a busy machine slows all of them alike. The VAE's figure is P of its steps on the same batch
size, where P is the other model's decoder passes per image (an IWAE-K makes K): the VAE trained on P
times the images. Prints the median seconds per step and the ratio.

    OMP_NUM_THREADS=1 python benchmarks/likelihood_step.py [--rounds 7] [--batch 128] [--models iwae-k5,piwae,...]

With --pythae (pythae installed), the `vampprior` row also times pythae's VAE and VAMP steps on the same conv
net (500 components, latent 32), wrapped in pythae's encoder / decoder classes, in the same rounds: the
peer's VampPrior against its own VAE, and zoo's VampPrior step against pythae's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time

import torch

import zoo
from zoo.model import Batch, StepContext

# name: (plugin, settings, decoder passes per image). The `vae-mnist` preset's conv net, latent 32.
MODELS = {
    "iwae-k5": ("iwae", {"k": 5}, 5),
    "iwae-k50": ("iwae", {"k": 50}, 50),
    "miwae-8x8": ("iwae", {"bound": "miwae", "m": 8, "k": 8}, 64),
    "piwae-8x8": ("iwae", {"bound": "piwae", "m": 8, "k": 8}, 64),
    "ciwae-64": ("iwae", {"bound": "ciwae", "k": 64}, 64),
    "vampprior": ("vampprior", {"batch_norm": False}, 1),
    "vampprior-d32": ("vampprior", {"batch_norm": False, "prior_draws": 32}, 1),
    "vampprior-d64": ("vampprior", {"batch_norm": False, "prior_draws": 64}, 1),
    "vampprior-d128": ("vampprior", {"batch_norm": False, "prior_draws": 128}, 1),
    "vampprior-d128-r10": ("vampprior", {"batch_norm": False, "prior_draws": 128, "prior_refresh": 10}, 1),
    "hvae": ("hvae", {"batch_norm": False}, 1),
    "hvae-vampprior": ("hvae", {"batch_norm": False, "prior": "vampprior"}, 1),
    "hvae-vampprior-d32": ("hvae", {"batch_norm": False, "prior": "vampprior", "prior_draws": 32}, 1),
    "hvae-vampprior-d128": ("hvae", {"batch_norm": False, "prior": "vampprior", "prior_draws": 128}, 1),
    "hvae-vampprior-d64-r10": ("hvae", {"batch_norm": False, "prior": "vampprior", "prior_draws": 64,
                                        "prior_refresh": 10}, 1),
    "hvae-vampprior-d128-r10": ("hvae", {"batch_norm": False, "prior": "vampprior", "prior_draws": 128,
                                         "prior_refresh": 10}, 1),
    "convhvae-vampprior": ("hvae", {"batch_norm": False, "prior": "vampprior", "pixel_layers": 4, "pixel_channels": 64},
                           1),
}
NET = {"channels": [16, 32, 64], "hidden": [256], "latent_dim": 32, "batch_norm": True}


def stepper(name: str, settings: dict, images: int):
    torch.manual_seed(0)
    model = zoo.create(name, **{**NET, **settings}).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.bernoulli(torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    batch = Batch(x, torch.zeros(images, dtype=torch.long))

    ctx = StepContext({}, epoch=1)

    def step() -> float:
        start = time.perf_counter()
        model.before_step(ctx)  # as the engine calls it: a warm-up's weight, a cached prior's refresh
        ctx.step += 1
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    step()  # first-call costs are not what is timed
    return step


def pythae_stepper(vamp: bool, images: int):
    """pythae's VAE or VAMP (`model({"data": x})`, its loss, backward, Adam) on zoo's net without batch norm."""
    from pythae.models import VAE, VAMP, VAEConfig, VAMPConfig
    from pythae_nets import wrap

    torch.manual_seed(0)
    net = zoo.create("vae", **{**NET, "batch_norm": False})
    encoder, decoder = wrap(net.encoder, net.decoder, variational=True)

    shape = dict(input_dim=(1, 28, 28), latent_dim=NET["latent_dim"], reconstruction_loss="bce")
    config = VAMPConfig(**shape, number_components=500) if vamp else VAEConfig(**shape)
    model = (VAMP if vamp else VAE)(config, encoder=encoder, decoder=decoder).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.bernoulli(torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(1)))

    def step() -> float:
        start = time.perf_counter()
        loss = model({"data": x}, epoch=10).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    step()
    return step


def check_pythae(models: list[str]) -> None:
    """--pythae needs pythae installed and the vampprior row among the models: say so, not a traceback."""
    if importlib.util.find_spec("pythae") is None:
        sys.exit("--pythae: pythae is not installed (pip install pythae), or leave --pythae out")
    if "vampprior" not in models:
        sys.exit("--pythae compares the vampprior row: add it to --models (e.g. --models vampprior)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--models", default="iwae-k5,piwae-8x8,vampprior")
    ap.add_argument("--pythae", action="store_true", help="time pythae's VAE and VAMP beside the vampprior row")
    args = ap.parse_args()
    if args.pythae:
        check_pythae(args.models.split(","))
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
        peer = args.pythae and key == "vampprior"
        if peer:
            steps |= {"pythae_vae": pythae_stepper(False, args.batch), "pythae_vamp": pythae_stepper(True, args.batch)}
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.rounds):
            for k, step in steps.items():
                times[k].append(step())
        vae, model = passes * statistics.median(times["vae"]), statistics.median(times[key])
        row = {"model": key, "decoder_passes_per_image": passes, "batch": args.batch, "vae_steps": passes,
               "vae_s": round(vae, 4), "model_s": round(model, 4), "ratio": round(model / vae, 2)}
        if peer:
            p_vae, p_vamp = statistics.median(times["pythae_vae"]), statistics.median(times["pythae_vamp"])
            row |= {"pythae_vae_s": round(p_vae, 4), "pythae_vamp_s": round(p_vamp, 4),
                    "pythae_ratio": round(p_vamp / p_vae, 2), "zoo_over_pythae": round(model / p_vamp, 2)}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
